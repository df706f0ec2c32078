// Package execfunc invokes a function that is a command, run once per
// event: the event is written to its stdin and its stdout is the response.
// It suits scripts and quick experiments; for a long-lived handler use the
// Runtime API host (runtimeapi).
//
// Outcomes of one invocation:
//   - exit status 0: success, stdout is the response (which may be
//     {"batchItemFailures":[...]}), passed on unchanged;
//   - a non-zero exit: a *mapping.FunctionError. When stdout holds Lambda's
//     error object {"errorType","errorMessage"} it gives the type and
//     message; otherwise the type is Runtime.ExitError and the message the
//     tail of stderr (or the exit status when stderr is empty);
//   - no exit within the timeout: the whole process group is killed and the
//     invocation is a *mapping.FunctionError with Timeout set;
//   - stdout over 6 MB: the process is killed, a function error;
//   - a command that cannot be started: a plain (invoke-side) error.
//
// The process gets esmd's environment plus Config.Env, and ESMD_REQUEST_ID,
// ESMD_MAPPING, ESMD_ATTEMPT and ESMD_DEADLINE_MS (Unix milliseconds).
package execfunc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/esmd-dev/esmd/invoke"
	"github.com/esmd-dev/esmd/invoke/internal/proc"
	"github.com/esmd-dev/esmd/mapping"
)

var _ mapping.Invoker = (*Invoker)(nil)

// stderrTail is how much of stderr is kept for the error message.
const stderrTail = 4096

// Config configures an Invoker.
type Config struct {
	// Command is the program and its arguments, run without a shell. A
	// program name without a slash is looked up in PATH.
	Command []string
	// Dir is the working directory; "" is esmd's.
	Dir string
	// Env is added to esmd's environment, as KEY=value entries.
	Env []string
	// Timeout bounds one run; zero means no limit beyond the request's
	// Deadline and ctx.
	Timeout time.Duration
	// Logger receives a debug line per run and the function's stderr at
	// debug level, without payloads. Nil discards.
	Logger *slog.Logger
}

// Invoker runs a command per invocation. It is safe for concurrent use; each
// Invoke runs its own process.
type Invoker struct {
	cfg  Config
	path string
	log  *slog.Logger
}

// New checks cfg and resolves the program. It starts nothing.
func New(cfg Config) (*Invoker, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("exec function: no command")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("exec function %s: negative timeout %s", cfg.Command[0], cfg.Timeout)
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err != nil {
		return nil, fmt.Errorf("exec function: %w", err)
	}
	inv := &Invoker{cfg: cfg, path: path, log: cfg.Logger}
	if inv.log == nil {
		inv.log = slog.New(slog.DiscardHandler)
	}
	return inv, nil
}

// limitedBuffer keeps the first max bytes written and reports overflow.
type limitedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
	kill func()
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.over {
		return len(p), nil
	}
	if b.buf.Len()+len(p) > b.max {
		b.over = true
		b.kill()
		return len(p), nil
	}
	return b.buf.Write(p)
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// Invoke runs the command with req.Payload on stdin and waits for it to
// exit, for at most the configured Timeout and until req.Deadline.
// Cancelling ctx kills the process group and returns ctx's error, wrapped.
// See the package documentation for the outcomes.
func (inv *Invoker) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	start := time.Now()
	deadline := req.Deadline
	if inv.cfg.Timeout > 0 {
		if d := start.Add(inv.cfg.Timeout); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	cctx := ctx
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		cctx, cancel = context.WithDeadlineCause(ctx, deadline, invoke.ErrTimedOut)
		defer cancel()
	}
	id := req.RequestID
	if id == "" {
		id = uuid.NewString()
	}

	cmd := exec.CommandContext(cctx, inv.path, inv.cfg.Command[1:]...)
	cmd.Dir = inv.cfg.Dir
	cmd.Env = append(os.Environ(), inv.cfg.Env...)
	cmd.Env = append(cmd.Env, "ESMD_REQUEST_ID="+id, "ESMD_MAPPING="+req.Mapping, "ESMD_ATTEMPT="+strconv.Itoa(req.Attempt))
	if !deadline.IsZero() {
		cmd.Env = append(cmd.Env, "ESMD_DEADLINE_MS="+strconv.FormatInt(deadline.UnixMilli(), 10))
	}
	proc.Prepare(cmd)
	cmd.Cancel = func() error { return proc.Signal(cmd, syscall.SIGKILL) }
	// Grandchildren that keep stdout open must not hold Wait forever.
	cmd.WaitDelay = time.Second
	cmd.Stdin = bytes.NewReader(req.Payload)
	stdout := &limitedBuffer{max: invoke.MaxResponse, kill: func() { _ = proc.Signal(cmd, syscall.SIGKILL) }}
	stderr := &tailBuffer{max: stderrTail}
	cmd.Stdout = stdout
	cmd.Stderr = stderr

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec function %s: request %s: start: %w", inv.cfg.Command[0], id, err)
	}
	err := cmd.Wait()
	// Stop whatever the command left running in its group.
	_ = proc.Signal(cmd, syscall.SIGKILL)

	out, ierr := inv.outcome(ctx, cctx, cmd, err, stdout, stderr, id, deadline.Sub(start))
	if inv.log.Enabled(ctx, slog.LevelDebug) {
		inv.log.LogAttrs(ctx, slog.LevelDebug, "exec function ran",
			slog.String("command", inv.cfg.Command[0]), slog.String("mapping", req.Mapping),
			slog.String("request_id", id), slog.Int("attempt", req.Attempt),
			slog.Int("exit", cmd.ProcessState.ExitCode()), slog.Duration("duration", time.Since(start)),
			slog.Bool("ok", ierr == nil), slog.String("stderr", invoke.Tail(stderr.b, 512)))
	}
	return out, ierr
}

func (inv *Invoker) outcome(ctx, cctx context.Context, cmd *exec.Cmd, err error, stdout *limitedBuffer, stderr *tailBuffer, id string, allowed time.Duration) (*mapping.Response, error) {
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("exec function %s: request %s: %w", inv.cfg.Command[0], id, ctx.Err())
	case errors.Is(context.Cause(cctx), invoke.ErrTimedOut):
		return nil, invoke.TimeoutError(allowed, "")
	case stdout.over:
		return nil, invoke.TooLargeError("")
	case err == nil:
		return &mapping.Response{Body: stdout.buf.Bytes(), StatusCode: 200}, nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if errors.Is(err, exec.ErrWaitDelay) {
			// The command exited 0 but something it started kept stdout.
			return &mapping.Response{Body: stdout.buf.Bytes(), StatusCode: 200}, nil
		}
		return nil, fmt.Errorf("exec function %s: request %s: %w", inv.cfg.Command[0], id, err)
	}
	fe := &mapping.FunctionError{Kind: "Unhandled", StatusCode: 200}
	if le, ok := invoke.ParseError(stdout.buf.Bytes()); ok {
		fe.Type, fe.Message = le.Type, le.Message
	} else {
		fe.Type = "Runtime.ExitError"
		fe.Message = invoke.Tail(stderr.b, 1024)
		if fe.Message == "" {
			fe.Message = "RequestId: " + id + " Error: Runtime exited with error: " + ee.ProcessState.String()
		}
	}
	return nil, fe
}

var _ io.Writer = (*tailBuffer)(nil)
