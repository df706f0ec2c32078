// Package functions holds the test functions that esmd's invoker tests call,
// and the small protocol that drives them: each event carries a Command
// under the key "esmdtest" that says what the function does with it (answer,
// fail, panic, sleep, exit, report its process). The same behaviour is
// written once in Go (Handle, used by gohandler, HTTP and NATS test
// functions) and once in Python (pyhandler/handler.py, run through AWS's
// awslambdaric or as an exec script).
package functions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Actions a Command can ask for.
const (
	DoOK       = "ok"       // answer {}
	DoSleep    = "sleep"    // sleep Ms milliseconds, then answer {"slept":Ms}
	DoError    = "error"    // fail with errorType HandlerError and errorMessage Message
	DoPanic    = "panic"    // panic (Go) or raise RuntimeError (Python) with Message
	DoExit     = "exit"     // end the process with status 3, answering nothing
	DoPartial  = "partial"  // answer Response, unchanged
	DoSize     = "size"     // answer {"bytes":len(event),"sha256":hex of the event}
	DoPID      = "pid"      // sleep Ms, then answer a PIDReport
	DoEnv      = "env"      // answer {"env":{...}} with the Lambda variables and ESMD_TEST_*
	DoLog      = "log"      // print Message to stdout and stderr, then answer {}
	DoThrottle = "throttle" // hosts that can throttle (HTTP) answer 429 with Retry-After: 2
)

// ErrorType is the errorType of a DoError failure.
const ErrorType = "HandlerError"

// Command is what a test event asks of the function.
type Command struct {
	Do       string          `json:"do"`
	Ms       int             `json:"ms,omitempty"`
	Message  string          `json:"message,omitempty"`
	Response json.RawMessage `json:"response,omitempty"`
}

// Event builds a test event for c, padded with pad bytes of filler.
func Event(c Command, pad int) []byte {
	b, err := json.Marshal(struct {
		Cmd Command `json:"esmdtest"`
		Pad string  `json:"pad,omitempty"`
	}{c, strings.Repeat("x", pad)})
	if err != nil {
		panic(err)
	}
	return b
}

// EventOfSize builds a test event for c of exactly size bytes (at least the
// size of the unpadded event).
func EventOfSize(c Command, size int) []byte {
	base := len(Event(c, 0))
	// ,"pad":"" adds 9 bytes around the filler.
	if size <= base+9 {
		return Event(c, 0)
	}
	return Event(c, size-base-9)
}

// Parse reads the command of a test event.
func Parse(event []byte) (Command, error) {
	var e struct {
		Cmd Command `json:"esmdtest"`
	}
	if err := json.Unmarshal(event, &e); err != nil {
		return Command{}, fmt.Errorf("test function: event is not JSON: %w", err)
	}
	return e.Cmd, nil
}

// HandlerError is the error DoError returns; aws-lambda-go reports its type
// name, HandlerError, as the errorType.
type HandlerError struct{ Msg string }

func (e *HandlerError) Error() string { return e.Msg }

// PIDReport is the answer to DoPID.
type PIDReport struct {
	PID int `json:"pid"`
	// InFlight is the most invocations this process ran at once while this
	// one ran (1 when invocations never overlap).
	InFlight int64 `json:"inflight"`
	Start    int64 `json:"start"` // Unix nanoseconds
	End      int64 `json:"end"`
}

var inflight, maxInflight atomic.Int64

// ForwardEnv names the variable that holds the URL Handle forwards events
// without a command to.
const ForwardEnv = "ESMD_TEST_FORWARD"

// Handle runs a test event in Go and returns the function's response. A
// DoPanic panics; DoExit ends the process. It honours ctx while sleeping.
// An event without a command (a real Lambda event) is forwarded when the
// environment has ESMD_TEST_FORWARD, and answered {} otherwise.
func Handle(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
	return HandleWith(ctx, event, os.Getenv(ForwardEnv))
}

// HandleWith is Handle with the forward URL given: an event without a
// command is POSTed to forward, when it is not empty. The answer's body is
// the response (an empty body gives {}); any status but 200 is a
// HandlerError with the body as its message. This lets one recording HTTP
// sink see every event whichever invoker carried it.
func HandleWith(ctx context.Context, event json.RawMessage, forward string) (json.RawMessage, error) {
	c, err := Parse(event)
	if err != nil {
		return nil, err
	}
	if c.Do == "" && forward != "" {
		return forwardEvent(ctx, event, forward)
	}
	switch c.Do {
	case DoOK, "":
		return json.RawMessage(`{}`), nil
	case DoSleep:
		if err := sleep(ctx, c.Ms); err != nil {
			return nil, err
		}
		return json.RawMessage(fmt.Sprintf(`{"slept":%d}`, c.Ms)), nil
	case DoError:
		return nil, &HandlerError{Msg: c.Message}
	case DoPanic:
		panic(c.Message)
	case DoExit:
		os.Exit(3)
	case DoPartial:
		return c.Response, nil
	case DoSize:
		sum := sha256.Sum256(event)
		return json.Marshal(map[string]any{"bytes": len(event), "sha256": hex.EncodeToString(sum[:])})
	case DoPID:
		n := inflight.Add(1)
		for {
			m := maxInflight.Load()
			if n <= m || maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		start := time.Now()
		err := sleep(ctx, c.Ms)
		end := time.Now()
		inflight.Add(-1)
		if err != nil {
			return nil, err
		}
		return json.Marshal(PIDReport{PID: os.Getpid(), InFlight: maxInflight.Load(), Start: start.UnixNano(), End: end.UnixNano()})
	case DoEnv:
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "LAMBDA_") || k == "_HANDLER" || strings.HasPrefix(k, "ESMD_TEST_") {
				env[k] = v
			}
		}
		if wd, err := os.Getwd(); err == nil {
			env["cwd"] = wd
		}
		return json.Marshal(map[string]any{"env": env})
	case DoLog:
		fmt.Fprintln(os.Stdout, c.Message)
		fmt.Fprintln(os.Stderr, c.Message)
		return json.RawMessage(`{}`), nil
	}
	return nil, fmt.Errorf("test function: unknown action %q", c.Do)
}

func forwardEvent(ctx context.Context, event []byte, url string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("test function: forward: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("test function: forward: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HandlerError{Msg: fmt.Sprintf("sink answered %d: %s", resp.StatusCode, body)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return json.RawMessage(`{}`), nil
	}
	return body, nil
}

func sleep(ctx context.Context, ms int) error {
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Dir returns the directory of this package's source.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// GoHandler builds gohandler once per test binary (CGO_ENABLED=0) and
// returns the path of the executable. It fails t if the build fails.
func GoHandler(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "esmd-gohandler-*")
		if err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(dir, "bootstrap")
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = filepath.Join(Dir(), "gohandler")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build gohandler: %v\n%s", err, b)
			return
		}
		buildPath = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// PyHandlerDir is the directory of handler.py.
func PyHandlerDir() string { return filepath.Join(Dir(), "pyhandler") }

// Python returns the Python of the test venv (test/.tools/venv) when it has
// awslambdaric. It skips t when it is missing, except under CI=true, where
// it fails t.
func Python(t testing.TB) string {
	t.Helper()
	tools := os.Getenv("ESMD_TOOLS")
	if tools == "" {
		tools = filepath.Join(Dir(), "..", ".tools")
	}
	py := filepath.Join(tools, "venv", "bin", "python")
	cmd := exec.Command(py, "-c", "import awslambdaric")
	if err := cmd.Run(); err != nil {
		msg := "awslambdaric not installed in test/.tools/venv: run bash test/install-lambda.sh"
		if v := strings.ToLower(os.Getenv("CI")); v == "true" || v == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return py
}
