package mapping_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/fakes"
)

const mname = "m"

type harness struct {
	t      *testing.T
	stream *fakes.Stream
	fn     *fakes.Function
	dest   *fakes.Destination
	cps    *fakes.Checkpoints
	r      *mapping.Runner
	done   chan error
	cancel context.CancelFunc
}

func baseConfig() mapping.Config {
	return mapping.Config{
		Name:              mname,
		UUID:              "00000000-0000-0000-0000-000000000001",
		Kind:              event.Kinesis,
		SourceARN:         "arn:aws:kinesis:us-east-1:000000000000:stream/fake",
		FunctionARN:       "arn:aws:lambda:us-east-1:000000000000:function:f",
		BatchSize:         10,
		MaxRecordAge:      -1,
		MaxRetryAttempts:  -1,
		StartingPosition:  event.Start{Type: event.TrimHorizon},
		RetryInitial:      time.Millisecond,
		RetryMax:          5 * time.Millisecond,
		DiscoveryInterval: 20 * time.Millisecond,
	}
}

func start(t *testing.T, cfg mapping.Config, stream *fakes.Stream, fn *fakes.Function, cps *fakes.Checkpoints) *harness {
	t.Helper()
	return startWith(t, cfg, stream, fn, cps, &fakes.Destination{})
}

func startWith(t *testing.T, cfg mapping.Config, stream *fakes.Stream, fn *fakes.Function, cps *fakes.Checkpoints, dest *fakes.Destination) *harness {
	t.Helper()
	if cps == nil {
		cps = fakes.NewCheckpoints()
	}
	h := run(t, cfg, mapping.Deps{Source: stream, Invoker: fn, Destination: dest, Checkpointer: cps})
	h.stream, h.fn, h.dest, h.cps = stream, fn, dest, cps
	return h
}

// run starts a runner with deps, for tests whose parts are not the fakes
// a harness names; it stops the runner when the test ends.
func run(t *testing.T, cfg mapping.Config, deps mapping.Deps) *harness {
	t.Helper()
	r, err := mapping.NewRunner(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	return h
}

// stop ends the runner hard, as a cancelled context does, and waits for
// Run to return.
func (h *harness) stop() {
	h.cancel()
	h.done <- <-h.done
}

// drain stops the runner softly and checks that Run returned nil.
func (h *harness) drain() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.r.Drain(ctx); err != nil {
		h.t.Fatal(err)
	}
	err := <-h.done
	h.done <- nil // for the cleanup, which waits for Run too
	if err != nil {
		h.t.Fatalf("Run after drain = %v, want nil", err)
	}
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// delivered returns, per record data, how many successful invocations held
// it, given the set of invocations that failed.
func succeeded(fn *fakes.Function, failed func(fakes.Invocation) bool) map[string]int {
	out := map[string]int{}
	for _, inv := range fn.Invocations() {
		if failed(inv) {
			continue
		}
		for _, r := range inv.Records {
			out[r.Data]++
		}
	}
	return out
}

func TestDeliversEveryRecordInShardOrder(t *testing.T) {
	s := fakes.NewStream(3)
	want := map[string][]string{}
	for i := 0; i < 300; i++ {
		sh := fmt.Sprintf("shard-%d", i%3)
		d := fmt.Sprintf("r%d", i)
		s.Put(sh, "k"+fakes.Itoa(i), []byte(d))
		want[sh] = append(want[sh], d)
	}
	fn := &fakes.Function{}
	h := start(t, baseConfig(), s, fn, nil)
	eventually(t, "300 records", func() bool { return h.r.Stats().InvokedEvents.Load() == 300 })
	h.drain()

	got := map[string][]string{}
	for _, inv := range fn.Invocations() {
		if len(inv.Records) > 10 {
			t.Fatalf("batch of %d records, BatchSize is 10", len(inv.Records))
		}
		for _, r := range inv.Records {
			n := 0
			fmt.Sscanf(r.Data, "r%d", &n)
			sh := fmt.Sprintf("shard-%d", n%3)
			got[sh] = append(got[sh], r.Data)
		}
	}
	for sh, w := range want {
		if strings.Join(got[sh], ",") != strings.Join(w, ",") {
			t.Errorf("%s delivered %v, want %v", sh, got[sh], w)
		}
		shards, _ := s.Shards(context.Background())
		_ = shards
	}
	// Every shard's checkpoint is its last record.
	for i := 0; i < 3; i++ {
		sh := fmt.Sprintf("shard-%d", i)
		p := h.cps.Get(mname, sh)
		if p.Seq == "" {
			t.Errorf("%s: no checkpoint", sh)
		}
	}
}

func TestPoisonRecordIsolatedByBisect(t *testing.T) {
	s := fakes.NewStream(1)
	var poisonSeq string
	for i := 0; i < 100; i++ {
		seq := s.Put("shard-0", "k"+fakes.Itoa(i), []byte(fmt.Sprintf("r%d", i)))
		if i == 37 {
			poisonSeq = seq
		}
	}
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		for _, r := range recs {
			if r.Data == "r37" {
				return nil, &mapping.FunctionError{Kind: "Unhandled", Type: "Poison", StatusCode: 200}
			}
		}
		return &mapping.Response{StatusCode: 200}, nil
	}}
	cfg := baseConfig()
	cfg.BatchSize = 100
	cfg.BisectOnError = true
	cfg.MaxRetryAttempts = 0
	s.ReadLimit = 100
	h := start(t, cfg, s, fn, nil)
	eventually(t, "failure record", func() bool { return len(h.dest.Got()) == 1 })
	eventually(t, "checkpoint at end", func() bool { return h.cps.Get(mname, "shard-0").Seq == fmt.Sprintf("%020d", 100) })
	h.drain()

	f := h.dest.Got()
	if len(f) != 1 {
		t.Fatalf("%d failure records, want 1", len(f))
	}
	if f[0].BatchSize != 1 || f[0].StartSeq != poisonSeq || f[0].EndSeq != poisonSeq || f[0].Condition != event.RetryAttemptsExhausted {
		t.Fatalf("failure = batchSize %d start %s end %s condition %s; want 1, %s, %s, RetryAttemptsExhausted",
			f[0].BatchSize, f[0].StartSeq, f[0].EndSeq, f[0].Condition, poisonSeq, poisonSeq)
	}
	if f[0].ApproximateInvokeCount != 1 || f[0].FunctionError != "Unhandled" || f[0].ShardID != "shard-0" {
		t.Fatalf("failure = %+v", f[0])
	}
	ok := succeeded(fn, func(inv fakes.Invocation) bool {
		for _, r := range inv.Records {
			if r.Data == "r37" {
				return true
			}
		}
		return false
	})
	for i := 0; i < 100; i++ {
		d := fmt.Sprintf("r%d", i)
		if want := 1; i != 37 && ok[d] != want {
			t.Errorf("%s succeeded %d times, want 1", d, ok[d])
		}
	}
	if ok["r37"] != 0 {
		t.Errorf("poison record succeeded")
	}
}

func TestRetryAttemptsExhaustedWithoutBisect(t *testing.T) {
	s := fakes.NewStream(1)
	for i := 0; i < 15; i++ {
		s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i)))
	}
	var calls atomic.Int32
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		calls.Add(1)
		if recs[0].Data == "r0" {
			return nil, &mapping.FunctionError{Kind: "Unhandled", StatusCode: 200, ExecutedVersion: "$LATEST"}
		}
		return &mapping.Response{StatusCode: 200}, nil
	}}
	cfg := baseConfig()
	cfg.MaxRetryAttempts = 2
	s.ReadLimit = 10
	h := start(t, cfg, s, fn, nil)
	eventually(t, "all processed", func() bool { return h.r.Stats().InvokedEvents.Load() == 3*10+5 })
	h.drain()
	f := h.dest.Got()
	if len(f) != 1 {
		t.Fatalf("%d failure records, want 1", len(f))
	}
	if f[0].ApproximateInvokeCount != 3 || f[0].BatchSize != 10 || f[0].Condition != event.RetryAttemptsExhausted || f[0].ExecutedVersion != "$LATEST" {
		t.Fatalf("failure = %+v", f[0])
	}
	invs := fn.Invocations()
	if len(invs) != 4 {
		t.Fatalf("%d invocations, want 3 of the failing batch and 1 of the next", len(invs))
	}
	for i := 0; i < 3; i++ {
		if invs[i].Attempt != i+1 || invs[i].Records[0].Data != "r0" || len(invs[i].Records) != 10 {
			t.Fatalf("invocation %d = attempt %d first %s len %d", i, invs[i].Attempt, invs[i].Records[0].Data, len(invs[i].Records))
		}
	}
	if invs[3].Records[0].Data != "r10" {
		t.Fatalf("next batch starts at %s, want r10", invs[3].Records[0].Data)
	}
	// The failure record names the last invocation, as Lambda's does.
	if f[0].RequestID == "" || f[0].RequestID != invs[2].RequestID {
		t.Fatalf("failure record's request ID %q; want the last invocation's, %q", f[0].RequestID, invs[2].RequestID)
	}
}

func TestPartialBatchResponseResumesAtLowestFailure(t *testing.T) {
	s := fakes.NewStream(1)
	var seqs []string
	for i := 0; i < 10; i++ {
		seqs = append(seqs, s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i))))
	}
	var n atomic.Int32
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		if n.Add(1) == 1 {
			body := fmt.Sprintf(`{"batchItemFailures":[{"itemIdentifier":%q},{"itemIdentifier":%q}]}`, seqs[7], seqs[4])
			return &mapping.Response{StatusCode: 200, Body: []byte(body)}, nil
		}
		return &mapping.Response{StatusCode: 200, Body: []byte(`{"batchItemFailures":[]}`)}, nil
	}}
	cfg := baseConfig()
	cfg.ReportBatchItemFailures = true
	h := start(t, cfg, s, fn, nil)
	eventually(t, "retry", func() bool { return len(fn.Invocations()) == 2 })
	eventually(t, "checkpoint", func() bool { return h.cps.Get(mname, "shard-0").Seq == seqs[9] })
	h.drain()
	invs := fn.Invocations()
	if len(invs) != 2 {
		t.Fatalf("%d invocations, want 2", len(invs))
	}
	var got []string
	for _, r := range invs[1].Records {
		got = append(got, r.Data)
	}
	if strings.Join(got, ",") != "r4,r5,r6,r7,r8,r9" {
		t.Fatalf("retry held %v, want r4..r9", got)
	}
	if len(h.dest.Got()) != 0 {
		t.Fatal("unexpected failure record")
	}
}

// TestPartialFailureUntilExhausted checks the failure record of records
// that a function keeps reporting failed: it counts every invocation that
// held them, not only those since the last partial success.
func TestPartialFailureUntilExhausted(t *testing.T) {
	s := fakes.NewStream(1)
	var seqs []string
	for i := 0; i < 6; i++ {
		seqs = append(seqs, s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i))))
	}
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		return &mapping.Response{StatusCode: 200, Body: []byte(fmt.Sprintf(`{"batchItemFailures":[{"itemIdentifier":%q}]}`, seqs[3]))}, nil
	}}
	cfg := baseConfig()
	cfg.ReportBatchItemFailures = true
	cfg.MaxRetryAttempts = 2
	h := start(t, cfg, s, fn, nil)
	eventually(t, "failure record", func() bool { return len(h.dest.Got()) == 1 })
	h.drain()
	if n := len(fn.Invocations()); n != 3 {
		t.Fatalf("%d invocations, want 3 (1 + MaximumRetryAttempts 2)", n)
	}
	f := h.dest.Got()[0]
	if f.BatchSize != 3 || f.StartSeq != seqs[3] || f.EndSeq != seqs[5] || f.ApproximateInvokeCount != 3 || f.Condition != event.RetryAttemptsExhausted {
		t.Fatalf("failure record: batchSize %d, %s..%s, invokes %d, %s; want 3, r3..r5, 3, RetryAttemptsExhausted",
			f.BatchSize, f.StartSeq, f.EndSeq, f.ApproximateInvokeCount, f.Condition)
	}
}

func TestMalformedPartialResponseFailsWholeBatch(t *testing.T) {
	s := fakes.NewStream(1)
	for i := 0; i < 4; i++ {
		s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i)))
	}
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		return &mapping.Response{StatusCode: 200, Body: []byte(`{"batchItemFailures":[{"itemIdentifier":"nope"}]}`)}, nil
	}}
	cfg := baseConfig()
	cfg.ReportBatchItemFailures = true
	cfg.MaxRetryAttempts = 1
	h := start(t, cfg, s, fn, nil)
	eventually(t, "failure record", func() bool { return len(h.dest.Got()) == 1 })
	h.drain()
	f := h.dest.Got()[0]
	if f.BatchSize != 4 || f.ApproximateInvokeCount != 2 {
		t.Fatalf("failure batchSize %d invokes %d, want 4 and 2", f.BatchSize, f.ApproximateInvokeCount)
	}
}

func TestRecordAgeExceeded(t *testing.T) {
	s := fakes.NewStream(1)
	old := time.Now().Add(-2 * time.Minute)
	for i := 0; i < 3; i++ {
		s.PutAt("shard-0", "k", []byte(fmt.Sprintf("old%d", i)), old)
	}
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		return nil, &mapping.FunctionError{Kind: "Unhandled"}
	}}
	cfg := baseConfig()
	cfg.MaxRecordAge = time.Minute
	h := start(t, cfg, s, fn, nil)
	eventually(t, "failure record", func() bool { return len(h.dest.Got()) == 1 })
	// A fresh record is retried (function always fails) until it ages out.
	cfg2 := h.dest.Got()[0]
	if cfg2.Condition != event.RecordAgeExceeded || cfg2.BatchSize != 3 || cfg2.ApproximateInvokeCount != 0 {
		t.Fatalf("failure = %+v", cfg2)
	}
	if len(fn.Invocations()) != 0 {
		t.Fatalf("records older than the maximum age were invoked")
	}
	h.drain()
}

func TestRecordAgeEndsRetriesOfFailingBatch(t *testing.T) {
	s := fakes.NewStream(1)
	s.PutAt("shard-0", "k", []byte("a"), time.Now().Add(-59*time.Second-800*time.Millisecond))
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		return nil, &mapping.FunctionError{Kind: "Unhandled"}
	}}
	cfg := baseConfig()
	cfg.MaxRecordAge = time.Minute
	h := start(t, cfg, s, fn, nil)
	eventually(t, "failure record", func() bool { return len(h.dest.Got()) == 1 })
	h.drain()
	f := h.dest.Got()[0]
	if f.Condition != event.RecordAgeExceeded || f.ApproximateInvokeCount < 1 || f.FunctionError != "Unhandled" {
		t.Fatalf("failure = %+v", f)
	}
}

// With no maximum age and no retry limit, Lambda retries a failing batch
// until its records leave the stream, then discards them as too old.
func TestRetentionEndsRetries(t *testing.T) {
	cases := []struct {
		name      string
		maxAge    time.Duration
		retention time.Duration
		arrived   time.Duration // ago
		discarded bool
	}{
		{"past the retention", -1, 24 * time.Hour, 24*time.Hour - 300*time.Millisecond, true},
		{"within a longer retention", -1, 7 * 24 * time.Hour, 24*time.Hour - 300*time.Millisecond, false},
		{"retention unknown", -1, 0, 24*time.Hour - 300*time.Millisecond, false},
		{"maximum age first", time.Hour, 24 * time.Hour, time.Hour - 300*time.Millisecond, true},
		// Read within the retention but older when its turn comes: it is
		// invoked (and given up only when a retry finds it gone).
		{"past the retention before its first invocation", -1, 24 * time.Hour, 24*time.Hour + time.Second, true},
	}
	// With bisect on, the halves of an invoked batch past the retention
	// are not invoked again either.
	t.Run("bisected halves past the retention", func(t *testing.T) {
		s := fakes.NewStream(1)
		for i := 0; i < 8; i++ {
			s.PutAt("shard-0", "k", []byte(fmt.Sprintf("r%d", i)), time.Now().Add(-24*time.Hour-time.Second))
		}
		fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
			return nil, &mapping.FunctionError{Kind: "Unhandled"}
		}}
		cfg := baseConfig()
		cfg.MaxRecordAge, cfg.MaxRetryAttempts, cfg.Retention, cfg.BisectOnError = -1, -1, 24*time.Hour, true
		h := start(t, cfg, s, fn, nil)
		given := func() (n int) {
			for _, f := range h.dest.Got() {
				if f.Condition == event.RecordAgeExceeded {
					n += f.BatchSize
				}
			}
			return n
		}
		// The batch was split after its invocation failed: its halves
		// are given up.
		eventually(t, "failure records of all 8", func() bool { return given() == 8 })
		h.stop()
		if n := len(fn.Invocations()); n != 1 {
			t.Fatalf("%d invocations of records past the retention, want 1", n)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fakes.NewStream(1)
			s.PutAt("shard-0", "k", []byte("a"), time.Now().Add(-tc.arrived))
			fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
				return nil, &mapping.FunctionError{Kind: "Unhandled"}
			}}
			cfg := baseConfig()
			cfg.MaxRecordAge, cfg.MaxRetryAttempts, cfg.Retention = tc.maxAge, -1, tc.retention
			h := start(t, cfg, s, fn, nil)
			if tc.discarded {
				eventually(t, "failure record", func() bool { return len(h.dest.Got()) == 1 })
				if f := h.dest.Got()[0]; f.Condition != event.RecordAgeExceeded || f.ApproximateInvokeCount < 1 || len(fn.Invocations()) < 1 {
					t.Fatalf("failure = %+v after %d invocations; want RecordAgeExceeded after at least one", f, len(fn.Invocations()))
				}
			} else {
				time.Sleep(time.Second)
				if got := h.dest.Got(); len(got) != 0 || len(fn.Invocations()) < 2 {
					t.Fatalf("%d failure records after %d invocations; want none, and retries", len(got), len(fn.Invocations()))
				}
			}
			h.stop()
		})
	}
}

// With ParallelizationFactor > 1 a failing batch stops only its partition
// keys: the other lanes go on while it is retried, also when later polls
// bring more records of the failing key (they wait for their lane), and the
// checkpoint stays before the failing record.
func TestFailingKeyStopsOnlyItsLane(t *testing.T) {
	poison, other := "key0", ""
	for i := 1; other == ""; i++ {
		if k := fmt.Sprintf("key%d", i); mapping.LaneFor(k, 2) != mapping.LaneFor(poison, 2) {
			other = k
		}
	}
	for _, tc := range []struct {
		name    string
		every   int // a record of the failing key every this many; 0: none after the first
		recover int // the failing record succeeds at this attempt; 0: never
		// giveUp gives the failing record up at once, to a destination
		// that is down: the lane retries the delivery instead
		giveUp bool
	}{
		{"failing key once", 0, 0, false},
		{"failing key recurs", 20, 0, false},
		{"failing key recovers", 20, 4, false},
		{"failure record not delivered", 20, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fakes.NewStream(1)
			s.ReadLimit = 10
			poisonSeq := s.Put("shard-0", poison, []byte("poison"))
			want := 0
			for i := 1; i <= 200; i++ {
				if tc.every > 0 && i%tc.every == 0 {
					s.Put("shard-0", poison, []byte(fmt.Sprintf("p%d", i)))
					continue
				}
				s.Put("shard-0", other, []byte(fmt.Sprintf("o%d", i)))
				want++
			}
			var ok, attempts atomic.Int32
			var mu sync.Mutex
			var failingKey []string // the failing key's records, as they succeed
			fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
				for _, r := range recs {
					if r.Data == "poison" && (tc.recover == 0 || attempts.Add(1) < int32(tc.recover)) {
						return nil, &mapping.FunctionError{Kind: "Unhandled", StatusCode: 200}
					}
				}
				for _, r := range recs {
					if r.Key == other {
						ok.Add(1)
					} else {
						mu.Lock()
						failingKey = append(failingKey, r.Data)
						mu.Unlock()
					}
				}
				return &mapping.Response{StatusCode: 200}, nil
			}}
			cfg := baseConfig()
			cfg.BatchSize, cfg.ParallelizationFactor, cfg.MaxRetryAttempts = 1, 2, -1
			dest := &fakes.Destination{}
			if tc.giveUp {
				cfg.MaxRetryAttempts = 0
				dest.Fail = func() error { return errors.New("destination down") }
			}
			h := startWith(t, cfg, s, fn, nil, dest)
			eventually(t, "the other key's records", func() bool { return ok.Load() == int32(want) })
			if tc.recover > 0 {
				// Then the failing key's records, held back meanwhile,
				// in order.
				wantKey := []string{"poison"}
				for i := tc.every; i <= 200; i += tc.every {
					wantKey = append(wantKey, fmt.Sprintf("p%d", i))
				}
				eventually(t, "the failing key's records", func() bool { mu.Lock(); defer mu.Unlock(); return len(failingKey) == len(wantKey) })
				mu.Lock()
				if !slices.Equal(failingKey, wantKey) {
					t.Errorf("the failing key's records came as %v, want %v", failingKey, wantKey)
				}
				mu.Unlock()
				h.stop()
				return
			}
			// The failing record is the shard's first: nothing may be
			// checkpointed.
			if p, _ := h.cps.Load(t.Context(), cfg.Name, "shard-0"); p.Seq != "" {
				t.Errorf("checkpoint %q passed the failing record %q", p.Seq, poisonSeq)
			}
			h.stop()
		})
	}
}

func TestThrottlesAndInvokeErrorsDoNotCountAttempts(t *testing.T) {
	s := fakes.NewStream(1)
	s.Put("shard-0", "k", []byte("a"))
	var n atomic.Int32
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		switch k := n.Add(1); {
		case k <= 3:
			return nil, &mapping.ThrottleError{StatusCode: 429}
		case k <= 6:
			return nil, errors.New("connection refused")
		}
		return &mapping.Response{StatusCode: 200}, nil
	}}
	cfg := baseConfig()
	cfg.MaxRetryAttempts = 0
	h := start(t, cfg, s, fn, nil)
	eventually(t, "success", func() bool { return h.cps.Get(mname, "shard-0").Seq != "" })
	h.drain()
	if len(h.dest.Got()) != 0 || n.Load() != 7 {
		t.Fatalf("failures %d, calls %d; want 0 and 7", len(h.dest.Got()), n.Load())
	}
	st := h.r.Stats()
	if st.Throttles.Load() != 3 || st.InvokeErrors.Load() != 3 {
		t.Fatalf("throttles %d invoke errors %d, want 3 and 3", st.Throttles.Load(), st.InvokeErrors.Load())
	}
}

func TestDestinationFailureBlocksCheckpoint(t *testing.T) {
	s := fakes.NewStream(1)
	bad := s.Put("shard-0", "k", []byte("bad"))
	_ = bad
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		return nil, &mapping.FunctionError{Kind: "Unhandled"}
	}}
	cfg := baseConfig()
	cfg.MaxRetryAttempts = 0
	var healthy atomic.Bool
	dest := &fakes.Destination{Fail: func() error {
		if healthy.Load() {
			return nil
		}
		return errors.New("destination down")
	}}
	h := startWith(t, cfg, s, fn, nil, dest)
	eventually(t, "destination failures", func() bool { return h.r.Stats().DestinationFailures.Load() >= 3 })
	if p := h.cps.Get(mname, "shard-0"); p.Seq != "" {
		t.Fatalf("checkpoint moved to %s while the destination was down", p.Seq)
	}
	healthy.Store(true)
	eventually(t, "checkpoint", func() bool { return h.cps.Get(mname, "shard-0").Seq == bad })
	h.drain()
	if len(h.dest.Got()) != 1 {
		t.Fatalf("%d failure records, want 1", len(h.dest.Got()))
	}
}

func TestParallelizationKeepsPerKeyOrder(t *testing.T) {
	s := fakes.NewStream(2)
	s.ReadLimit = 500
	const keys, per = 50, 40
	for i := 0; i < per; i++ {
		for k := 0; k < keys; k++ {
			s.Put(fmt.Sprintf("shard-%d", k%2), fmt.Sprintf("key%d", k), []byte(fmt.Sprintf("key%d:%d", k, i)))
		}
	}
	var inflight, peak atomic.Int32
	var mu sync.Mutex
	seen := map[string]int{}
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		mu.Lock()
		for _, r := range recs {
			var k, i int
			fmt.Sscanf(r.Data, "key%d:%d", &k, &i)
			key := fmt.Sprintf("key%d", k)
			if i != seen[key] {
				mu.Unlock()
				return nil, fmt.Errorf("key %s: got %d, want %d", key, i, seen[key])
			}
			seen[key] = i + 1
		}
		mu.Unlock()
		time.Sleep(time.Millisecond) // hold the lane so that lanes overlap
		return &mapping.Response{StatusCode: 200}, nil
	}}
	cfg := baseConfig()
	cfg.ParallelizationFactor = 4
	h := start(t, cfg, s, fn, nil)
	eventually(t, "all records", func() bool { return h.r.Stats().InvokedEvents.Load() == keys*per })
	h.drain()
	if h.r.Stats().InvokeErrors.Load() != 0 {
		t.Fatalf("order violated: %d invoke errors", h.r.Stats().InvokeErrors.Load())
	}
	if peak.Load() < 2 {
		t.Fatalf("peak concurrency %d, want more than one lane at once", peak.Load())
	}
}

func TestParentBeforeChild(t *testing.T) {
	s := fakes.NewStream(2)
	for i := 0; i < 20; i++ {
		s.Put("shard-0", fmt.Sprintf("k%d", i%5), []byte(fmt.Sprintf("p0-%d", i)))
		s.Put("shard-1", fmt.Sprintf("k%d", i%5), []byte(fmt.Sprintf("p1-%d", i)))
	}
	s.Split("shard-0", "shard-2", "shard-3")
	s.Merge("shard-2", "shard-1", "shard-4")
	for i := 0; i < 10; i++ {
		s.Put("shard-3", "k", []byte(fmt.Sprintf("c3-%d", i)))
		s.Put("shard-4", "k", []byte(fmt.Sprintf("c4-%d", i)))
	}
	fn := &fakes.Function{}
	cfg := baseConfig()
	h := start(t, cfg, s, fn, nil)
	eventually(t, "all records", func() bool { return h.r.Stats().InvokedEvents.Load() == 60 })
	h.drain()
	pos := map[string]int{}
	i := 0
	for _, inv := range fn.Invocations() {
		for _, r := range inv.Records {
			pos[r.Data] = i
			i++
		}
	}
	last := func(prefix string, n int) int { return pos[fmt.Sprintf("%s-%d", prefix, n-1)] }
	first := func(prefix string) int { return pos[prefix+"-0"] }
	if first("c3") < last("p0", 20) {
		t.Errorf("child shard-3 delivered before parent shard-0 finished")
	}
	if first("c4") < last("p0", 20) || first("c4") < last("p1", 20) {
		t.Errorf("merged child shard-4 delivered before its parents finished")
	}
	for _, sh := range []string{"shard-0", "shard-1", "shard-2"} {
		if !h.cps.Get(mname, sh).Finished {
			t.Errorf("%s not checkpointed as finished", sh)
		}
	}
}

func TestBatchingWindowCollects(t *testing.T) {
	s := fakes.NewStream(1)
	fn := &fakes.Function{}
	cfg := baseConfig()
	cfg.BatchWindow = 300 * time.Millisecond
	cfg.BatchSize = 100
	h := start(t, cfg, s, fn, nil)
	for i := 0; i < 3; i++ {
		s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i)))
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "invocation", func() bool { return len(fn.Invocations()) >= 1 })
	h.drain()
	invs := fn.Invocations()
	if len(invs) != 1 || len(invs[0].Records) != 3 {
		t.Fatalf("invocations %d (first has %d records), want 1 with 3", len(invs), len(invs[0].Records))
	}
}

func TestPayloadLimitCutsBatches(t *testing.T) {
	s := fakes.NewStream(1)
	big := strings.Repeat("x", 700_000) // about 933 KB of base64 each
	for i := 0; i < 10; i++ {
		s.Put("shard-0", "k", []byte(big))
	}
	huge := strings.Repeat("y", 5_000_000) // 6.7 MB once encoded: can never fit
	s.Put("shard-0", "k", []byte(huge))
	var sizes []int
	var mu sync.Mutex
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		mu.Lock()
		sizes = append(sizes, len(recs))
		mu.Unlock()
		return &mapping.Response{StatusCode: 200}, nil
	}}
	cfg := baseConfig()
	cfg.BatchSize = 100
	s.ReadLimit = 100
	h := start(t, cfg, s, fn, nil)
	eventually(t, "failure", func() bool { return len(h.dest.Got()) == 1 })
	h.drain()
	if f := h.dest.Got()[0]; f.Condition != event.PayloadTooLarge || f.BatchSize != 1 {
		t.Fatalf("failure = %+v", f)
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		if n > 6 {
			t.Fatalf("batch of %d records of 933 KB exceeds 6 MB", n)
		}
		total += n
	}
	if total != 10 {
		t.Fatalf("%d records delivered, want 10", total)
	}
}

func TestRestartResumesFromCheckpoint(t *testing.T) {
	s := fakes.NewStream(1)
	for i := 0; i < 30; i++ {
		s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i)))
	}
	cps := fakes.NewCheckpoints()
	fn := &fakes.Function{}
	h := start(t, baseConfig(), s, fn, cps)
	eventually(t, "first run", func() bool { return h.r.Stats().InvokedEvents.Load() == 30 })
	h.drain()
	for i := 30; i < 40; i++ {
		s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i)))
	}
	fn2 := &fakes.Function{}
	h2 := start(t, baseConfig(), s, fn2, cps)
	eventually(t, "second run", func() bool { return h2.r.Stats().InvokedEvents.Load() == 10 })
	h2.drain()
	if first := fn2.Invocations()[0].Records[0].Data; first != "r30" {
		t.Fatalf("restart began at %s, want r30", first)
	}
}

func TestDrainWithLanesRedeliversNothing(t *testing.T) {
	s := fakes.NewStream(2)
	s.ReadLimit = 300
	const total = 3000
	for i := 0; i < total; i++ {
		s.Put(fmt.Sprintf("shard-%d", i%2), fmt.Sprintf("k%d", i%37), []byte(fmt.Sprintf("r%d", i)))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	handle := func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		mu.Lock()
		for _, r := range recs {
			seen[r.Data]++
		}
		mu.Unlock()
		time.Sleep(time.Millisecond)
		return &mapping.Response{StatusCode: 200}, nil
	}
	cps := fakes.NewCheckpoints()
	cfg := baseConfig()
	cfg.ParallelizationFactor = 4
	h := start(t, cfg, s, &fakes.Function{Handle: handle}, cps)
	eventually(t, "progress", func() bool { return h.r.Stats().InvokedEvents.Load() > total/4 })
	h.drain()
	h2 := start(t, cfg, s, &fakes.Function{Handle: handle}, cps)
	eventually(t, "every record", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == total
	})
	h2.drain()
	for d, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times across a drain and a restart", d, n)
		}
	}
}

func TestStatusReportsShardsAndState(t *testing.T) {
	s := fakes.NewStream(2)
	last := s.Put("shard-1", "k", []byte("a"))
	h := start(t, baseConfig(), s, &fakes.Function{}, nil)
	eventually(t, "checkpoint", func() bool { return h.cps.Get(mname, "shard-1").Seq == last })
	var st mapping.Status
	eventually(t, "status", func() bool {
		st = h.r.Status()
		return len(st.Shards) == 2 && st.Shards[1].Checkpoint == last
	})
	if st.State != "Enabled" || !st.Healthy || st.LastProcessingResult != "OK" || st.Shards[0].ID != "shard-0" || st.Shards[1].Pending != 0 {
		t.Fatalf("status = %+v", st)
	}
	h.drain()
	if st := h.r.Status(); st.State != "Disabled" || len(st.Shards) != 0 {
		t.Fatalf("status after drain = %+v", st)
	}
}

func TestFailingCheckpointStoreStopsAdvancing(t *testing.T) {
	s := fakes.NewStream(1)
	var last string
	for i := 0; i < 200; i++ {
		last = s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i)))
	}
	cps := fakes.NewCheckpoints()
	cps.SetFail(errors.New("disk full"))
	fn := &fakes.Function{}
	h := start(t, baseConfig(), s, fn, cps)
	// The lane and the saver try at once; more failures are the saver
	// retrying with backoff.
	eventually(t, "saves failing and retried", func() bool { return h.r.Stats().CheckpointErrors.Load() >= 6 })
	time.Sleep(100 * time.Millisecond)
	// Lanes may run BatchSize x P records past the last saved position,
	// plus the batch that found the limit.
	if n := h.r.Stats().InvokedEvents.Load(); n > 20 {
		t.Fatalf("%d records invoked while no checkpoint could be saved, want at most 20", n)
	}
	if p := cps.Get(mname, "shard-0"); !p.IsZero() {
		t.Fatalf("checkpoint %v reported while saves failed", p)
	}
	cps.SetFail(nil)
	eventually(t, "recovery", func() bool { return cps.Get(mname, "shard-0").Seq == last })
	h.drain()
	if n := h.r.Stats().InvokedEvents.Load(); n != 200 {
		t.Fatalf("%d records invoked, want 200 exactly once", n)
	}
}

// TestSavedAfterEveryBatch checks checkpoints.interval 0: with one lane the
// end of every batch is saved before the next batch is invoked; with more,
// no batch starts BatchSize x P records or more past the saved checkpoint,
// and the last record's position is saved at the end.
func TestSavedAfterEveryBatch(t *testing.T) {
	tests := []struct {
		name  string
		lanes int
	}{
		{name: "one lane", lanes: 1},
		{name: "three lanes", lanes: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const total = 300
			s := fakes.NewStream(1)
			index := map[string]int{} // sequence number to record number
			var last string
			for i := 0; i < total; i++ {
				last = s.Put("shard-0", fmt.Sprintf("k%d", i%7), []byte(fmt.Sprint(i)))
				index[last] = i
			}
			cps := fakes.NewCheckpoints()
			var mu sync.Mutex
			type call struct{ first, saved int }
			var calls []call
			handle := func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
				saved := -1
				if p := cps.Get(mname, "shard-0"); p.Seq != "" {
					saved = index[p.Seq]
				}
				var first int
				fmt.Sscan(recs[0].Data, &first)
				mu.Lock()
				calls = append(calls, call{first, saved})
				mu.Unlock()
				return &mapping.Response{StatusCode: 200}, nil
			}
			cfg := baseConfig()
			cfg.ParallelizationFactor = tc.lanes
			h := start(t, cfg, s, &fakes.Function{Handle: handle}, cps)
			eventually(t, "the last position saved", func() bool { return cps.Get(mname, "shard-0").Seq == last })
			h.drain()
			mu.Lock()
			defer mu.Unlock()
			if h.r.Stats().InvokedEvents.Load() != total {
				t.Fatalf("%d records invoked, want %d", h.r.Stats().InvokedEvents.Load(), total)
			}
			limit := cfg.BatchSize * tc.lanes
			for i, c := range calls {
				if c.first-(c.saved+1) >= limit {
					t.Errorf("batch %d starts at record %d with record %d saved: %d past the checkpoint, limit %d", i, c.first, c.saved, c.first-c.saved-1, limit)
				}
				if tc.lanes == 1 && c.saved != c.first-1 {
					t.Errorf("batch %d starts at record %d, but the saved checkpoint is record %d, not the end of the batch before", i, c.first, c.saved)
				}
			}
		})
	}
}

// monotonic is a checkpointer that records every save and reports a save
// older than the one before it for the same shard.
type monotonic struct {
	*fakes.Checkpoints
	index map[string]int // sequence number to record number
	mu    sync.Mutex
	last  map[string]int
	back  []string
}

func (m *monotonic) Save(ctx context.Context, name, shard string, p event.Position) error {
	m.mu.Lock()
	i, prev := m.index[p.Seq], m.last[shard]
	if i < prev {
		m.back = append(m.back, fmt.Sprintf("%s saved record %d after record %d", shard, i, prev))
	}
	m.last[shard] = i
	m.mu.Unlock()
	return m.Checkpoints.Save(ctx, name, shard, p)
}

// TestSavesNeverGoBack runs lanes that save the checkpoint concurrently with
// the saver (P = 4, a fast function) and checks that no save stores an older
// position than the one before it.
func TestSavesNeverGoBack(t *testing.T) {
	const total = 20000
	s := fakes.NewStream(1)
	s.ReadLimit = 500
	m := &monotonic{Checkpoints: fakes.NewCheckpoints(), index: map[string]int{}, last: map[string]int{}}
	var last string
	for i := 0; i < total; i++ {
		last = s.Put("shard-0", fmt.Sprintf("k%d", i%97), []byte(fmt.Sprint(i)))
		m.index[last] = i
	}
	cfg := baseConfig()
	cfg.ParallelizationFactor = 4
	h := run(t, cfg, mapping.Deps{Source: s, Invoker: &fakes.Function{}, Destination: &fakes.Destination{}, Checkpointer: m})
	eventually(t, "the last position saved", func() bool { return m.Get(mname, "shard-0").Seq == last })
	h.drain()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.back) > 0 {
		t.Fatalf("%d saves went back, first: %s", len(m.back), m.back[0])
	}
}

// A batch whose first records succeeded has them saved while the rest is
// retried, as Lambda checkpoints the records before the first failure.
func TestDonePrefixSavedDuringRetries(t *testing.T) {
	s := fakes.NewStream(1)
	var seqs []string
	for i := 0; i < 10; i++ {
		seqs = append(seqs, s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i))))
	}
	release := make(chan struct{})
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		select {
		case <-release:
			return &mapping.Response{StatusCode: 200, Body: []byte(`{"batchItemFailures":[]}`)}, nil
		default:
		}
		// r5 and after fail until the test releases them.
		for _, r := range recs {
			if r.Data == "r5" {
				return &mapping.Response{StatusCode: 200, Body: []byte(fmt.Sprintf(`{"batchItemFailures":[{"itemIdentifier":%q}]}`, seqs[5]))}, nil
			}
		}
		return &mapping.Response{StatusCode: 200, Body: []byte(`{"batchItemFailures":[]}`)}, nil
	}}
	cfg := baseConfig()
	cfg.ReportBatchItemFailures = true
	cfg.RetryInitial, cfg.RetryMax = 20*time.Millisecond, 20*time.Millisecond
	h := start(t, cfg, s, fn, nil)
	eventually(t, "retries of r5", func() bool { return len(fn.Invocations()) >= 3 })
	if got := h.cps.Get(mname, "shard-0").Seq; got != seqs[4] {
		t.Fatalf("while r5 is retried the saved checkpoint is %q, want r4's %q", got, seqs[4])
	}
	close(release)
	eventually(t, "the last position saved", func() bool { return h.cps.Get(mname, "shard-0").Seq == seqs[9] })
	h.drain()
}
