package invoke

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/mapping"
)

func TestParseError(t *testing.T) {
	tests := []struct {
		body string
		want LambdaError
		ok   bool
	}{
		{`{"errorMessage":"boom","errorType":"errorString"}`, LambdaError{"errorString", "boom"}, true},
		{` {"errorType":"ValueError","errorMessage":"x","stackTrace":["a"],"requestId":"r"}`, LambdaError{"ValueError", "x"}, true},
		{`{"errorMessage":"only"}`, LambdaError{Message: "only"}, true},
		{`{"errorMessage":"x","batchItemFailures":[]}`, LambdaError{}, false},
		{`{}`, LambdaError{}, false},
		{`{"stackTrace":[]}`, LambdaError{}, false},
		{`[1]`, LambdaError{}, false},
		{`Task timed out`, LambdaError{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseError([]byte(tt.body))
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseError(%s) = %+v, %v; want %+v, %v", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFunctionError(t *testing.T) {
	tests := []struct {
		body string
		want *mapping.FunctionError
	}{
		{`{"errorType":"E","errorMessage":"m","extra":1}`, &mapping.FunctionError{Kind: "Unhandled", Type: "E", Message: "m", StatusCode: 200, ExecutedVersion: "1"}},
		{"plain text\nmore", &mapping.FunctionError{Kind: "Unhandled", Message: "plain text", StatusCode: 200, ExecutedVersion: "1"}},
		{`{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: x Error: Task timed out after 3.00 seconds"}`,
			&mapping.FunctionError{Kind: "Unhandled", Type: "Sandbox.Timedout", Message: "RequestId: x Error: Task timed out after 3.00 seconds", StatusCode: 200, ExecutedVersion: "1", Timeout: true}},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, FunctionError("Unhandled", 200, "1", []byte(tt.body))); d != "" {
			t.Errorf("FunctionError(%q) (-want +got):\n%s", tt.body, d)
		}
	}
	if got := TimeoutError(1500*time.Millisecond, "").Message; got != "Task timed out after 1.50 seconds" {
		t.Errorf("TimeoutError message = %q", got)
	}
}

func TestSnippetAndTail(t *testing.T) {
	if got := Snippet([]byte("  héllo wörld \nnext"), 2); got != "h…" {
		t.Errorf("Snippet = %q", got)
	}
	if got := Snippet([]byte{0xff, 0xfe}, 10); got != "" {
		t.Errorf("Snippet of binary = %q", got)
	}
	if got := Tail([]byte("line one\nline two\nline three\n"), 15); got != "line three" {
		t.Errorf("Tail = %q", got)
	}
}
