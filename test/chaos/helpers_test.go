package chaos

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var full = flag.Bool("chaos.full", false, "run the full-length chaos scenarios (20 crashes, 50,000 records, 30 s outages)")

// size picks the CI or the full value.
func size[T any](ci, fullRun T) T {
	if *full {
		return fullRun
	}
	return ci
}

// result logs one row of the closing table.
func result(t *testing.T, scenario string, iterations, records, lost, dups int, recovery string) {
	t.Helper()
	t.Logf("RESULT | %s | %d | %d | %d | %d | %s |", scenario, iterations, records, lost, dups, recovery)
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// esmdBinary builds cmd/esmd once per test binary, into a folder every user
// can read (some scenarios run esmd as an unprivileged user).
func esmdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "esmd-chaos-bin-")
		if err != nil {
			buildErr = err
			return
		}
		_ = os.Chmod(dir, 0o755)
		buildPath = filepath.Join(dir, "esmd")
		out, err := exec.Command("go", "build", "-o", buildPath, "github.com/esmd-dev/esmd/cmd/esmd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// logBuf collects a process's output through a pipe (so that a file size
// limit on the process does not apply to its log).
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is one esmd process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *logBuf
	done chan struct{}
}

// procOpts changes how esmd is started.
type procOpts struct {
	// wrap is put before the esmd command line (prlimit, unshare).
	wrap []string
	// args replace "run -c CONFIG".
	args []string
	// cred runs esmd as another user.
	cred *syscall.Credential
}

// writeConfig writes yaml to dir/esmd.yaml and returns its path.
func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, "esmd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startESMD writes yaml to dir/esmd.yaml and runs `esmd run -c` on it.
func startESMD(t *testing.T, dir, yaml string) *proc {
	t.Helper()
	return startWith(t, dir, yaml, procOpts{})
}

func startWith(t *testing.T, dir, yaml string, o procOpts) *proc {
	t.Helper()
	cfg := writeConfig(t, dir, yaml)
	args := o.args
	if args == nil {
		args = []string{"run", "-c", cfg}
	}
	argv := append(append([]string{}, o.wrap...), esmdBinary(t))
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	out := &logBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	if o.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			var keep []string
			for line := range strings.Lines(out.String()) {
				if !strings.Contains(line, "level=DEBUG") {
					keep = append(keep, strings.TrimRight(line, "\n"))
				}
			}
			t.Logf("esmd output without debug lines (pid %d):\n%s", cmd.Process.Pid, lastLines(strings.Join(keep, "\n"), 40))
		}
	})
	return p
}

func (p *proc) log() string { return p.out.String() }

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit on its own and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("esmd did not exit within %s", timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// term sends SIGTERM and returns the exit code.
func (p *proc) term(timeout time.Duration) int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(timeout)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// countLines counts the log lines containing every one of subs.
func countLines(log string, subs ...string) int {
	n := 0
	for line := range strings.Lines(log) {
		ok := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// call is one invocation the sink received.
type call struct {
	At   time.Time
	Run  int
	Body []byte
	Recs []rec
	Req  *http.Request
}

// sink is an HTTP function that records every invocation and answers with
// respond (200 and an empty body when nil). respond may hijack the
// connection; it then returns status 0.
type sink struct {
	srv     *httptest.Server
	mu      sync.Mutex
	calls   []call
	run     atomic.Int64
	last    atomic.Int64 // unix nanos of the last call
	busy    atomic.Int64 // requests being handled
	respond func(w http.ResponseWriter, c call) (status int, body string)
}

func newSink(t *testing.T, respond func(w http.ResponseWriter, c call) (int, string)) *sink {
	t.Helper()
	s := &sink{respond: respond}
	s.last.Store(time.Now().UnixNano())
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The run is the one current when the request arrived, before
		// its body is read.
		run := int(s.run.Load())
		s.busy.Add(1)
		defer s.busy.Add(-1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		recs, err := decodeRecs(body)
		if err != nil {
			http.Error(w, "bad event: "+err.Error(), 400)
			return
		}
		c := call{At: time.Now(), Run: run, Body: body, Recs: recs, Req: r}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		s.mu.Unlock()
		s.last.Store(time.Now().UnixNano())
		status, out := 200, ""
		if s.respond != nil {
			status, out = s.respond(w, c)
		}
		if status == 0 {
			return // hijacked
		}
		if status != 200 {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			w.WriteHeader(status)
			if out == "" {
				out = `{"errorMessage":"boom","errorType":"Error"}`
			}
		}
		_, _ = io.WriteString(w, out)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) snapshot() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

// settle waits until the sink has handled every request that reached it:
// none is being handled and none came for quiet. After a kill -9, what the
// dead process had written may still be read; a busy machine can take
// longer than any fixed pause to get to it.
func (s *sink) settle(t *testing.T, quiet time.Duration) {
	t.Helper()
	waitFor(t, 30*time.Second, "the sink to settle", func() bool {
		return s.busy.Load() == 0 && time.Since(time.Unix(0, s.last.Load())) > quiet
	})
}

func (s *sink) ncalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// abortConn closes c with a TCP reset.
func abortConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watchdog fails t when the sink sees no invocation for idle while the test
// still runs, the engine's promise that it never deadlocks. Stop it with the
// returned func.
func watchdog(t *testing.T, s *sink, idle time.Duration) func() {
	t.Helper()
	done := make(chan struct{})
	var once sync.Once
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if since := time.Since(time.Unix(0, s.last.Load())); since > idle {
					t.Errorf("watchdog: no invocation for %s", since.Round(time.Second))
					return
				}
			}
		}
	}()
	stop := func() { once.Do(func() { close(done) }) }
	t.Cleanup(stop)
	return stop
}

// ledger follows delivered records across esmd runs: how often each was
// delivered, how many deliveries repeated an earlier one, and per-key order
// within each run (a key's counters are consecutive inside one run).
type ledger struct {
	mu    sync.Mutex
	count map[string]int
	// ids holds, per data, the stream records (shard and sequence number)
	// that carried it. A source may hold one data twice, when the SDK
	// retried a write that the server had applied (all or part of a batch)
	// but not answered: that is a second record, not a second delivery of
	// the first.
	ids map[string][]recID
	// writerRepeats counts records whose data an earlier record of the
	// same shard already carried; such a record must come after that one,
	// and straight after it in its key's order.
	writerRepeats int
	run           int
	next          map[string]int   // per key, within the current run
	last          map[string]recID // per key, the record last delivered in the current run
	dups          int
	runDups       map[int]int
	violations    []string
	// floor is, per shard, the checkpoint saved when the current run
	// started ("" for the only shard of a one-shard source): no record at
	// or before it may come in that run.
	floor    map[string]string
	belowCP  []string
	recentAt []time.Time // delivery time of each observed record batch
	recentN  []int
}

func newLedger() *ledger {
	return &ledger{count: map[string]int{}, ids: map[string][]recID{}, next: map[string]int{}, last: map[string]recID{}, runDups: map[int]int{}}
}

// setFloor records the checkpoints saved before the next run.
func (l *ledger) setFloor(saved map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.floor = saved
}

// since counts the records delivered at or after at.
func (l *ledger) since(at time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := len(l.recentAt) - 1; i >= 0 && !l.recentAt[i].Before(at); i-- {
		n += l.recentN[i]
	}
	return n
}

// observe takes the records of one call of the given run; data is
// "key:counter".
func (l *ledger) observe(run int, recs []rec) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if run != l.run {
		l.run = run
		l.next = map[string]int{}
		l.last = map[string]recID{}
	}
	l.recentAt = append(l.recentAt, time.Now())
	l.recentN = append(l.recentN, len(recs))
	for _, r := range recs {
		d := r.Data
		id := recID{r.Shard, r.Seq}
		copies := l.ids[d]
		copyAt := slices.Index(copies, id)
		if copyAt >= 0 {
			l.dups++
			l.runDups[run]++
		} else {
			if len(copies) > 0 {
				// The source holds this data in another record too. Only
				// a later record of the same shard can be the writer's
				// second copy; anything else is esmd changing a record.
				if prev := copies[len(copies)-1]; !prev.before(id) && len(l.violations) < 10 {
					l.violations = append(l.violations, fmt.Sprintf("run %d: %s came in record %s, not after its earlier record %s", run, d, id, prev))
				}
				l.writerRepeats++
			}
			copyAt = len(copies)
			l.ids[d] = append(copies, id)
		}
		l.count[d]++
		if l.floor != nil {
			cp, ok := l.floor[r.Shard]
			if !ok && len(l.floor) == 1 && r.Shard == "" {
				for _, v := range l.floor {
					cp, ok = v, true
				}
			}
			if ok && seqLE(r.Seq, cp) && len(l.belowCP) < 10 {
				l.belowCP = append(l.belowCP, fmt.Sprintf("run %d: %s (seq %s) at or before the saved checkpoint %s", run, d, r.Seq, cp))
			}
		}
		i := strings.LastIndexByte(d, ':')
		if i < 0 {
			continue
		}
		key := d[:i]
		var n int
		fmt.Sscanf(d[i+1:], "%d", &n)
		want, ok := l.next[key]
		// A key's counters rise by one, except that the writer's second
		// copy of a counter comes straight after its first.
		inOrder := !ok || n == want || (n == want-1 && copyAt > 0 && l.last[key] == copies[copyAt-1])
		if !inOrder && len(l.violations) < 10 {
			l.violations = append(l.violations, fmt.Sprintf("run %d, %s: got %d, want %d (record %s, delivered %d times)", run, key, n, want, id, l.count[d]))
		}
		l.next[key] = n + 1
		l.last[key] = id
	}
}

// recID names a stream record: its shard and sequence number.
type recID struct{ shard, seq string }

func (a recID) String() string { return a.shard + "/" + a.seq }

// before reports whether a comes before b in the same shard.
func (a recID) before(b recID) bool { return a.shard == b.shard && !seqLE(b.seq, a.seq) }

// ledgerView is a copy of a ledger's counts.
type ledgerView struct {
	dups, writerRepeats int
	runDups             map[int]int
	violations, belowCP []string
}

// snap copies the counts, safe while calls still arrive.
func (l *ledger) snap() ledgerView {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := ledgerView{dups: l.dups, writerRepeats: l.writerRepeats, runDups: map[int]int{}, violations: append([]string(nil), l.violations...), belowCP: append([]string(nil), l.belowCP...)}
	for k, n := range l.runDups {
		v.runDups[k] = n
	}
	return v
}

// seqLE compares decimal sequence numbers.
func seqLE(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a <= b
}

func (l *ledger) unique() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.count)
}

// lost lists the records of want never delivered.
func (l *ledger) lost(want []put) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range want {
		if l.count[string(r.Data)] == 0 {
			out = append(out, string(r.Data))
		}
	}
	return out
}

func dataOf(c call) []string {
	out := make([]string, len(c.Recs))
	for i, r := range c.Recs {
		out[i] = r.Data
	}
	return out
}

// baseYAML renders the top of an esmd configuration: AWS endpoints (lines
// under aws.endpoints), one HTTP function "sink" (fnExtra adds settings to
// it; the timeout is 30 s unless fnExtra sets one), the checkpoint file in
// dir/state, debug logging and no admin server.
func baseYAML(endpoints, dir, sinkURL, fnExtra string) string {
	if !strings.Contains(fnExtra, "timeout:") {
		fnExtra = ", timeout: 30s" + fnExtra
	}
	return fmt.Sprintf(`aws:
  region: us-east-1
  credentials: {accessKeyId: test, secretAccessKey: test}
  endpoints:
%sfunctions:
  sink:
    http: {url: %q%s}
checkpoints:
  file: {path: %s}
server: {listen: "off"}
logging: {level: debug}
shutdownTimeout: 20s
`, endpoints, sinkURL, fnExtra, filepath.Join(dir, "state", "checkpoints.db"))
}

// mappingYAML renders one mapping from arn to the sink; extra lines are
// indented into it.
func mappingYAML(arn, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mappings:\n  - EventSourceArn: %s\n    FunctionName: sink\n", arn)
	for _, line := range strings.Split(strings.TrimSpace(extra), "\n") {
		if line != "" {
			b.WriteString("    " + line + "\n")
		}
	}
	return b.String()
}

// TestLedger checks the ledger's own verdicts: re-deliveries and order,
// with the writer's second copies of a record's data.
func TestLedger(t *testing.T) {
	a := rec{Seq: "10", Data: "k:5"}
	b := rec{Seq: "11", Data: "k:5"} // the writer's second copy of a
	c := rec{Seq: "12", Data: "k:6"}
	other := rec{Seq: "11", Shard: "s2", Data: "k:5"}
	type delivery struct {
		run  int
		recs []rec
	}
	for _, tt := range []struct {
		name          string
		deliveries    []delivery
		dups, repeats int
		violations    []string
	}{
		{"in order", []delivery{{0, []rec{a, c}}}, 0, 0, nil},
		{"a second copy after the first", []delivery{{0, []rec{a, b, c}}}, 0, 1, nil},
		{"both copies again after a crash", []delivery{{0, []rec{a, b}}, {1, []rec{a, b, c}}}, 2, 1, nil},
		{"a record twice in one run", []delivery{{0, []rec{a, c, a}}}, 1, 0,
			[]string{"run 0, k: got 5, want 7 (record /10, delivered 2 times)"}},
		{"a second copy out of its place", []delivery{{0, []rec{a, c, b}}}, 0, 1,
			[]string{"run 0, k: got 5, want 7 (record /11, delivered 2 times)"}},
		{"the copies reversed in a later run", []delivery{{0, []rec{a}}, {1, []rec{b, a}}}, 1, 1,
			[]string{"run 1, k: got 5, want 6 (record /10, delivered 3 times)"}},
		{"a copy in another shard", []delivery{{0, []rec{a, other}}}, 0, 1,
			[]string{"run 0: k:5 came in record s2/11, not after its earlier record /10"}},
		{"a counter skipped", []delivery{{0, []rec{{Seq: "1", Data: "k:1"}, {Seq: "2", Data: "k:3"}}}}, 0, 0,
			[]string{"run 0, k: got 3, want 2 (record /2, delivered 1 times)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			for _, d := range tt.deliveries {
				l.observe(d.run, d.recs)
			}
			v := l.snap()
			if v.dups != tt.dups || v.writerRepeats != tt.repeats || !slices.Equal(v.violations, tt.violations) {
				t.Fatalf("dups %d, writer repeats %d, violations %q; want %d, %d and %q", v.dups, v.writerRepeats, v.violations, tt.dups, tt.repeats, tt.violations)
			}
		})
	}
}
