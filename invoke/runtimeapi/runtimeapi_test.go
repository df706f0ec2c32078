package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/mapping"
)

// playRuntime starts an Invoker whose process only sleeps, so that the test
// itself can speak the Runtime API of slot 0, and returns the API's base
// URL.
func playRuntime(t *testing.T, timeout time.Duration) (*Invoker, string) {
	t.Helper()
	inv, err := New(Config{Name: "orders", Command: []string{"sleep", "60"}, Timeout: timeout, Region: "eu-west-1", Account: "123456789012"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inv.Close() })
	inv.anyPeer.Store(true) // the test itself is the runtime
	return inv, "http://" + inv.slots[0].ln.Addr().String() + "/2018-06-01/runtime/"
}

// TestRuntimeAPIRefusesOtherProcesses connects to a handler's Runtime API
// from a process that is not the handler (this test): the connection is
// closed before any request is served.
func TestRuntimeAPIRefusesOtherProcesses(t *testing.T) {
	inv, err := New(Config{Name: "orders", Command: []string{"sleep", "60"}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inv.Close() })
	url := "http://" + inv.slots[0].ln.Addr().String() + "/2018-06-01/runtime/invocation/next"
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a foreign process got status %d from the Runtime API", resp.StatusCode)
		}
		if strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "EOF") {
			return // refused, as wanted
		}
		if time.Now().After(deadline) {
			t.Fatalf("unexpected error: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the process may not have started yet
	}
}

type outcome struct {
	resp *mapping.Response
	err  error
}

func invokeAsync(inv *Invoker, id, payload string) chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		resp, err := inv.Invoke(context.Background(), &mapping.Request{Payload: []byte(payload), RequestID: id})
		ch <- outcome{resp, err}
	}()
	return ch
}

func do(t *testing.T, method, url, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestRuntimeAPIProtocol(t *testing.T) {
	inv, api := playRuntime(t, 30*time.Second)

	got := invokeAsync(inv, "req-1", `{"Records":[1]}`)
	before := time.Now()
	status, h, body := do(t, "GET", api+"invocation/next", "")
	if status != 200 || body != `{"Records":[1]}` {
		t.Fatalf("next = %d %q", status, body)
	}
	if h.Get("Lambda-Runtime-Aws-Request-Id") != "req-1" ||
		h.Get("Lambda-Runtime-Invoked-Function-Arn") != "arn:aws:lambda:eu-west-1:123456789012:function:orders" ||
		!strings.HasPrefix(h.Get("Lambda-Runtime-Trace-Id"), "Root=1-") {
		t.Errorf("next headers = %v", h)
	}
	ms, _ := strconv.ParseInt(h.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
	if d := time.UnixMilli(ms).Sub(before); d < 29*time.Second || d > 31*time.Second {
		t.Errorf("deadline %s after the call, want 30s", d)
	}

	if status, _, _ := do(t, "GET", api+"invocation/next", ""); status != http.StatusForbidden {
		t.Errorf("a second next during an invocation = %d, want 403", status)
	}
	if status, _, _ := do(t, "POST", api+"invocation/req-other/response", "{}"); status != http.StatusBadRequest {
		t.Errorf("response for an unknown id = %d, want 400", status)
	}
	if status, _, _ := do(t, "GET", api+"nothing", ""); status != http.StatusNotFound {
		t.Errorf("unknown path = %d, want 404", status)
	}
	if status, _, _ := do(t, "POST", api+"invocation/req-1/response", `{"batchItemFailures":[]}`); status != http.StatusAccepted {
		t.Errorf("response = %d, want 202", status)
	}
	o := <-got
	want := &mapping.Response{Body: []byte(`{"batchItemFailures":[]}`), StatusCode: 200, ExecutedVersion: "$LATEST"}
	if o.err != nil || !cmp.Equal(o.resp, want) {
		t.Errorf("Invoke = %+v, %v; want %+v", o.resp, o.err, want)
	}

	tests := []struct {
		name   string
		post   func(id string) int
		want   *mapping.FunctionError
		status int
	}{
		{
			name: "error type from the header, message from a text body",
			post: func(id string) int {
				s, _, _ := do(t, "POST", api+"invocation/"+id+"/error", "it broke\nsecond line", "Lambda-Runtime-Function-Error-Type", "Runtime.Crash")
				return s
			},
			want:   &mapping.FunctionError{Kind: "Unhandled", Type: "Runtime.Crash", Message: "it broke", StatusCode: 200, ExecutedVersion: "$LATEST"},
			status: http.StatusAccepted,
		},
		{
			name: "error object",
			post: func(id string) int {
				s, _, _ := do(t, "POST", api+"invocation/"+id+"/error", `{"errorMessage":"bad","errorType":"ValueError","stackTrace":["a"]}`, "Lambda-Runtime-Function-Error-Type", "Unhandled")
				return s
			},
			want:   &mapping.FunctionError{Kind: "Unhandled", Type: "ValueError", Message: "bad", StatusCode: 200, ExecutedVersion: "$LATEST"},
			status: http.StatusAccepted,
		},
		{
			name: "response too large",
			post: func(id string) int {
				req, _ := http.NewRequest("POST", api+"invocation/"+id+"/response", bytes.NewReader(make([]byte, 7<<20)))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			},
			want:   &mapping.FunctionError{Kind: "Unhandled", Type: "Function.ResponseSizeTooLarge", Message: "Response payload size exceeded maximum allowed payload size (6291556 bytes).", StatusCode: 200, ExecutedVersion: "$LATEST"},
			status: http.StatusRequestEntityTooLarge,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "req-e" + strconv.Itoa(i)
			got := invokeAsync(inv, id, `{}`)
			if status, _, _ := do(t, "GET", api+"invocation/next", ""); status != 200 {
				t.Fatalf("next = %d", status)
			}
			if status := tt.post(id); status != tt.status {
				t.Errorf("post = %d, want %d", status, tt.status)
			}
			o := <-got
			var fe *mapping.FunctionError
			if !errors.As(o.err, &fe) {
				t.Fatalf("err = %v, want a function error", o.err)
			}
			if d := cmp.Diff(tt.want, fe); d != "" {
				t.Errorf("function error (-want +got):\n%s", d)
			}
		})
	}
}

func TestRuntimeAPITimeoutRestartsProcess(t *testing.T) {
	inv, api := playRuntime(t, 300*time.Millisecond)
	got := invokeAsync(inv, "req-slow", `{}`)
	if status, _, _ := do(t, "GET", api+"invocation/next", ""); status != 200 {
		t.Fatalf("next = %d", status)
	}
	s := inv.slots[0]
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	o := <-got
	var fe *mapping.FunctionError
	if !errors.As(o.err, &fe) || !fe.Timeout || fe.Message != "Task timed out after 0.30 seconds" {
		t.Fatalf("err = %v, want a timeout", o.err)
	}
	// A late answer is refused, and a new process replaces the killed one.
	if status, _, _ := do(t, "POST", api+"invocation/req-slow/response", "{}"); status != http.StatusBadRequest {
		t.Errorf("late response = %d, want 400", status)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		newPID, alive := s.cmd.Process.Pid, s.alive
		s.mu.Unlock()
		if alive && newPID != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new process after the timeout (pid %d, alive %v)", newPID, alive)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRuntimeAPIAnswerBeforeEventRead checks that an invocation answered
// while esmd is still writing the event to the process reports the payload
// as in use, so that the engine does not write its next event into it.
func TestRuntimeAPIAnswerBeforeEventRead(t *testing.T) {
	inv, api := playRuntime(t, 30*time.Second)
	// Larger than the loopback socket buffers: the write of the event
	// blocks while the test does not read it.
	payload := strings.Repeat("a", 32<<20)
	got := invokeAsync(inv, "req-big", payload)

	// GET next, and read only the head of the answer.
	addr := strings.TrimPrefix(api, "http://")
	addr = addr[:strings.IndexByte(addr, '/')]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id"); resp.StatusCode != 200 || id != "req-big" {
		t.Fatalf("next = %d, request id %q", resp.StatusCode, id)
	}
	if status, _, _ := do(t, "POST", api+"invocation/req-big/response", "{}"); status != http.StatusAccepted {
		t.Fatalf("response = %d, want 202", status)
	}
	o := <-got
	if o.err != nil || !o.resp.PayloadInUse {
		t.Fatalf("Invoke = %+v, %v; want success with the payload in use", o.resp, o.err)
	}
}
