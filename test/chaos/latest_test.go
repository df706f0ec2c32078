package chaos

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLatestRestart: a mapping at StartingPosition LATEST on an idle stream
// is stopped (a clean drain, or kill -9) before any record was processed,
// records are put while esmd is down (a deploy, a node restart), and esmd
// starts again with the same checkpoint file. Every record put while it was
// down is delivered: the first open pinned where LATEST began, and the
// restart reads on from there instead of taking a new LATEST.
func TestLatestRestart(t *testing.T) {
	sources := []struct {
		name      string
		endpoints streamSetup
	}{
		{"kinesis", kinesisStream("latest", 2)},
		{"dynamodb", dynamoDBTable("latest")},
	}
	for _, src := range sources {
		for _, kill := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/kill=%v", src.name, kill), func(t *testing.T) {
				t.Parallel()
				eps, arn, putFn := src.endpoints(t)
				l := newLedger()
				s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
					l.observe(c.Run, c.Recs)
					return 200, ""
				})
				dir := t.TempDir()
				cfg := baseYAML(eps, dir, s.srv.URL, "") + mappingYAML(arn, `StartingPosition: LATEST
BatchSize: 10
esmd: {pollInterval: 50ms}`)
				p := startESMD(t, dir, cfg)
				// "shard started" follows the pinning save.
				waitFor(t, time.Minute, "the shards to start", func() bool { return strings.Contains(p.log(), "shard started") })
				if kill {
					p.kill()
				} else if code := p.term(30 * time.Second); code != 0 {
					t.Fatalf("the drain exited %d, want 0", code)
				}

				down := keyedRecords(5, 20)
				putFn(t, down) // while esmd is down
				s.run.Store(1)
				p = startESMD(t, dir, cfg)
				waitFor(t, time.Minute, "the records put while esmd was down", func() bool { return l.unique() == len(down) })
				if code := p.term(30 * time.Second); code != 0 {
					t.Errorf("the drain exited %d, want 0", code)
				}
				if lost := l.lost(down); len(lost) > 0 {
					t.Errorf("%d of %d records put while esmd was down were never delivered: %v", len(lost), len(down), lost)
				}
				if dups := l.snap().dups; dups != 0 {
					t.Errorf("%d records delivered twice", dups)
				}
				stop := "SIGTERM"
				if kill {
					stop = "kill -9"
				}
				result(t, stop+" at LATEST before any record, "+src.name, 1, len(down), len(l.lost(down)), l.snap().dups, "restart reads on from the pinned start")
				if !strings.Contains(p.log(), "start=AT_TIMESTAMP") {
					t.Errorf("the restart did not start at the pinned time; its log:\n%s", lastLines(p.log(), 20))
				}
			})
		}
	}
}
