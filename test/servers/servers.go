// Package servers starts the real test servers that esmd's tests talk to over
// the wire: kinesis-mock and kinesalite (Kinesis), moto (DynamoDB, DynamoDB
// Streams, SQS, SNS, S3), an embedded nats-server with JetStream, and an
// in-process kfake Kafka cluster.
//
// Each starter (KinesisMock, Kinesalite, Moto, NATS, Kafka) starts its server
// at most once per test binary, on a free 127.0.0.1 port, and returns its
// address. Later calls, from any goroutine, return the same address, or fail
// with the same reason as the first. A test package that uses a starter must
// route its TestMain through Main, which stops every server the package
// started, by PID, after the tests ran:
//
//	func TestMain(m *testing.M) { servers.Main(m) }
//
// The external servers are installed into test/.tools by `bash test/install.sh`.
// When one is missing, the starter skips the test, except when the environment
// has CI=true: then the test fails, so that CI never passes by skipping.
//
// Tests share a server, so they must use unique resource names (for example
// t.Name() plus a counter or a random suffix).
package servers

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the AWS region every test server and AWSConfig use.
const Region = "us-east-1"

// Account is the account ID that kinesis-mock, kinesalite and moto put in ARNs.
const Account = "000000000000"

// installHint is appended to "X not installed".
const installHint = "run bash test/install.sh"

// The harness's own scripts, written into one temporary folder on first
// use: preload.js for the Node servers and moto_shim.py for moto.
//
//go:embed preload.js moto_shim.py
var scripts embed.FS

var (
	mainMu     sync.Mutex
	mainCalled bool
	stoppers   []stopper // in start order; stopped in reverse
)

type stopper struct {
	name string
	stop func() error
}

// Main runs the tests of m and then stops every server that this package
// started in the test binary: each child process's group is killed
// (SIGKILL) and the process waited for; in-process servers are shut down. It then exits with the tests' exit code. Call it from TestMain.
func Main(m *testing.M) {
	mainMu.Lock()
	mainCalled = true
	mainMu.Unlock()
	code := m.Run()
	if err := stopAll(code == 0); err != nil {
		fmt.Fprintf(os.Stderr, "servers: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func register(name string, stop func() error) {
	mainMu.Lock()
	defer mainMu.Unlock()
	stoppers = append(stoppers, stopper{name: name, stop: stop})
}

func stopAll(ok bool) error {
	mainMu.Lock()
	list := stoppers
	stoppers = nil
	mainMu.Unlock()
	var errs []error
	for i := len(list) - 1; i >= 0; i-- {
		if err := list[i].stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", list[i].name, err))
		}
	}
	if ok {
		logsMu.Lock()
		for _, f := range logFiles {
			_ = os.Remove(f)
		}
		logFiles = nil
		logsMu.Unlock()
	}
	return errors.Join(errs...)
}

// service is the shared, start-once state of one server.
type service struct {
	name  string
	once  sync.Once
	addrs []string
	err   error
	// missing is set when the server is not installed; err then holds the message.
	missing bool
}

// get starts the service on first use and reports its addresses, failing or
// skipping t with the same reason on every call if the start failed.
func (s *service) get(t testing.TB, start func() ([]string, error)) []string {
	t.Helper()
	mainMu.Lock()
	called := mainCalled
	mainMu.Unlock()
	if !called {
		t.Fatalf("servers: %s: the test package must have `func TestMain(m *testing.M) { servers.Main(m) }` so that servers are stopped", s.name)
	}
	s.once.Do(func() {
		begin := time.Now()
		s.addrs, s.err = start()
		var nf *notInstalledError
		s.missing = errors.As(s.err, &nf)
		if s.err == nil {
			t.Logf("servers: %s ready at %s in %s", s.name, strings.Join(s.addrs, ","), time.Since(begin).Round(time.Millisecond))
		}
	})
	if s.missing {
		if inCI() {
			t.Fatal(s.err.Error())
		}
		t.Skip(s.err.Error())
	}
	if s.err != nil {
		t.Fatalf("servers: start %s: %v", s.name, s.err)
	}
	return s.addrs
}

type notInstalledError struct{ server string }

func (e *notInstalledError) Error() string {
	return e.server + " not installed: " + installHint
}

func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// AWSConfig returns a config for a local test server at endpoint (for example
// "http://127.0.0.1:4566"): region us-east-1, static test credentials, a plain
// HTTP client and BaseEndpoint set, so every client built from it talks to
// endpoint. It reads no environment or shared config files. S3 clients built
// from it also need o.UsePathStyle = true.
func AWSConfig(endpoint string) aws.Config {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.Proxy = nil
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
		HTTPClient:   &http.Client{Transport: tr},
		BaseEndpoint: aws.String(endpoint),
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("servers: free port: %v", err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// toolsDir finds test/.tools: $ESMD_TOOLS if set, else test/.tools under the
// module root (the nearest directory above the working directory with go.mod).
func toolsDir() (string, error) {
	if d := os.Getenv("ESMD_TOOLS"); d != "" {
		return filepath.Abs(d)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "test", ".tools"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; set ESMD_TOOLS")
		}
		dir = parent
	}
}

// tool returns the path of rel under the tools dir, or a notInstalledError.
func tool(server, rel string) (string, error) {
	dir, err := toolsDir()
	if err != nil {
		return "", fmt.Errorf("%s: find tools: %w", server, err)
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		return "", &notInstalledError{server: server}
	}
	return p, nil
}

var (
	logsMu   sync.Mutex
	logFiles []string
)

// scriptDir writes every embedded script, under its own name, into a
// private temporary folder once, and returns the folder; Main removes it. A
// folder of its own, because Python puts a script's folder first on its
// import path.
var scriptDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "esmd-scripts-")
	if err != nil {
		return "", fmt.Errorf("scripts: %w", err)
	}
	register("scripts", func() error { return os.RemoveAll(dir) })
	names, err := fs.Glob(scripts, "*")
	if err != nil {
		return "", fmt.Errorf("scripts: %w", err)
	}
	for _, name := range names {
		data, err := scripts.ReadFile(name)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), data, 0o600)
		}
		if err != nil {
			return "", fmt.Errorf("script %s: %w", name, err)
		}
	}
	return dir, nil
})

// script returns the path of the embedded script name.
func script(name string) (string, error) {
	dir, err := scriptDir()
	return filepath.Join(dir, name), err
}

// proc describes one external server process to start.
type proc struct {
	name string
	path string
	args []string
	env  []string
	dir  string
	// ready reports nil once the server answers.
	ready func(ctx context.Context) error
}

// startTimeout bounds how long a server may take to answer.
const startTimeout = 60 * time.Second

// startProc starts p in its own process group with output to a log file,
// waits until p.ready succeeds, and registers it to be stopped by Main.
func startProc(p proc) error {
	logf, err := os.CreateTemp("", "esmd-"+p.name+"-*.log")
	if err != nil {
		return fmt.Errorf("%s: log file: %w", p.name, err)
	}
	logsMu.Lock()
	logFiles = append(logFiles, logf.Name())
	logsMu.Unlock()

	cmd := exec.Command(p.path, p.args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Stdin = nil
	// Own process group so Main can kill the server and its children; the
	// kernel kills it too if the test binary dies without running Main.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start %s: %w", p.name, p.path, err)
	}
	logf.Close() // the child holds its own descriptor
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	pid := cmd.Process.Pid
	// Test servers keep nothing worth a graceful shutdown (and kinesis-mock
	// ignores SIGTERM), so stop means SIGKILL to the group, then wait.
	var answered atomic.Bool
	stop := func() error {
		select {
		case <-done:
			if !answered.Load() {
				return nil // startProc has said why it never answered
			}
			// Gone before the end: a crash, which the tests sharing the
			// server only see as refused connections. Say so, with the
			// log (go test shows it for a package that failed, or with
			// -v). The run does not fail for it here: a server that is
			// gone after its last use has harmed no test.
			fmt.Fprintf(os.Stderr, "servers: %s (pid %d) exited during the tests (%v); log %s:\n%s\n", p.name, pid, waitErr, logf.Name(), tail(logf.Name()))
			return nil
		default:
		}
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill process group %d: %w", pid, err)
		}
		<-done
		return nil
	}
	register(fmt.Sprintf("%s (pid %d)", p.name, pid), stop)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-done:
			return fmt.Errorf("%s exited before it answered (%v); log %s:\n%s", p.name, waitErr, logf.Name(), tail(logf.Name()))
		case <-ctx.Done():
			_ = stop()
			return fmt.Errorf("%s did not answer within %s (last error: %v); log %s:\n%s", p.name, startTimeout, lastErr, logf.Name(), tail(logf.Name()))
		case <-tick.C:
		}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = p.ready(rctx)
		rcancel()
		if lastErr == nil {
			select {
			case <-done: // answered, but the process is gone: someone else's server
				return fmt.Errorf("%s exited right after start (%v); log %s:\n%s", p.name, waitErr, logf.Name(), tail(logf.Name()))
			default:
				answered.Store(true)
				return nil
			}
		}
	}
}

var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// spawn starts cmd from one OS thread that lives as long as the test binary.
// Pdeathsig fires when the thread that started the child exits, not the
// process, so children must not be started from an arbitrary thread.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread never exits
			for r := range spawnReqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawnReqs <- r
	return <-r.done
}

// startWithRetry retries start a few times when it fails, since a port from
// FreePort may be taken by another process before the server binds it.
func startWithRetry(start func() (string, error)) ([]string, error) {
	var err error
	for range 3 {
		var addr string
		addr, err = start()
		if err == nil {
			return []string{addr}, nil
		}
		var nf *notInstalledError
		if errors.As(err, &nf) {
			return nil, err
		}
	}
	return nil, err
}

// tail returns the last few KiB of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// httpAnswers reports nil when an HTTP request to url gets any response.
func httpAnswers(ctx context.Context, method, url string, header map[string]string, body string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
