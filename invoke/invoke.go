package invoke

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/esmd-dev/esmd/mapping"
)

// MaxResponse is the largest function response accepted, Lambda's
// synchronous response limit (6 MB and a little). A larger one is a function
// error, as on Lambda.
const MaxResponse = 6*1024*1024 + 100

// ErrTimedOut is the context cause invokers give the context of an
// invocation that ran out of its time.
var ErrTimedOut = errors.New("invocation timed out")

// LambdaError is Lambda's error object, as runtimes report it.
type LambdaError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

// ParseError reads Lambda's error object {"errorType","errorMessage",...}
// from body. ok reports that body is a JSON object made only of the keys
// runtimes put in an error object (errorType, errorMessage, stackTrace,
// trace, cause, requestId) with at least errorType or errorMessage: a body
// that can be told from a function's ordinary response.
func ParseError(body []byte) (e LambdaError, ok bool) {
	body = bytes.TrimSpace(body)
	if len(body) < 2 || body[0] != '{' {
		return e, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return e, false
	}
	for k, v := range m {
		switch k {
		case "errorType":
			_ = json.Unmarshal(v, &e.Type)
		case "errorMessage":
			_ = json.Unmarshal(v, &e.Message)
		case "stackTrace", "trace", "cause", "requestId":
		default:
			return LambdaError{}, false
		}
	}
	_, hasType := m["errorType"]
	_, hasMsg := m["errorMessage"]
	return e, hasType || hasMsg
}

// FunctionError builds the function error of a failed invocation from its
// error body: the errorType and errorMessage of a JSON object, else the
// body's first line as the message.
func FunctionError(kind string, status int, version string, body []byte) *mapping.FunctionError {
	fe := &mapping.FunctionError{Kind: kind, StatusCode: status, ExecutedVersion: version}
	// The body is known to be an error: read errorType and errorMessage
	// from any object, whatever else it holds.
	var le LambdaError
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '{' {
		_ = json.Unmarshal(b, &le)
	}
	fe.Type, fe.Message = le.Type, le.Message
	if fe.Type == "" && fe.Message == "" {
		fe.Message = Snippet(body, 200)
	}
	if IsTimeout(fe.Type, fe.Message) {
		fe.Timeout = true
	}
	return fe
}

// IsTimeout reports whether an error type and message are Lambda's report
// of a function that ran out of time.
func IsTimeout(typ, msg string) bool {
	return typ == "Sandbox.Timedout" || strings.Contains(msg, "Task timed out after")
}

// TimeoutError is the function error of an invocation that did not finish
// within allowed, worded as Lambda words it.
func TimeoutError(allowed time.Duration, version string) *mapping.FunctionError {
	return &mapping.FunctionError{
		Kind:            "Unhandled",
		Type:            "Sandbox.Timedout",
		Message:         fmt.Sprintf("Task timed out after %.2f seconds", allowed.Seconds()),
		StatusCode:      200,
		ExecutedVersion: version,
		Timeout:         true,
	}
}

// TooLargeError is the function error of a response over MaxResponse.
func TooLargeError(version string) *mapping.FunctionError {
	return &mapping.FunctionError{
		Kind:            "Unhandled",
		Type:            "Function.ResponseSizeTooLarge",
		Message:         fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponse),
		StatusCode:      200,
		ExecutedVersion: version,
	}
}

// Snippet returns the start of the first non-empty line of b, at most max
// bytes (cut on a rune boundary, with "…" added), or "" when b holds no
// valid UTF-8 text.
func Snippet(b []byte, max int) string {
	b = bytes.TrimSpace(b)
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSpace(line)
	if len(line) == 0 || !utf8.Valid(line) {
		return ""
	}
	if len(line) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		return string(line[:cut]) + "…"
	}
	return string(line)
}

// Tail returns the last max bytes of b as text, starting at a line start
// when one lies in that range, with surrounding space trimmed.
func Tail(b []byte, max int) string {
	b = bytes.TrimSpace(b)
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	return strings.ToValidUTF8(string(b), "�")
}
