package invokertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/invoke/runtimeapi"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/functions"
	"github.com/esmd-dev/esmd/test/invokertest"
)

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newRuntime(t testing.TB, cfg runtimeapi.Config) *runtimeapi.Invoker {
	t.Helper()
	inv, err := runtimeapi.New(cfg)
	if err != nil {
		t.Fatalf("runtimeapi.New: %v", err)
	}
	t.Cleanup(func() { _ = inv.Close() })
	return inv
}

func TestRuntimeGo(t *testing.T) {
	inv := newRuntime(t, runtimeapi.Config{
		Name:        "orders",
		Command:     []string{functions.GoHandler(t)},
		Concurrency: 8,
		Timeout:     suiteTimeout,
	})
	invokertest.Run(t, invokertest.Target{Invoker: inv, Timeout: suiteTimeout, Exits: true, Concurrent: 16})
}

func TestRuntimePython(t *testing.T) {
	py := functions.Python(t)
	inv := newRuntime(t, runtimeapi.Config{
		Command:     []string{py, "-m", "awslambdaric", "handler.handle"},
		Dir:         functions.PyHandlerDir(),
		Concurrency: 2,
		Timeout:     suiteTimeout,
	})
	invokertest.Run(t, invokertest.Target{
		Invoker:   inv,
		Timeout:   suiteTimeout,
		Exits:     true,
		ErrorType: "HandlerError",
	})
}

// TestRuntimeNoOverlap runs many invocations through 8 Go handler processes
// and checks from the handlers' own reports that no process ever ran two at
// once, and that all 8 processes served.
func TestRuntimeNoOverlap(t *testing.T) {
	inv := newRuntime(t, runtimeapi.Config{
		Command:     []string{functions.GoHandler(t)},
		Concurrency: 8,
		Timeout:     10 * time.Second,
	})
	const callers, each = 24, 10
	var mu sync.Mutex
	reports := map[int][]functions.PIDReport{}
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				resp, err := invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoPID, Ms: 5}, 0))
				if err != nil {
					t.Error(err)
					return
				}
				var r functions.PIDReport
				if err := json.Unmarshal(resp.Body, &r); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				reports[r.PID] = append(reports[r.PID], r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(reports) != 8 {
		t.Errorf("%d processes served, want 8", len(reports))
	}
	total := 0
	for pid, rs := range reports {
		total += len(rs)
		slices.SortFunc(rs, func(a, b functions.PIDReport) int { return int(a.Start - b.Start) })
		for i, r := range rs {
			if r.InFlight != 1 {
				t.Errorf("process %d ran %d invocations at once", pid, r.InFlight)
			}
			if i > 0 && r.Start < rs[i-1].End {
				t.Errorf("process %d: an invocation started at %d before the previous ended at %d", pid, r.Start, rs[i-1].End)
			}
		}
	}
	if total != callers*each {
		t.Errorf("%d invocations answered, want %d", total, callers*each)
	}
}

// TestRuntimeEnvironment checks the variables a handler sees, and that its
// output reaches the log with the request id.
func TestRuntimeEnvironment(t *testing.T) {
	var logs logBuffer
	dir := t.TempDir()
	inv := newRuntime(t, runtimeapi.Config{
		Name:       "orders",
		Command:    []string{functions.GoHandler(t)},
		Dir:        dir,
		Env:        map[string]string{"ESMD_TEST_COLOUR": "blue", "AWS_REGION": "ignored"},
		MemorySize: 512,
		Region:     "eu-west-1",
		Timeout:    5 * time.Second,
		Logger:     slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	resp, err := invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoEnv}, 0))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Env map[string]string }
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ESMD_TEST_COLOUR":                "blue",
		"AWS_LAMBDA_FUNCTION_NAME":        "orders",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_REGION":                      "eu-west-1",
		"AWS_DEFAULT_REGION":              "eu-west-1",
		"LAMBDA_TASK_ROOT":                dir,
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/orders",
		"_HANDLER":                        "bootstrap",
		"cwd":                             dir,
	}
	for k, v := range want {
		if got.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, got.Env[k], v)
		}
	}
	if api := got.Env["AWS_LAMBDA_RUNTIME_API"]; !strings.HasPrefix(api, "127.0.0.1:") {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q", api)
	}
	if s := got.Env["AWS_LAMBDA_LOG_STREAM_NAME"]; !strings.Contains(s, "/[$LATEST]") {
		t.Errorf("AWS_LAMBDA_LOG_STREAM_NAME = %q", s)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = inv.Invoke(ctx, &mapping.Request{Payload: functions.Event(functions.Command{Do: functions.DoLog, Message: "hello from the handler"}, 0), RequestID: "req-log-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{"stdout", "stderr"} {
		want := `"stream":"` + stream + `","request_id":"req-log-1","line":"hello from the handler"`
		deadline := time.Now().Add(2 * time.Second)
		for !strings.Contains(logs.String(), want) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s; log:\n%s", want, logs.String())
		}
	}
}

// TestRuntimeInitFailures checks that a runtime that fails its init fails
// an invocation with its error, and is restarted.
func TestRuntimeInitFailures(t *testing.T) {
	const initError = `import json, os, urllib.request
req = urllib.request.Request("http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/init/error",
    data=json.dumps({"errorType": "InitBoom", "errorMessage": "cannot init"}).encode(),
    headers={"Lambda-Runtime-Function-Error-Type": "Unhandled"}, method="POST")
urllib.request.urlopen(req).read()
raise SystemExit(1)
`
	tests := []struct {
		name    string
		command []string
		want    *mapping.FunctionError
	}{
		{"init error reported", []string{"python3", "-c", initError},
			&mapping.FunctionError{Kind: "Unhandled", Type: "InitBoom", Message: "cannot init", StatusCode: 200, ExecutedVersion: "$LATEST"}},
		{"exit before asking", []string{"sh", "-c", "echo no runtime here >&2; exit 1"},
			&mapping.FunctionError{Kind: "Unhandled", Type: "Runtime.InitError", Message: "Runtime exited before it asked for an event", StatusCode: 200, ExecutedVersion: "$LATEST"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := newRuntime(t, runtimeapi.Config{Command: tt.command, Timeout: 5 * time.Second})
			for i := range 2 { // the second meets a restarted process
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				_, err := invokertest.Invoke(ctx, inv, functions.Event(functions.Command{Do: functions.DoOK}, 0))
				cancel()
				var fe *mapping.FunctionError
				if !errors.As(err, &fe) {
					t.Fatalf("call %d: err = %v, want a function error", i, err)
				}
				if d := cmp.Diff(tt.want, fe); d != "" {
					t.Errorf("call %d: function error (-want +got):\n%s", i, d)
				}
			}
		})
	}
}

// TestRuntimeClose checks that Close stops every process and fails the
// invocation in progress as an invoke-side error.
func TestRuntimeClose(t *testing.T) {
	inv := newRuntime(t, runtimeapi.Config{Command: []string{functions.GoHandler(t)}, Concurrency: 2, Timeout: 30 * time.Second})
	resp, err := invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoPID}, 0))
	if err != nil {
		t.Fatal(err)
	}
	var r functions.PIDReport
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		t.Fatal(err)
	}
	inflight := make(chan error, 1)
	go func() {
		_, err := invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoSleep, Ms: 20000}, 0))
		inflight <- err
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := inv.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %s", time.Since(start))
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Close took %s", took)
	}
	if err := syscall.Kill(r.PID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still exists after Close (kill 0: %v)", r.PID, err)
	}
	err = <-inflight
	var fe *mapping.FunctionError
	if !errors.Is(err, runtimeapi.ErrClosed) || errors.As(err, &fe) {
		t.Errorf("in-flight invocation: err = %v, want ErrClosed, not a function error", err)
	}
	if _, err := invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoOK}, 0)); !errors.Is(err, runtimeapi.ErrClosed) {
		t.Errorf("Invoke after Close: err = %v, want ErrClosed", err)
	}
}

// TestRuntimeFIFO checks that callers waiting for a busy process get it in
// the order they arrived.
func TestRuntimeFIFO(t *testing.T) {
	inv := newRuntime(t, runtimeapi.Config{Command: []string{functions.GoHandler(t)}, Timeout: 30 * time.Second})
	if _, err := invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoOK}, 0)); err != nil {
		t.Fatal(err)
	}
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		_, _ = invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoSleep, Ms: 500}, 0))
	}()
	time.Sleep(50 * time.Millisecond)
	const n = 6
	starts := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoPID}, 0))
			if err != nil {
				t.Error(err)
				return
			}
			var r functions.PIDReport
			_ = json.Unmarshal(resp.Body, &r)
			starts[i] = r.Start
		})
		time.Sleep(30 * time.Millisecond)
	}
	wg.Wait()
	<-busy
	for i := 1; i < n; i++ {
		if starts[i] <= starts[i-1] {
			t.Errorf("caller %d ran at %d, before caller %d at %d", i, starts[i], i-1, starts[i-1])
		}
	}
}
