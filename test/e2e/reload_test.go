package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/servers"
)

func TestReloadAddsRemovesAndChangesMappings(t *testing.T) {
	t.Parallel()
	ep := servers.Kinesalite(t)
	a := servers.UniqueName("reload-a")
	b := servers.UniqueName("reload-b")
	arnA := servers.CreateStream(t, ep, a, 2)
	arnB := servers.CreateStream(t, ep, b, 1)
	oc := newOrderCheck()
	var maxBatchAfter atomic.Int64
	var reloaded atomic.Bool
	s := newSink(t, func(c call) (int, string) {
		oc.observe(dataOf(c))
		if c.Records[0].EventSourceArn == arnA && reloaded.Load() {
			for n := int64(len(c.Recs)); ; {
				cur := maxBatchAfter.Load()
				if n <= cur || maxBatchAfter.CompareAndSwap(cur, n) {
					break
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
		return 200, ""
	})
	dir := t.TempDir()
	mappingA := func(batch int, enabled bool) string {
		return fmt.Sprintf(`  - EventSourceArn: %s
    FunctionName: sink
    StartingPosition: TRIM_HORIZON
    Enabled: %v
    BatchSize: %d
    esmd: {name: a, pollInterval: 100ms}
`, arnA, enabled, batch)
	}
	mappingB := fmt.Sprintf(`  - EventSourceArn: %s
    FunctionName: sink
    StartingPosition: TRIM_HORIZON
    BatchSize: 100
    esmd: {name: b, pollInterval: 100ms}
`, arnB)
	head := strings.SplitAfter(kinesisYAML(ep, "", dir, arnA, s.srv.URL, ""), "mappings:\n")[0]
	cfgPath := filepath.Join(dir, "esmd.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(head+body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	recsA := keyedRecords(40, 4000)
	recsB := keyedRecords(10, 500)
	for i := range recsB {
		recsB[i].Key = "b-" + recsB[i].Key
		recsB[i].Data = []byte("b-" + string(recsB[i].Data))
	}
	putRecords(t, ep, a, recsA[:1000])
	p := startESMD(t, dir, head+mappingA(10, true))
	waitFor(t, time.Minute, "first records of a", func() bool { return oc.unique() >= 300 })
	hup := func() {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	// Change BatchSize and add b.
	putRecords(t, ep, b, recsB)
	write(mappingA(100, true) + mappingB)
	reloaded.Store(true)
	hup()
	putRecords(t, ep, a, recsA[1000:2000])
	waitFor(t, time.Minute, "b and the second part of a", func() bool { return oc.unique() == 2500 })

	// A bad file is refused and logged; processing goes on.
	write(mappingA(20000, true) + mappingB)
	hup()
	waitFor(t, 10*time.Second, "refusal in the log", func() bool {
		return strings.Contains(p.log(), "reload refused") && strings.Contains(p.log(), "20000 is above the Kinesis maximum 10000")
	})
	putRecords(t, ep, a, recsA[2000:3000])
	waitFor(t, time.Minute, "a after the refused reload", func() bool { return oc.unique() == 3500 })

	// Disable a and remove b; records of a wait; enable a again.
	write(mappingA(100, false))
	hup()
	waitFor(t, 10*time.Second, "a drained", func() bool { return strings.Count(p.log(), "mapping drained") >= 3 })
	putRecords(t, ep, a, recsA[3000:])
	time.Sleep(500 * time.Millisecond)
	if n := oc.unique(); n != 3500 {
		t.Fatalf("%d records delivered while a was disabled, want 3500", n)
	}
	write(mappingA(100, true))
	hup()
	waitFor(t, time.Minute, "every record", func() bool { return oc.unique() == 4500 })
	if v, d := oc.violationList(), oc.dupCount(); len(v) > 0 || d > 0 {
		t.Fatalf("order violations %v, duplicates %d", v, d)
	}
	if n := maxBatchAfter.Load(); n <= 10 {
		t.Fatalf("largest batch of a after the reload was %d; BatchSize 100 did not apply", n)
	}
	if code := p.term(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
