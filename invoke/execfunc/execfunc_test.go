package execfunc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/mapping"
)

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		body    string
		fe      *mapping.FunctionError
	}{
		{name: "stdout is the response", script: `cat >/dev/null; printf '{"batchItemFailures":[]}'`, body: `{"batchItemFailures":[]}`},
		{name: "stdin is the event", script: `cat`, body: `{"Records":[]}`},
		{name: "environment", script: `printf '%s %s %s' "$ESMD_REQUEST_ID" "$ESMD_MAPPING" "$ESMD_ATTEMPT"`, body: `req-1 orders 2`},
		{
			name:   "non-zero exit: stderr tail is the message",
			script: `echo first >&2; echo 'last line' >&2; exit 4`,
			fe:     &mapping.FunctionError{Kind: "Unhandled", Type: "Runtime.ExitError", Message: "first\nlast line", StatusCode: 200},
		},
		{
			name:   "non-zero exit without stderr",
			script: `exit 4`,
			fe:     &mapping.FunctionError{Kind: "Unhandled", Type: "Runtime.ExitError", Message: "RequestId: req-1 Error: Runtime exited with error: exit status 4", StatusCode: 200},
		},
		{
			name:   "Lambda error object on stdout",
			script: `printf '{"errorType":"Bad","errorMessage":"no"}'; echo ignored >&2; exit 1`,
			fe:     &mapping.FunctionError{Kind: "Unhandled", Type: "Bad", Message: "no", StatusCode: 200},
		},
		{
			name:    "timeout kills the process group",
			script:  `sleep 30 & wait`,
			timeout: 300 * time.Millisecond,
			fe:      &mapping.FunctionError{Kind: "Unhandled", Type: "Sandbox.Timedout", Message: "Task timed out after 0.30 seconds", StatusCode: 200, Timeout: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := New(Config{Command: []string{"sh", "-c", tt.script}, Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := inv.Invoke(t.Context(), &mapping.Request{Payload: []byte(`{"Records":[]}`), RequestID: "req-1", Mapping: "orders", Attempt: 2})
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			if tt.fe != nil {
				var fe *mapping.FunctionError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v, want a function error", err)
				}
				if d := cmp.Diff(tt.fe, fe); d != "" {
					t.Errorf("FunctionError (-want +got):\n%s", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if string(resp.Body) != tt.body {
				t.Errorf("body = %q, want %q", resp.Body, tt.body)
			}
		})
	}
}

func TestTooLargeResponse(t *testing.T) {
	inv, err := New(Config{Command: []string{"sh", "-c", "head -c 7000000 /dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = inv.Invoke(t.Context(), &mapping.Request{Payload: []byte(`{}`)})
	var fe *mapping.FunctionError
	if !errors.As(err, &fe) || fe.Type != "Function.ResponseSizeTooLarge" {
		t.Fatalf("err = %v, want Function.ResponseSizeTooLarge", err)
	}
}

func TestInvokeSideErrors(t *testing.T) {
	if _, err := New(Config{Command: []string{"/nonexistent/handler"}}); err == nil {
		t.Error("New with a missing program: no error")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a command: no error")
	}
	inv, err := New(Config{Command: []string{"sleep", "10"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = inv.Invoke(ctx, &mapping.Request{Payload: []byte(`{}`)})
	var fe *mapping.FunctionError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &fe) || !strings.Contains(err.Error(), "exec function sleep") {
		t.Errorf("err = %v, want the context's error, wrapped, not a function error", err)
	}
}
