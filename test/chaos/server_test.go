package chaos

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/faultproxy"
	"github.com/esmd-dev/esmd/test/servers"
)

// failingLine ends the Warn the engine logs when a reader's or the shard
// lister's outage starts ("reading shard failed; retrying", "listing shards
// failed; retrying"); recoveredLine ends the Info when it is over.
const (
	failingLine   = "failed; retrying"
	recoveredLine = "recovered"
	// sdkLine is what the AWS SDK's own default logger prints, outside
	// esmd's logger, for each response it could not read to the end.
	sdkLine = "SDK "
)

var attrRe = regexp.MustCompile(`(msg="[^"]*"|shard=\S+)`)

// outageLines counts the failing lines in log per (op, shard): each reader
// and the shard lister may say it once per outage.
func outageLines(log string) map[string]int {
	out := map[string]int{}
	for line := range strings.Lines(log) {
		if !strings.Contains(line, failingLine) {
			continue
		}
		var who []string
		for _, m := range attrRe.FindAllStringSubmatch(line, -1) {
			who = append(who, m[0])
		}
		out[strings.Join(who, " ")]++
	}
	return out
}

// TestServerFaults puts a proxy between esmd and kinesalite and breaks it
// in four ways, one after the other, while records are written: the server
// unreachable, connections reset, 2 s of latency, responses cut mid-body.
// After each fault esmd recovers on its own, every record arrives, and each
// reader logs the outage once rather than once per attempt.
func TestServerFaults(t *testing.T) {
	t.Parallel()
	ep := servers.Kinesalite(t)
	proxy, err := faultproxy.New(ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	name := servers.UniqueName("faults")
	arn := servers.CreateStream(t, ep, name, 2)

	l := newLedger()
	s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
		l.observe(0, c.Recs)
		return 200, ""
	})
	dir := t.TempDir()
	p := startESMD(t, dir, baseYAML("    kinesis: "+proxy.URL()+"\n", dir, s.srv.URL, "")+mappingYAML(arn, `StartingPosition: TRIM_HORIZON
BatchSize: 100
ParallelizationFactor: 2
esmd: {pollInterval: 100ms, shardDiscoveryInterval: 2s}`))

	outage := size(5*time.Second, 30*time.Second)
	faults := []struct {
		name string
		on   func()
		off  func()
		hold time.Duration
		// quiet: esmd keeps working through it, no failing line expected.
		quiet bool
	}{
		{"server unreachable " + outage.String(), proxy.Stop, func() {
			if err := proxy.Start(); err != nil {
				t.Fatal(err)
			}
		}, outage, false},
		{"connections reset", func() { proxy.SetFault(faultproxy.Reset) }, func() { proxy.SetFault(faultproxy.None) }, 3 * time.Second, false},
		{"2 s latency", func() { proxy.SetLatency(2 * time.Second) }, func() { proxy.SetLatency(0) }, 6 * time.Second, true},
		{"responses cut mid-body", func() { proxy.SetFault(faultproxy.CutBody) }, func() { proxy.SetFault(faultproxy.None) }, 3 * time.Second, false},
	}
	var all []put
	recs := keyedRecords(50, 2_000*len(faults)+500)
	next := 0
	write := func(n int) {
		chunk := recs[next : next+n]
		next += n
		putRecords(t, ep, name, chunk)
		all = append(all, chunk...)
	}
	write(500)
	waitFor(t, time.Minute, "the first records", func() bool { return l.unique() == len(all) })

	for _, f := range faults {
		before := p.log()
		f.on()
		// Records written during the fault (straight to the server).
		write(1_000)
		time.Sleep(f.hold)
		during := l.unique()
		f.off()
		cleared := time.Now()
		write(1_000)
		waitFor(t, 2*time.Minute, "every record after "+f.name, func() bool { return l.unique() == len(all) })
		recovery := time.Since(cleared)
		added := strings.TrimPrefix(p.log(), before)
		lines := outageLines(added)
		total := 0
		for who, n := range lines {
			total += n
			if n > 1 {
				t.Errorf("%s: %q logged %d failing lines, want one per outage", f.name, who, n)
			}
		}
		if !f.quiet && total == 0 {
			t.Errorf("%s: no %q line", f.name, failingLine)
		}
		if f.quiet && during == len(all)-1_000 && total > 0 {
			t.Logf("%s: %d failing lines", f.name, total)
		}
		if sdk := countLines(added, sdkLine); sdk > 0 {
			t.Logf("%s: %d lines from the AWS SDK's own logger, one per attempt (esmd does not route or silence them)", f.name, sdk)
		}
		if !f.quiet && countLines(added, recoveredLine) == 0 {
			t.Errorf("%s: no recovery line", f.name)
		}
		if p.exited() {
			t.Fatalf("esmd exited during %s", f.name)
		}
		lost := l.lost(all)
		if len(lost) > 0 {
			t.Errorf("%s: %d records lost", f.name, len(lost))
		}
		t.Logf("%s: %d failing lines %v, %d records arrived during the fault, recovered in %s", f.name, total, lines, during, recovery.Round(10*time.Millisecond))
		result(t, "Kinesis server: "+f.name, 1, len(all), len(lost), l.snap().dups, fmt.Sprintf("%s after the fault ended", recovery.Round(100*time.Millisecond)))
	}
	if len(l.snap().violations) > 0 {
		t.Errorf("per-key order broken: %v", l.snap().violations)
	}
}
