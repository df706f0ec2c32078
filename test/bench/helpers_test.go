package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

// enabled skips process-level benchmarks unless ESMD_BENCH=1 (run.sh sets
// it): they take minutes and need a quiet machine.
func enabled(t testing.TB) {
	t.Helper()
	if os.Getenv("ESMD_BENCH") != "1" {
		t.Skip("set ESMD_BENCH=1 (test/bench/run.sh does) to run the process-level benchmarks")
	}
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// binary builds a main package of the module once per test binary.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "esmd-bench-bin-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", p, "github.com/esmd-dev/esmd/"+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = p
	return p
}

// sink is the no-op HTTP function, a process of its own.
type sink struct {
	URL string
	cmd *exec.Cmd
}

func startSink(t testing.TB) *sink {
	t.Helper()
	cmd := exec.Command(binary(t, "test/bench/sink"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("sink: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return &sink{URL: "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening on ")) + "/", cmd: cmd}
}

// count returns the records and requests the sink received.
func (s *sink) count(t testing.TB) (records, requests int64) {
	t.Helper()
	resp, err := http.Get(s.URL + "count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := fmt.Fscan(resp.Body, &records, &requests); err != nil {
		t.Fatal(err)
	}
	return records, requests
}

// procStats are a process's CPU time and memory, from /proc.
type procStats struct {
	CPU     time.Duration
	RSS     int64 // bytes now
	PeakRSS int64 // bytes, high-water mark
}

func readProc(t testing.TB, pid int) procStats {
	t.Helper()
	var st procStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(ut+stt) * time.Second / 100 // USER_HZ is 100 on Linux
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			st.RSS = kb << 10
		case "VmHWM":
			st.PeakRSS = kb << 10
		}
	}
	return st
}

// esmd is one esmd process.
type esmd struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startESMD(t testing.TB, dir, yaml string) *esmd {
	t.Helper()
	cfg := filepath.Join(dir, "esmd.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "esmd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t, "cmd/esmd"), "run", "-c", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &esmd{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(e.done)
	}()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("esmd log:\n%s", strings.Join(lines, "\n"))
		}
	})
	return e
}

func (e *esmd) pid() int { return e.cmd.Process.Pid }

// stop drains esmd (SIGTERM) and waits up to 20 s, then kills it.
func (e *esmd) stop() {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}

var outMu sync.Mutex

// report logs a measured value and appends it to ESMD_BENCH_OUT as a line
// BENCH<tab>METRIC<tab>VALUE<tab>UNIT, for run.sh's summary.
func report(t testing.TB, bench, metric string, value float64, unit string) {
	t.Helper()
	t.Logf("%s: %s = %.4g %s", bench, metric, value, unit)
	path := os.Getenv("ESMD_BENCH_OUT")
	if path == "" {
		return
	}
	outMu.Lock()
	defer outMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _ = fmt.Fprintf(f, "%s\t%s\t%.6g\t%s\n", bench, metric, value, unit)
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return cond()
}
