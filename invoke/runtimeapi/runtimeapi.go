// Package runtimeapi runs a function the way Lambda runs it inside its
// sandbox: esmd hosts the Lambda Runtime API (version 2018-06-01) and starts
// the user's handler as a pool of child processes that pull events from it.
// An unmodified Lambda handler built for the provided runtime (for example
// with aws-lambda-go's lambda.Start), or run through one of AWS's runtime
// interface clients (such as Python's awslambdaric), runs under it.
//
// # Processes
//
// The pool has Concurrency processes. Each is started with the command as
// given (no shell), esmd's environment, Config.Env, and Lambda's variables:
// AWS_LAMBDA_RUNTIME_API, _HANDLER, AWS_LAMBDA_FUNCTION_NAME,
// AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_FUNCTION_VERSION ($LATEST),
// AWS_REGION, AWS_DEFAULT_REGION, LAMBDA_TASK_ROOT (the working directory),
// AWS_LAMBDA_LOG_GROUP_NAME and AWS_LAMBDA_LOG_STREAM_NAME. Each process has
// its own Runtime API listener on 127.0.0.1, so esmd always knows which
// process is asking. A process gets an event only when it asks for the next
// one, and never a second before it answered the first: invocations never
// overlap in one process. Callers wait for an idle process in the order they
// arrived.
//
// Handler output (stdout and stderr) goes to the logger, a record per line,
// with the request id of the invocation in progress.
//
// # Outcomes of one invocation
//
//   - POST /runtime/invocation/{id}/response succeeds; its body is the
//     function's response, passed on unchanged;
//   - POST /runtime/invocation/{id}/error is a *mapping.FunctionError with the
//     errorType and errorMessage of the body (or the
//     Lambda-Runtime-Function-Error-Type header);
//   - a process that exits during an invocation fails it as a function error
//     of type Runtime.ExitError; the process is restarted, after a backoff
//     when it crashes before serving anything;
//   - a process that posts /runtime/init/error or exits before asking for an
//     event fails one waiting invocation with its error (type
//     Runtime.InitError unless the process reported one), as Lambda fails
//     the invocation that met a failed init;
//   - an invocation past the timeout kills the process group and restarts
//     the process; it is a function error with Timeout set ("Task timed out
//     after N seconds");
//   - a caller whose ctx ends gets ctx's error: the invocation goes on in its
//     process (as on Lambda) and its result is dropped.
package runtimeapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"

	"github.com/esmd-dev/esmd/invoke"
	"github.com/esmd-dev/esmd/invoke/internal/proc"
	"github.com/esmd-dev/esmd/mapping"
)

var _ mapping.Invoker = (*Invoker)(nil)

// ErrClosed is returned by Invoke after Close.
var ErrClosed = errors.New("runtime function closed")

// Defaults.
const (
	DefaultTimeout    = 15 * time.Minute // Lambda's maximum
	DefaultMemorySize = 128
	DefaultRegion     = "us-east-1"
	DefaultAccount    = "000000000000"
	version           = "$LATEST"
	// stopGrace is how long Close waits after SIGTERM before SIGKILL.
	stopGrace = 2 * time.Second
)

// Config configures an Invoker.
type Config struct {
	// Name is the function's name (AWS_LAMBDA_FUNCTION_NAME and the invoked
	// ARN); "" means "function".
	Name string
	// Command is the handler program and its arguments, run without a
	// shell. A program name without a slash is looked up in PATH.
	Command []string
	// Dir is the working directory and LAMBDA_TASK_ROOT; "" is esmd's.
	Dir string
	// Env is added to esmd's environment; Lambda's variables override it.
	Env map[string]string
	// Handler is _HANDLER; "" means the base name of Command[0].
	Handler string
	// Concurrency is the number of processes; zero means 1.
	Concurrency int
	// Timeout bounds one invocation from the moment a process takes it;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// MemorySize is reported in AWS_LAMBDA_FUNCTION_MEMORY_SIZE (MB); zero
	// means 128.
	MemorySize int
	// Region and Account go into AWS_REGION and the invoked function ARN;
	// "" means us-east-1 and 000000000000.
	Region, Account string
	// Logger receives the processes' output and lifecycle, without
	// payloads. Nil discards.
	Logger *slog.Logger
}

// Invoker is a pool of handler processes behind the Runtime API. It is safe
// for concurrent use. New starts it; Close stops it.
type Invoker struct {
	cfg  Config
	path string
	arn  string
	env  []string // everything but the per-process variables
	log  *slog.Logger
	jobs chan *call // unbuffered: a send is a handoff to a polling process
	// anyPeer lets any local process use the Runtime API; only tests that
	// play the runtime themselves set it.
	anyPeer atomic.Bool
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	slots   []*slot
}

// New starts the Runtime API listeners and the processes, and returns
// without waiting for the processes to initialise: invocations wait for them.
func New(cfg Config) (*Invoker, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("runtime function: no command")
	}
	if cfg.Name == "" {
		cfg.Name = "function"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MemorySize <= 0 {
		cfg.MemorySize = DefaultMemorySize
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Account == "" {
		cfg.Account = DefaultAccount
	}
	if cfg.Handler == "" {
		cfg.Handler = filepath.Base(cfg.Command[0])
	}
	path, err := exec.LookPath(cfg.Command[0])
	if err != nil {
		return nil, fmt.Errorf("runtime function %s: %w", cfg.Name, err)
	}
	if cfg.Dir == "" {
		if cfg.Dir, err = os.Getwd(); err != nil {
			return nil, fmt.Errorf("runtime function %s: working directory: %w", cfg.Name, err)
		}
	}
	inv := &Invoker{
		cfg:     cfg,
		path:    path,
		arn:     fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", cfg.Region, cfg.Account, cfg.Name),
		log:     cfg.Logger,
		jobs:    make(chan *call),
		closing: make(chan struct{}),
	}
	if inv.log == nil {
		inv.log = slog.New(slog.DiscardHandler)
	}
	inv.log = inv.log.With("function", cfg.Name)
	inv.env = os.Environ()
	for k, v := range cfg.Env {
		inv.env = append(inv.env, k+"="+v)
	}
	inv.env = append(inv.env,
		"_HANDLER="+cfg.Handler,
		"AWS_LAMBDA_FUNCTION_NAME="+cfg.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(cfg.MemorySize),
		"AWS_LAMBDA_FUNCTION_VERSION="+version,
		"AWS_REGION="+cfg.Region,
		"AWS_DEFAULT_REGION="+cfg.Region,
		"LAMBDA_TASK_ROOT="+cfg.Dir,
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+cfg.Name,
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
	)
	for i := range cfg.Concurrency {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = inv.Close() // the listen error is the one to report
			return nil, fmt.Errorf("runtime function %s: listen: %w", cfg.Name, err)
		}
		s := &slot{inv: inv, n: i, ln: ln, log: inv.log.With("process", i)}
		s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(inv.log.Handler(), slog.LevelDebug)}
		inv.slots = append(inv.slots, s)
		go func() { _ = s.srv.Serve(&peerListener{Listener: ln, s: s}) }()
	}
	for _, s := range inv.slots {
		inv.wg.Add(1)
		go s.supervise()
	}
	return inv, nil
}

// call is one invocation.
type call struct {
	id      string
	payload []byte
	limit   time.Time // the caller's deadline; zero for none
	done    chan struct{}
	once    sync.Once
	resp    *mapping.Response
	err     error
	// sent is set once the event is written to the process. A process
	// may answer before it has read the whole event; Invoke then tells
	// the engine the payload is still in use.
	sent atomic.Bool
}

func (c *call) finish(resp *mapping.Response, err error) {
	c.once.Do(func() {
		c.resp, c.err = resp, err
		close(c.done)
	})
}

// Invoke hands req.Payload to the next idle process, waiting for one in
// arrival order, and waits for its answer, for at most the configured
// Timeout (counted from the handoff) and until req.Deadline. Cancelling ctx
// returns ctx's error, wrapped; an invocation already handed over goes on in
// its process. See the package documentation for the outcomes.
func (inv *Invoker) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	id := req.RequestID
	if id == "" {
		id = uuid.NewString()
	}
	c := &call{id: id, payload: req.Payload, limit: req.Deadline, done: make(chan struct{})}
	select {
	case <-inv.closing:
		return nil, fmt.Errorf("runtime function %s: request %s: %w", inv.cfg.Name, id, ErrClosed)
	default:
	}
	select {
	case inv.jobs <- c:
	case <-ctx.Done():
		return nil, fmt.Errorf("runtime function %s: request %s: waiting for a process: %w", inv.cfg.Name, id, ctx.Err())
	case <-inv.closing:
		return nil, fmt.Errorf("runtime function %s: request %s: %w", inv.cfg.Name, id, ErrClosed)
	}
	select {
	case <-c.done:
		if c.resp != nil && !c.sent.Load() {
			c.resp.PayloadInUse = true
		}
		return c.resp, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("runtime function %s: request %s: %w", inv.cfg.Name, id, ctx.Err())
	}
}

// Close stops every process (SIGTERM to its process group, SIGKILL after
// 2 s), waits for them to exit, and closes the listeners. Invocations in
// progress fail with ErrClosed. It is idempotent.
func (inv *Invoker) Close() error {
	inv.once.Do(func() {
		close(inv.closing)
		for _, s := range inv.slots {
			s.stop()
		}
		inv.wg.Wait()
		for _, s := range inv.slots {
			_ = s.srv.Close()
		}
	})
	return nil
}

// slot is one process of the pool and its Runtime API listener. The
// supervise goroutine owns the process's lifecycle; the HTTP handlers and
// timers share the fields under mu.
type slot struct {
	inv *Invoker
	n   int
	ln  net.Listener
	srv *http.Server
	log *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	gen      int  // process generation, bumped at each start
	alive    bool // the process runs and may be handed events
	polling  bool // a GET next is waiting
	cur      *call
	curEnd   time.Time // the deadline sent in Lambda-Runtime-Deadline-Ms
	curAllow time.Duration
	lastID   string // the request id of the latest invocation, for output
	timer    *time.Timer
	kill     *time.Timer // Close's SIGKILL after the grace period
	timedOut bool        // the process was killed for a timeout
	served   bool        // the process finished an invocation
	asked    bool        // the process asked for an event
	initErr  *mapping.FunctionError
}

// supervise starts the process, waits for it to exit, and starts it again,
// until Close.
func (s *slot) supervise() {
	defer s.inv.wg.Done()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 30 * time.Second
	bo.MaxElapsedTime = 0
	for {
		exited, err := s.start()
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			s.log.Error("runtime function: cannot start process", "err", err)
			s.failWaiter(&mapping.FunctionError{Kind: "Unhandled", Type: "Runtime.InvalidEntrypoint", Message: err.Error(), StatusCode: 200, ExecutedVersion: version})
		} else {
			<-exited
		}
		s.mu.Lock()
		timedOut, served, asked, initErr := s.timedOut, s.served, s.asked, s.initErr
		s.mu.Unlock()
		select {
		case <-s.inv.closing:
			return
		default:
		}
		if err == nil && !asked {
			fe := initErr
			if fe == nil {
				fe = &mapping.FunctionError{Kind: "Unhandled", Type: "Runtime.InitError", Message: "Runtime exited before it asked for an event", StatusCode: 200, ExecutedVersion: version}
			}
			s.failWaiter(fe)
		}
		if timedOut || served {
			bo.Reset()
			continue
		}
		wait := time.NewTimer(bo.NextBackOff())
		select {
		case <-wait.C:
		case <-s.inv.closing:
			wait.Stop()
			return
		}
	}
}

// failWaiter fails one invocation waiting for a process, if there is one,
// with fe: the invocation that would have met this failed init.
func (s *slot) failWaiter(fe *mapping.FunctionError) {
	select {
	case c := <-s.inv.jobs:
		c.finish(nil, fe)
	default:
	}
}

// start starts a new process and returns a channel closed once it exited
// and its invocation, if any, was failed.
func (s *slot) start() (<-chan struct{}, error) {
	inv := s.inv
	cmd := exec.Command(inv.path, inv.cfg.Command[1:]...)
	cmd.Dir = inv.cfg.Dir
	cmd.Env = append(inv.env[:len(inv.env):len(inv.env)],
		"AWS_LAMBDA_RUNTIME_API="+s.ln.Addr().String(),
		"AWS_LAMBDA_LOG_STREAM_NAME="+logStream(),
	)
	proc.Prepare(cmd)
	cmd.Stdout = &lineLog{s: s, stream: "stdout"}
	cmd.Stderr = &lineLog{s: s, stream: "stderr"}
	cmd.WaitDelay = time.Second

	s.mu.Lock()
	select {
	case <-inv.closing:
		s.mu.Unlock()
		return nil, ErrClosed
	default:
	}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.cmd = cmd
	s.gen++
	s.alive, s.timedOut, s.served, s.asked, s.initErr = true, false, false, false, nil
	s.mu.Unlock()
	pid := cmd.Process.Pid
	s.log.Debug("runtime function: process started", "pid", pid)

	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		_ = proc.Signal(cmd, syscall.SIGKILL) // whatever it left in its group
		cmd.Stdout.(*lineLog).flush()
		cmd.Stderr.(*lineLog).flush()
		s.mu.Lock()
		c, id := s.cur, ""
		if c != nil {
			id = c.id
		}
		s.cur, s.alive = nil, false
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.kill != nil {
			s.kill.Stop()
		}
		timedOut := s.timedOut
		s.mu.Unlock()
		select {
		case <-inv.closing:
			if c != nil {
				c.finish(nil, fmt.Errorf("runtime function %s: request %s: %w", inv.cfg.Name, id, ErrClosed))
			}
		default:
			if c != nil {
				c.finish(nil, &mapping.FunctionError{
					Kind: "Unhandled", Type: "Runtime.ExitError", StatusCode: 200, ExecutedVersion: version,
					Message: fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %s", id, exitStatus(err, cmd)),
				})
			}
			if !timedOut {
				s.log.Warn("runtime function: process exited", "pid", pid, "status", exitStatus(err, cmd), "request_id", id)
			}
		}
		close(exited)
	}()
	return exited, nil
}

func exitStatus(err error, cmd *exec.Cmd) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exited"
}

// stop asks the process to stop (SIGTERM to its group) and kills the group
// if it has not exited after stopGrace. The exit goroutine of start reaps
// it; supervise returns once it did, and Close waits for that.
func (s *slot) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || !s.alive {
		return
	}
	s.alive = false
	cmd := s.cmd
	_ = proc.Signal(cmd, syscall.SIGTERM)
	s.kill = time.AfterFunc(stopGrace, func() { _ = proc.Signal(cmd, syscall.SIGKILL) })
}

// timeout ends the invocation c when its time is up: it fails c and kills
// the process, which supervise then restarts.
func (s *slot) timeout(c *call, allowed time.Duration) {
	s.mu.Lock()
	if s.cur != c {
		s.mu.Unlock()
		return
	}
	s.cur, s.alive, s.timedOut = nil, false, true
	cmd := s.cmd
	s.mu.Unlock()
	c.finish(nil, invoke.TimeoutError(allowed, version))
	s.log.Warn("runtime function: invocation timed out: killing the process", "request_id", c.id, "pid", cmd.Process.Pid, "timeout", allowed)
	_ = proc.Signal(cmd, syscall.SIGKILL)
}

// peerListener accepts only connections from the slot's own process (or
// what runs in its process group): the Runtime API hands out events and
// takes responses, so no other local process may reach it.
type peerListener struct {
	net.Listener
	s *slot
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.s.mu.Lock()
		pgid := 0
		if l.s.cmd != nil && l.s.cmd.Process != nil {
			pgid = l.s.cmd.Process.Pid
		}
		l.s.mu.Unlock()
		if l.s.inv.anyPeer.Load() {
			return c, nil
		}
		if pgid == 0 {
			_ = c.Close()
			continue
		}
		if in, known := peerInGroup(c, pgid); known && !in {
			l.s.log.Warn("runtime function: refused a Runtime API connection from a process that is not this handler", "remote", c.RemoteAddr().String())
			_ = c.Close()
			continue
		}
		return c, nil
	}
}

const apiPrefix = "/2018-06-01/runtime/"

// ServeHTTP serves the Runtime API to this slot's process.
func (s *slot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := strings.CutPrefix(r.URL.Path, apiPrefix)
	switch {
	case !ok:
		apiError(w, http.StatusNotFound, "NotFound", "no such Runtime API path")
	case p == "invocation/next" && r.Method == http.MethodGet:
		s.next(w, r)
	case p == "init/error" && r.Method == http.MethodPost:
		s.initError(w, r)
	case strings.HasPrefix(p, "invocation/") && r.Method == http.MethodPost:
		id, what, _ := strings.Cut(strings.TrimPrefix(p, "invocation/"), "/")
		switch what {
		case "response":
			s.response(w, r, id)
		case "error":
			s.errorResponse(w, r, id)
		default:
			apiError(w, http.StatusNotFound, "NotFound", "no such Runtime API path")
		}
	default:
		apiError(w, http.StatusNotFound, "NotFound", "no such Runtime API path")
	}
}

func apiError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(invoke.LambdaError{Type: typ, Message: msg})
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`+"\n")
}

// next hands the process the next event, waiting for one.
func (s *slot) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if !s.alive || s.cur != nil || s.polling {
		s.mu.Unlock()
		apiError(w, http.StatusForbidden, "InvalidStateTransition", "the runtime asked for an event while it has one or another request waits")
		return
	}
	s.polling, s.asked = true, true
	gen := s.gen
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.polling = false
		s.mu.Unlock()
	}()

	var c *call
	select {
	case c = <-s.inv.jobs:
	case <-r.Context().Done():
		return
	case <-s.inv.closing:
		return
	}
	now := time.Now()
	deadline := now.Add(s.inv.cfg.Timeout)
	if !c.limit.IsZero() && c.limit.Before(deadline) {
		deadline = c.limit
	}
	s.mu.Lock()
	if s.gen != gen || !s.alive {
		s.mu.Unlock()
		c.finish(nil, fmt.Errorf("runtime function %s: request %s: the process ended before it took the event", s.inv.cfg.Name, c.id))
		return
	}
	s.cur, s.lastID = c, c.id
	s.curEnd = time.UnixMilli(deadline.UnixMilli())
	allowed := deadline.Sub(now)
	s.curAllow = allowed
	s.timer = time.AfterFunc(allowed, func() { s.timeout(c, allowed) })
	s.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", c.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", s.inv.arn)
	h.Set("Lambda-Runtime-Trace-Id", traceID(now))
	h.Set("Content-Length", strconv.Itoa(len(c.payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(c.payload)
	c.sent.Store(true)
}

// take ends the invocation id of this process and returns it, or nil when
// it is not the one in progress. late reports that the process answered at
// or after the deadline it was given: the invocation timed out, whatever
// the answer (a runtime may report its context's deadline as an error just
// before esmd's timer fires).
func (s *slot) take(id string) (c *call, late bool, allowed time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c = s.cur
	if c == nil || c.id != id {
		return nil, false, 0
	}
	s.cur, s.served = nil, true
	if s.timer != nil {
		s.timer.Stop()
	}
	return c, !time.Now().Before(s.curEnd), s.curAllow
}

func (s *slot) response(w http.ResponseWriter, r *http.Request, id string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, invoke.MaxResponse+1))
	if err != nil {
		return // the process went away; its exit fails the invocation
	}
	c, late, allowed := s.take(id)
	if c == nil {
		apiError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation "+id+" in progress")
		return
	}
	switch {
	case late:
		c.finish(nil, invoke.TimeoutError(allowed, version))
		accepted(w)
		return
	case len(body) > invoke.MaxResponse:
		c.finish(nil, invoke.TooLargeError(version))
		apiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("response over %d bytes", invoke.MaxResponse))
		return
	}
	c.finish(&mapping.Response{Body: body, StatusCode: 200, ExecutedVersion: version}, nil)
	accepted(w)
}

// reportedError reads an error report: Lambda's error object, with the
// type from the Lambda-Runtime-Function-Error-Type header when the body has
// none.
func reportedError(r *http.Request) *mapping.FunctionError {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	fe := &mapping.FunctionError{Kind: "Unhandled", StatusCode: 200, ExecutedVersion: version}
	if le, ok := invoke.ParseError(body); ok {
		fe.Type, fe.Message = le.Type, le.Message
	} else {
		fe.Message = invoke.Snippet(body, 200)
	}
	if fe.Type == "" {
		fe.Type = r.Header.Get("Lambda-Runtime-Function-Error-Type")
	}
	return fe
}

func (s *slot) errorResponse(w http.ResponseWriter, r *http.Request, id string) {
	fe := reportedError(r)
	c, late, allowed := s.take(id)
	if c == nil {
		apiError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation "+id+" in progress")
		return
	}
	if late {
		fe = invoke.TimeoutError(allowed, version)
	}
	c.finish(nil, fe)
	accepted(w)
}

func (s *slot) initError(w http.ResponseWriter, r *http.Request) {
	fe := reportedError(r)
	if fe.Type == "" {
		fe.Type = "Runtime.InitError"
	}
	s.mu.Lock()
	s.initErr = fe
	cmd := s.cmd
	s.mu.Unlock()
	s.log.Warn("runtime function: init error", "error_type", fe.Type, "error_message", fe.Message)
	accepted(w)
	// Lambda ends a runtime that failed its init; a restart follows.
	go func() {
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			_ = proc.Signal(cmd, syscall.SIGKILL)
		case <-s.inv.closing:
		}
	}()
}

// lineLog writes a process's output to the log, one record per line.
type lineLog struct {
	s      *slot
	stream string
	buf    []byte
}

const maxLine = 64 << 10

func (l *lineLog) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := -1
		for j, b := range p {
			if b == '\n' {
				i = j
				break
			}
		}
		if i < 0 {
			l.buf = append(l.buf, p...)
			if len(l.buf) >= maxLine {
				l.emit()
			}
			break
		}
		l.buf = append(l.buf, p[:i]...)
		l.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineLog) flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}

func (l *lineLog) emit() {
	line := strings.TrimRight(string(l.buf), "\r")
	l.buf = l.buf[:0]
	l.s.mu.Lock()
	id := l.s.lastID
	l.s.mu.Unlock()
	l.s.log.Info("handler output", "stream", l.stream, "request_id", id, "line", line)
}

// logStream names a log stream as Lambda does: date/[version]random.
func logStream() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("2006/01/02") + "/[" + version + "]" + hex.EncodeToString(b[:])
}

// traceID is an X-Ray trace header for an invocation started at t.
func traceID(t time.Time) string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", t.Unix(), hex.EncodeToString(b[:12]), hex.EncodeToString(b[12:]))
}
