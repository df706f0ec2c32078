package chaos

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/esmd-dev/esmd/checkpoint"
	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

// crashSource is a stream under the crash scenario.
type crashSource struct {
	name      string
	records   int
	crashes   int
	shards    int
	endpoints streamSetup
}

func TestCrashStreams(t *testing.T) {
	sources := []crashSource{
		{name: "kinesis", records: size(10_000, 50_000), crashes: size(5, 20), shards: 2, endpoints: kinesisStream("crash", 2)},
		// moto writes and reads about 2k records/s, on one shard.
		{name: "dynamodb", records: size(2_000, 10_000), crashes: size(3, 20), shards: 1, endpoints: dynamoDBTable("crash")},
	}
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			t.Parallel()
			crashStream(t, src)
		})
	}
}

// streamSetup starts a stream's server and makes a stream on it; it returns
// the aws.endpoints lines of esmd's configuration, the stream ARN, and a
// func that puts records on the stream.
type streamSetup func(t *testing.T) (endpoints, arn string, put func(t *testing.T, recs []put))

// kinesisStream makes a kinesalite stream of shards shards, named from
// prefix.
func kinesisStream(prefix string, shards int) streamSetup {
	return func(t *testing.T) (string, string, func(*testing.T, []put)) {
		ep := servers.Kinesalite(t)
		name := servers.UniqueName(prefix)
		arn := servers.CreateStream(t, ep, name, shards)
		return "    kinesis: " + ep + "\n", arn, func(t *testing.T, recs []put) { putRecords(t, ep, name, recs) }
	}
}

// dynamoDBTable makes a moto table with a stream, named from prefix.
func dynamoDBTable(prefix string) streamSetup {
	return func(t *testing.T) (string, string, func(*testing.T, []put)) {
		moto := servers.Moto(t)
		table := servers.UniqueName(prefix)
		arn := servers.CreateTable(t, moto, table)
		return fmt.Sprintf("    dynamodb: %s\n    dynamodbstreams: %s\n", moto, moto), arn,
			func(t *testing.T, recs []put) { putItems(t, moto, table, recs) }
	}
}

// crashStream kills esmd with SIGKILL at random points of a run and starts
// it again each time, until every record was delivered.
func crashStream(t *testing.T, src crashSource) {
	const (
		batch = 50
		lanes = 4
	)
	eps, arn, putFn := src.endpoints(t)
	recs := keyedRecords(200, src.records)
	putFn(t, recs)

	l := newLedger()
	s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
		l.observe(c.Run, c.Recs)
		// A little work per batch, so that kills land mid-run.
		time.Sleep(5 * time.Millisecond)
		return 200, ""
	})
	dir := t.TempDir()
	cfg := baseYAML(eps, dir, s.srv.URL, "") + mappingYAML(arn, fmt.Sprintf(`StartingPosition: TRIM_HORIZON
BatchSize: %d
ParallelizationFactor: %d
esmd: {pollInterval: 50ms}`, batch, lanes))

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	// Kill points: crashes thresholds spread over the run, each at a random
	// place inside its own slice.
	points := make([]int, src.crashes)
	for i := range points {
		slot := src.records / (src.crashes + 1)
		points[i] = slot*i + slot/2 + rng.IntN(slot)
	}
	sort.Ints(points)

	var recoveries []time.Duration
	var p *proc
	// bounds[r] is what crash r may re-deliver: per shard, P lanes x
	// BatchSize in flight plus BatchSize x P lead, plus what completed
	// during the checkpoint save that was under way (what the function
	// finished in the last 100 ms).
	bounds := map[int]int{}
	for run := 0; run <= src.crashes; run++ {
		s.run.Store(int64(run))
		if run > 0 {
			l.setFloor(savedCheckpoints(t, dir))
		}
		before := s.ncalls()
		started := time.Now()
		p = startESMD(t, dir, cfg)
		waitFor(t, 2*time.Minute, "the first delivery of the run", func() bool {
			return s.ncalls() > before || l.unique() == src.records
		})
		if run > 0 {
			recoveries = append(recoveries, time.Since(started))
		}
		if run == src.crashes {
			break
		}
		target := points[run]
		waitFor(t, 5*time.Minute, "kill point "+strconv.Itoa(target), func() bool {
			return l.unique() >= target || p.exited()
		})
		killed := time.Now()
		p.kill()
		// Requests the dead process had already written may still be
		// read by the sink: let them land in this run.
		s.settle(t, 500*time.Millisecond)
		bounds[run+1] = src.shards*2*lanes*batch + l.since(killed.Add(-100*time.Millisecond))
	}
	waitFor(t, 5*time.Minute, "every record", func() bool { return l.unique() == src.records })
	waitFor(t, 30*time.Second, "the mapping to start", func() bool { return strings.Contains(p.log(), "mapping started") })
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("final drain exited %d, want 0", code)
	}

	lost := l.lost(recs)
	if len(lost) > 0 {
		t.Errorf("%d records lost, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	if len(l.snap().violations) > 0 {
		t.Errorf("per-key order broken within a run: %v", l.snap().violations)
	}
	if len(l.snap().belowCP) > 0 {
		t.Errorf("records at or before a saved checkpoint came again: %v", l.snap().belowCP)
	}
	bound := src.shards * 2 * lanes * batch
	worst := 0
	for run := 1; run <= src.crashes; run++ {
		worst = max(worst, l.snap().runDups[run])
		if l.snap().runDups[run] > bounds[run] {
			t.Errorf("run %d re-delivered %d records, above the bound %d", run, l.snap().runDups[run], bounds[run])
		}
	}
	if l.snap().runDups[0] != 0 {
		t.Errorf("%d duplicates before the first crash", l.snap().runDups[0])
	}
	t.Logf("duplicates: %d in all, at most %d per crash (in-memory bound %d per crash, plus the last save's lag)", l.snap().dups, worst, bound)
	if n := l.snap().writerRepeats; n > 0 {
		t.Logf("%d records carry data that an earlier record of the stream already carried (a write the client retried after the server applied it), each in its place in the stream", n)
	}
	result(t, "kill -9 x"+strconv.Itoa(src.crashes)+", "+src.name, src.crashes, src.records, len(lost), l.snap().dups, spread(recoveries))
}

// savedCheckpoints reads, per shard, the sequence numbers saved in dir's
// checkpoint file (esmd is not running).
func savedCheckpoints(t *testing.T, dir string) map[string]string {
	t.Helper()
	f, err := checkpoint.OpenFile(filepath.Join(dir, "state", "checkpoints.db"))
	if err != nil {
		t.Fatalf("read checkpoints after the crash: %v", err)
	}
	defer f.Close()
	out := map[string]string{}
	names, err := f.Mappings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range names {
		all, err := f.All(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		for shard, p := range all {
			out[shard] = p.Seq
		}
	}
	return out
}

// spread formats the median and maximum of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("median %s, max %s", s[len(s)/2].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond))
}

// TestCrashSQS kills esmd at random points while it reads a queue: every
// message is delivered and the queue ends empty.
func TestCrashSQS(t *testing.T) {
	t.Parallel()
	moto := servers.Moto(t)
	total, crashes := size(1_000, 5_000), size(3, 20)
	url, arn := servers.CreateQueue(t, moto, servers.UniqueName("crash"), map[string]string{"VisibilityTimeout": "3"})
	c := servers.SQSClient(moto)
	ctx := t.Context()
	for i := 0; i < total; i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, total); j++ {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(fmt.Sprintf("msg:%d", j))})
		}
		out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("send: %v %v", err, out)
		}
	}
	l := newLedger()
	s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
		l.observe(c.Run, c.Recs)
		time.Sleep(10 * time.Millisecond)
		return 200, ""
	})
	dir := t.TempDir()
	// Pollers are capped: moto is one process, and the hundreds of long
	// polls that Lambda's scaling (up to 300 more a minute while every
	// receive returns messages) reaches within minutes slowed its deletes
	// past the 3 s visibility timeout on a loaded machine. The messages
	// then came back before they were deleted, kept every receive full and
	// the scaling going, and the run crawled at 17 messages a second.
	cfg := baseYAML("    sqs: "+moto+"\n", dir, s.srv.URL, "") + mappingYAML(arn, "BatchSize: 10\nScalingConfig: {MaximumConcurrency: 20}")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var recoveries []time.Duration
	var p *proc
	for run := 0; run <= crashes; run++ {
		s.run.Store(int64(run))
		before := s.ncalls()
		started := time.Now()
		p = startESMD(t, dir, cfg)
		// After a crash the first delivery waits for the dead process's
		// messages to become visible again and, on moto, for a long poll
		// that began while the queue looked empty to end (up to 20 s);
		// under a loaded CI machine that has taken over a minute.
		waitFor(t, 3*time.Minute, "the first delivery of the run", func() bool { return s.ncalls() > before || l.unique() == total })
		if run > 0 {
			recoveries = append(recoveries, time.Since(started))
		}
		if run == crashes {
			break
		}
		slot := total / (crashes + 1)
		target := slot*run + slot/2 + rng.IntN(slot)
		waitFor(t, 3*time.Minute, "kill point", func() bool { return l.unique() >= target })
		p.kill()
		s.settle(t, 500*time.Millisecond)
	}
	var want []put
	for i := 0; i < total; i++ {
		want = append(want, put{Data: []byte(fmt.Sprintf("msg:%d", i))})
	}
	waitFor(t, 3*time.Minute, "every message", func() bool { return l.unique() == total })
	// The queue ends empty: nothing visible, nothing in flight.
	waitFor(t, 30*time.Second, "an empty queue", func() bool {
		out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		return err == nil && out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
	})
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("final drain exited %d, want 0", code)
	}
	lost := l.lost(want)
	if len(lost) > 0 {
		t.Errorf("%d messages lost", len(lost))
	}
	result(t, "kill -9 x"+strconv.Itoa(crashes)+", sqs", crashes, total, len(lost), l.snap().dups, spread(recoveries))
}
