package invokertest_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
		Timeout:     time.Second,
	})
	invokertest.Run(t, invokertest.Target{Invoker: inv, Timeout: time.Second, Exits: true, Concurrent: 16})
}

func TestRuntimePython(t *testing.T) {
	py := functions.Python(t)
	inv := newRuntime(t, runtimeapi.Config{
		Command:     []string{py, "-m", "awslambdaric", "handler.handle"},
		Dir:         functions.PyHandlerDir(),
		Concurrency: 2,
		Timeout:     2 * time.Second,
	})
	invokertest.Run(t, invokertest.Target{
		Invoker:   inv,
		Timeout:   2 * time.Second,
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
