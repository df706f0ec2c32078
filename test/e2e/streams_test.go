package e2e

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/servers"
)

// streamKind is one stream source under the conformance suite: Kinesis on
// kinesalite, DynamoDB Streams on moto. Every scenario runs against each.
type streamKind struct {
	name string
	// infoKey is the failure record's batch info object.
	infoKey string
	// scale divides the record counts of the volume scenarios: moto reads
	// about 2k records/s, kinesalite about 30k.
	scale int
	// setup creates a stream with up to shards shards and returns what a
	// scenario needs to write to it and configure esmd.
	setup func(t *testing.T, shards int) *testStream
}

type testStream struct {
	arn       string
	endpoints string // YAML lines under aws.endpoints, moto included
	moto      string
	// put writes records in order, so that each key keeps its order.
	put func(t *testing.T, recs []put)
}

var streamKinds = []streamKind{
	{
		name: "kinesis", infoKey: "KinesisBatchInfo", scale: 1,
		setup: func(t *testing.T, shards int) *testStream {
			ep := servers.Kinesalite(t)
			moto := servers.Moto(t)
			name := servers.UniqueName("conf")
			arn := servers.CreateStream(t, ep, name, shards)
			return &testStream{
				arn:       arn,
				moto:      moto,
				endpoints: fmt.Sprintf("    kinesis: %s\n    sqs: %s\n", ep, moto),
				put:       func(t *testing.T, recs []put) { putRecords(t, ep, name, recs) },
			}
		},
	},
	{
		name: "dynamodb", infoKey: "DDBStreamBatchInfo", scale: 10,
		setup: func(t *testing.T, shards int) *testStream {
			moto := servers.Moto(t)
			table := servers.UniqueName("conf")
			arn := servers.CreateTable(t, moto, table)
			return &testStream{
				arn:       arn,
				moto:      moto,
				endpoints: fmt.Sprintf("    dynamodb: %s\n    dynamodbstreams: %s\n    sqs: %s\n", moto, moto, moto),
				put:       func(t *testing.T, recs []put) { putItems(t, moto, table, recs) },
			}
		},
	},
}

// forEachStream runs a scenario against every stream kind, in parallel.
func forEachStream(t *testing.T, scenario func(t *testing.T, k streamKind)) {
	for _, k := range streamKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			scenario(t, k)
		})
	}
}

func decodeFailureOf(t *testing.T, k streamKind, body string) (failureRecord, batchInfo) {
	t.Helper()
	if !strings.Contains(body, `"`+k.infoKey+`"`) {
		t.Fatalf("failure record has no %s: %s", k.infoKey, body)
	}
	f := decodeFailure(t, body)
	return f, f.info()
}

// seqOf finds the sequence number of the record carrying data.
func seqOf(s *sink, data string) string {
	for _, c := range s.snapshot() {
		for _, r := range c.Recs {
			if r.Data == data {
				return r.Seq
			}
		}
	}
	return ""
}

func TestStreamPoisonRecordIsolatedByBisect(t *testing.T) {
	forEachStream(t, func(t *testing.T, k streamKind) {
		st := k.setup(t, 1)
		qurl, qarn := servers.CreateQueue(t, st.moto, servers.UniqueName("failures"), nil)
		var recs []put
		for i := 0; i < 100; i++ {
			recs = append(recs, put{Key: fmt.Sprintf("k%d", i), Data: []byte(fmt.Sprintf("r%03d", i))})
		}
		st.put(t, recs)
		poisoned := func(c call) bool {
			for _, r := range c.Recs {
				if r.Data == "r061" {
					return true
				}
			}
			return false
		}
		s := newSink(t, func(c call) (int, string) {
			if poisoned(c) {
				return 500, ""
			}
			return 200, ""
		})
		dir := t.TempDir()
		cfg := streamYAML(st.endpoints, dir, st.arn, s.srv.URL, fmt.Sprintf(`BatchSize: 100
MaximumBatchingWindowInSeconds: 2
BisectBatchOnFunctionError: true
MaximumRetryAttempts: 0
DestinationConfig: {OnFailure: {Destination: %s}}
esmd: {pollInterval: 100ms, retryBackoff: {initial: 10ms, max: 50ms}}`, qarn))
		p := startESMD(t, dir, cfg)
		bodies := receiveAll(t, st.moto, qurl, 1, 60*time.Second)
		if len(bodies) != 1 {
			t.Fatalf("%d failure records, want 1", len(bodies))
		}
		poisonSeq := seqOf(s, "r061")
		f, bi := decodeFailureOf(t, k, bodies[0])
		if bi.BatchSize != 1 || bi.StartSeq != poisonSeq || bi.EndSeq != poisonSeq || bi.StreamARN != st.arn ||
			f.RequestContext.Condition != "RetryAttemptsExhausted" || f.RequestContext.ApproximateInvokeCount != 1 ||
			f.ResponseContext.FunctionError != "Unhandled" || f.Version != "1.0" ||
			f.RequestContext.FunctionARN != "arn:aws:lambda:us-east-1:000000000000:function:sink" {
			t.Fatalf("failure record = %+v %+v (poison seq %s)", f, bi, poisonSeq)
		}
		ok := map[string]int{}
		waitFor(t, 30*time.Second, "every good record", func() bool {
			ok = map[string]int{}
			for _, c := range s.snapshot() {
				if !poisoned(c) {
					for _, r := range c.Recs {
						ok[r.Data]++
					}
				}
			}
			return len(ok) == 99
		})
		for i := 0; i < 100; i++ {
			d := fmt.Sprintf("r%03d", i)
			if n := ok[d]; (i == 61 && n != 0) || (i != 61 && n != 1) {
				t.Errorf("%s succeeded %d times", d, n)
			}
		}
		// The checkpoint passed the end: after a drain and a restart only a
		// new record arrives.
		if code := p.term(30 * time.Second); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		before := s.count()
		startESMD(t, dir, cfg)
		st.put(t, []put{{Key: "k", Data: []byte("after-restart")}})
		waitFor(t, 30*time.Second, "new record", func() bool { return s.count() > before })
		time.Sleep(500 * time.Millisecond)
		calls := s.snapshot()
		if last := dataOf(calls[len(calls)-1]); s.count() != before+1 || strings.Join(last, ",") != "after-restart" {
			t.Fatalf("after restart got %v (%d new records), want only after-restart", last, s.count()-before)
		}
	})
}

func TestStreamRetriesExhausted(t *testing.T) {
	forEachStream(t, func(t *testing.T, k streamKind) {
		st := k.setup(t, 1)
		qurl, qarn := servers.CreateQueue(t, st.moto, servers.UniqueName("failures"), nil)
		var recs []put
		for i := 0; i < 5; i++ {
			recs = append(recs, put{Key: fmt.Sprintf("k%d", i), Data: []byte(fmt.Sprintf("r%d", i))})
		}
		st.put(t, recs)
		s := newSink(t, func(c call) (int, string) { return 500, "" })
		dir := t.TempDir()
		startESMD(t, dir, streamYAML(st.endpoints, dir, st.arn, s.srv.URL, fmt.Sprintf(`BatchSize: 10
MaximumBatchingWindowInSeconds: 2
MaximumRetryAttempts: 2
DestinationConfig: {OnFailure: {Destination: %s}}
esmd: {pollInterval: 100ms, retryBackoff: {initial: 10ms, max: 50ms}}`, qarn)))
		bodies := receiveAll(t, st.moto, qurl, 1, 60*time.Second)
		if len(bodies) != 1 {
			t.Fatalf("%d failure records, want 1", len(bodies))
		}
		f, bi := decodeFailureOf(t, k, bodies[0])
		calls := s.snapshot()
		if len(calls) != 3 {
			t.Fatalf("%d invocations, want 3", len(calls))
		}
		first, last := calls[0].Recs[0].Seq, calls[0].Recs[len(calls[0].Recs)-1].Seq
		if f.RequestContext.ApproximateInvokeCount != 3 || bi.BatchSize != 5 || bi.StartSeq != first || bi.EndSeq != last ||
			f.RequestContext.Condition != "RetryAttemptsExhausted" || f.ResponseContext.StatusCode != 500 {
			t.Fatalf("failure record = %+v %+v", f, bi)
		}
	})
}

func TestStreamReportBatchItemFailures(t *testing.T) {
	forEachStream(t, func(t *testing.T, k streamKind) {
		st := k.setup(t, 1)
		var recs []put
		for i := 0; i < 10; i++ {
			recs = append(recs, put{Key: fmt.Sprintf("k%d", i), Data: []byte(fmt.Sprintf("r%d", i))})
		}
		st.put(t, recs)
		var n atomic.Int32
		s := newSink(t, func(c call) (int, string) {
			if n.Add(1) == 1 {
				if len(c.Recs) != 10 {
					return 200, `{"batchItemFailures":[{"itemIdentifier":"wrong batch"}]}`
				}
				return 200, fmt.Sprintf(`{"batchItemFailures":[{"itemIdentifier":%q},{"itemIdentifier":%q}]}`, c.Recs[8].Seq, c.Recs[5].Seq)
			}
			return 200, `{"batchItemFailures":[]}`
		})
		dir := t.TempDir()
		startESMD(t, dir, streamYAML(st.endpoints, dir, st.arn, s.srv.URL, `BatchSize: 10
MaximumBatchingWindowInSeconds: 2
FunctionResponseTypes: [ReportBatchItemFailures]
esmd: {pollInterval: 100ms, retryBackoff: {initial: 10ms, max: 50ms}}`))
		waitFor(t, 30*time.Second, "retry", func() bool { return len(s.snapshot()) >= 2 })
		time.Sleep(300 * time.Millisecond)
		calls := s.snapshot()
		if len(calls) != 2 || len(calls[0].Recs) != 10 {
			t.Fatalf("%d invocations (first of %d records), want 2 (first of 10)", len(calls), len(calls[0].Recs))
		}
		if got := strings.Join(dataOf(calls[1]), ","); got != "r5,r6,r7,r8,r9" {
			t.Fatalf("retry held %v, want r5..r9", got)
		}
	})
}

func TestStreamParallelizationKeepsKeyOrder(t *testing.T) {
	forEachStream(t, func(t *testing.T, k streamKind) {
		st := k.setup(t, 2)
		total := 20_000 / k.scale
		st.put(t, keyedRecords(50, total))
		oc := newOrderCheck()
		s := newSink(t, func(c call) (int, string) {
			oc.observe(dataOf(c))
			time.Sleep(2 * time.Millisecond)
			return 200, ""
		})
		dir := t.TempDir()
		startESMD(t, dir, streamYAML(st.endpoints, dir, st.arn, s.srv.URL, `BatchSize: 20
ParallelizationFactor: 10
esmd: {pollInterval: 100ms}`))
		waitFor(t, 3*time.Minute, "every record", func() bool { return oc.unique() == total })
		if len(oc.violationList()) > 0 || oc.dupCount() != 0 {
			t.Fatalf("order violations %v, duplicates %d", oc.violationList(), oc.dupCount())
		}
		if p := s.peakConcurrency(); p < 2 {
			t.Fatalf("peak concurrent invocations %d, want more than one lane at once", p)
		}
	})
}

func TestStreamKillAndRestartLosesNothing(t *testing.T) {
	forEachStream(t, func(t *testing.T, k streamKind) {
		st := k.setup(t, 2)
		total := 20_000 / k.scale
		st.put(t, keyedRecords(100, total))
		oc := newOrderCheck()
		s := newSink(t, func(c call) (int, string) {
			oc.observe(dataOf(c))
			time.Sleep(time.Millisecond)
			return 200, ""
		})
		dir := t.TempDir()
		cfg := streamYAML(st.endpoints, dir, st.arn, s.srv.URL, `BatchSize: 100
ParallelizationFactor: 4
esmd: {pollInterval: 100ms}`)
		kills := 0
		for round := 0; round < 3; round++ {
			p := startESMD(t, dir, cfg)
			target := min(oc.unique()+total/5, total)
			waitFor(t, 2*time.Minute, "progress", func() bool { return oc.unique() >= target })
			if oc.unique() == total {
				p.kill()
				break
			}
			p.kill()
			kills++
		}
		startESMD(t, dir, cfg)
		waitFor(t, 3*time.Minute, "every record", func() bool { return oc.unique() == total })
		// In flight at a crash: per shard, 4 lanes with a batch of 100 each,
		// and lanes may lead the checkpoint by 4 x 100 records; positions
		// are saved after every batch.
		bound := kills * 2 * (4*100 + 4*100)
		t.Logf("%s: kill -9 x%d: %d records, %d deliveries, %d duplicates (bound %d)", k.name, kills, total, oc.deliveries(), oc.dupCount(), bound)
		if oc.dupCount() > bound {
			t.Fatalf("%d duplicates, above the bound %d", oc.dupCount(), bound)
		}
	})
}

func TestStreamDrainThenRestartRedeliversNothing(t *testing.T) {
	forEachStream(t, func(t *testing.T, k streamKind) {
		st := k.setup(t, 2)
		total := 7000 / k.scale
		recs := keyedRecords(50, total)
		first := total * 5 / 7
		st.put(t, recs[:first])
		oc := newOrderCheck()
		s := newSink(t, func(c call) (int, string) {
			oc.observe(dataOf(c))
			time.Sleep(2 * time.Millisecond)
			return 200, ""
		})
		dir := t.TempDir()
		cfg := streamYAML(st.endpoints, dir, st.arn, s.srv.URL, `BatchSize: 50
ParallelizationFactor: 2
esmd: {pollInterval: 100ms}`)
		p := startESMD(t, dir, cfg)
		waitFor(t, time.Minute, "progress", func() bool { return oc.unique() >= first/3 })
		if code := p.term(30 * time.Second); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		if !strings.Contains(p.log(), "mapping drained") {
			t.Fatalf("no drain in the log")
		}
		atDrain := oc.deliveries()
		// Records written while esmd is down arrive after the restart, and
		// nothing from before the drain comes again.
		st.put(t, recs[first:])
		startESMD(t, dir, cfg)
		waitFor(t, 2*time.Minute, "every record", func() bool { return oc.unique() == total })
		t.Logf("%s: drained after %d deliveries; %d records in all, %d duplicates", k.name, atDrain, total, oc.dupCount())
		if oc.dupCount() != 0 || len(oc.violationList()) > 0 {
			t.Fatalf("%d records re-delivered after a drain; order %v", oc.dupCount(), oc.violationList())
		}
	})
}
