package chaos

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/servers"
)

// checkpointRun is a one-shard kinesalite stream with records and a sink.
type checkpointRun struct {
	dir, cfg, cpPath string
	recs             []put
	l                *ledger
	s                *sink
}

func newCheckpointRun(t *testing.T, n int) *checkpointRun {
	t.Helper()
	ep := servers.Kinesalite(t)
	name := servers.UniqueName("cp")
	arn := servers.CreateStream(t, ep, name, 1)
	r := &checkpointRun{recs: keyedRecords(10, n), l: newLedger()}
	putRecords(t, ep, name, r.recs)
	r.s = newSink(t, func(w http.ResponseWriter, c call) (int, string) {
		r.l.observe(c.Run, c.Recs)
		return 200, ""
	})
	r.dir = t.TempDir()
	r.cpPath = filepath.Join(r.dir, "state", "checkpoints.db")
	r.cfg = baseYAML("    kinesis: "+ep+"\n", r.dir, r.s.srv.URL, "") + mappingYAML(arn, `StartingPosition: TRIM_HORIZON
BatchSize: 10
esmd: {pollInterval: 50ms}`)
	return r
}

// TestCheckpointDiskFull runs esmd with a file size limit that lets it
// create its checkpoint file but not grow it, as on a full disk: every save
// fails with an error naming the file, said once per outage; esmd stops
// advancing once its lanes lead the last saved position by the lead limit
// (BatchSize x ParallelizationFactor, plus the batch that found it), rather
// than deliver what it cannot record; nothing is reported saved that is not
// in the file; and a restart without the limit resumes from what the file
// holds, losing nothing.
func TestCheckpointDiskFull(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/prlimit"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs prlimit (util-linux), which Debian installs by default")
		}
		t.Skip("needs prlimit (util-linux)")
	}
	r := newCheckpointRun(t, 200)
	p := startWith(t, r.dir, r.cfg, procOpts{wrap: []string{"prlimit", "--fsize=16384", "--"}})
	waitFor(t, time.Minute, "a save failure", func() bool { return strings.Contains(p.log(), "saving checkpoint failed") || p.exited() })
	if p.exited() {
		t.Fatalf("esmd exited under the file size limit:\n%s", lastLines(p.log(), 20))
	}
	// Give esmd time to run ahead if it would; it must not.
	time.Sleep(2 * time.Second)
	delivered := r.l.unique()
	if delivered > 20 {
		t.Fatalf("%d records delivered while no checkpoint could be saved; the lead limit allows 20", delivered)
	}
	p.kill()
	log := p.log()
	fails := countLines(log, "saving checkpoint failed")
	if fails != 1 {
		t.Errorf("%d 'saving checkpoint failed' lines, want one for the outage", fails)
	}
	for _, want := range []string{r.cpPath, "file too large"} {
		if countLines(log, "saving checkpoint failed", want) == 0 {
			t.Errorf("no save failure line mentions %q", want)
		}
	}
	if n := countLines(log, "checkpoints saved"); n != 0 {
		t.Errorf("%d 'checkpoints saved' lines while every write failed", n)
	}
	saved := savedCheckpoints(t, r.dir)
	if len(saved) != 0 {
		t.Fatalf("file holds %v although every save failed", saved)
	}
	t.Logf("saves failing: %d of %d records delivered before esmd stopped advancing; %d failure line(s)", delivered, len(r.recs), fails)

	// Space is back: the restart resumes from the file (nothing saved:
	// TRIM_HORIZON): what came before comes again, and the rest for the
	// first time.
	r.s.run.Store(1)
	before := r.l.snap().dups
	start := time.Now()
	p2 := startESMD(t, r.dir, r.cfg)
	waitFor(t, time.Minute, "every record", func() bool { return r.l.unique() == len(r.recs) })
	recovery := time.Since(start)
	waitFor(t, 10*time.Second, "a saved checkpoint", func() bool { return strings.Contains(p2.log(), "checkpoints saved") })
	if code := p2.term(30 * time.Second); code != 0 {
		t.Errorf("drain exited %d", code)
	}
	if saved := savedCheckpoints(t, r.dir); len(saved) != 1 {
		t.Errorf("after the restart the file holds %v, want the shard's position", saved)
	}
	lost := len(r.l.lost(r.recs))
	result(t, "checkpoint disk full (file size limit), then restart", 1, len(r.recs), lost, r.l.snap().dups-before,
		fmt.Sprintf("restart re-delivered from the last saved position in %s", recovery.Round(100*time.Millisecond)))
}

// TestCheckpointUnwritable runs esmd as an unprivileged user over a
// checkpoint file it may not write: it refuses to start and names the file.
func TestCheckpointUnwritable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run esmd as another user")
	}
	r := newCheckpointRun(t, 20)
	// A first run writes the file.
	p := startESMD(t, r.dir, r.cfg)
	waitFor(t, time.Minute, "every record", func() bool { return r.l.unique() == len(r.recs) })
	waitFor(t, 10*time.Second, "the mapping to start", func() bool { return strings.Contains(p.log(), "mapping started") })
	if code := p.term(30 * time.Second); code != 0 {
		t.Fatalf("drain exited %d", code)
	}
	const nobody = 65534
	for _, path := range []string{filepath.Dir(r.dir), r.dir, filepath.Dir(r.cpPath)} {
		if err := os.Chmod(path, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(r.cpPath, 0o444); err != nil {
		t.Fatal(err)
	}
	calls := r.s.ncalls()
	p = startWith(t, r.dir, r.cfg, procOpts{cred: &syscall.Credential{Uid: nobody, Gid: nobody}})
	code := p.wait(30 * time.Second)
	log := p.log()
	if code != 1 || !strings.Contains(log, r.cpPath) || !strings.Contains(log, "permission denied") {
		t.Fatalf("exit %d, output:\n%s\nwant exit 1 naming %s and the permission problem", code, log, r.cpPath)
	}
	if r.s.ncalls() != calls {
		t.Fatal("esmd invoked the function without a writable checkpoint file")
	}
	result(t, "checkpoint file unwritable", 1, len(r.recs), 0, 0, "refuses to start, exit 1, names the file")
}

// TestCheckpointCorrupt damages the checkpoint file in several ways: esmd
// refuses to start with an error naming the file, instead of starting over
// from TRIM_HORIZON.
func TestCheckpointCorrupt(t *testing.T) {
	t.Parallel()
	damages := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"start zeroed", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 8192), 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 100); err != nil {
				t.Fatal(err)
			}
		}},
		{"emptied", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"not a checkpoint file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	r := newCheckpointRun(t, 20)
	p := startESMD(t, r.dir, r.cfg)
	waitFor(t, time.Minute, "every record", func() bool { return r.l.unique() == len(r.recs) })
	waitFor(t, 10*time.Second, "the mapping to start", func() bool { return strings.Contains(p.log(), "mapping started") })
	if code := p.term(30 * time.Second); code != 0 {
		t.Fatalf("drain exited %d", code)
	}
	good, err := os.ReadFile(r.cpPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			if err := os.WriteFile(r.cpPath, good, 0o600); err != nil {
				t.Fatal(err)
			}
			d.damage(t, r.cpPath)
			calls := r.s.ncalls()
			p := startESMD(t, r.dir, r.cfg)
			code := p.wait(30 * time.Second)
			log := p.log()
			if code != 1 || !strings.Contains(log, r.cpPath) || !strings.Contains(log, "corrupt") {
				t.Fatalf("exit %d, output:\n%s\nwant exit 1 naming %s as corrupt", code, log, r.cpPath)
			}
			if r.s.ncalls() != calls {
				t.Fatal("esmd invoked the function over a corrupt checkpoint file (a silent restart)")
			}
			result(t, "checkpoint file corrupt: "+d.name, 1, len(r.recs), 0, 0, "refuses to start, exit 1, names the file")
		})
	}
}
