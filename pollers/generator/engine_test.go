package generator_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
	"github.com/esmd-dev/esmd/test/fakes"
)

// poisonFunc fails every batch that holds a poison record and records the
// records of the batches that succeed.
type poisonFunc struct {
	mu      sync.Mutex
	ok      map[string]int64 // key -> last n that succeeded
	okCount int
	order   int // per-key order violations among successes
	dups    int // records that succeeded twice
	seen    map[[2]any]bool
}

func (f *poisonFunc) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	var ds []generator.Data
	if err := generator.ScanEvent(req.Payload, func(b []byte) {
		d, _ := generator.ParseData(b)
		ds = append(ds, d)
	}); err != nil {
		return nil, err
	}
	for _, d := range ds {
		if d.Poison {
			return nil, &mapping.FunctionError{Kind: "Unhandled", Type: "Poison", Message: "poison record", StatusCode: 200}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range ds {
		id := [2]any{d.Key, d.N}
		if f.seen[id] {
			f.dups++
		}
		f.seen[id] = true
		if d.N <= f.ok[d.Key] {
			f.order++
		}
		f.ok[d.Key] = d.N
		f.okCount++
	}
	return &mapping.Response{StatusCode: 200}, nil
}

func (f *poisonFunc) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.okCount
}

// allRecords regenerates every record of a spec, shard by shard.
func allRecords(t *testing.T, spec generator.Spec) map[string][]event.Record {
	t.Helper()
	s, err := generator.New(generator.Config{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	shards, _ := s.Shards(context.Background())
	out := map[string][]event.Record{}
	for _, sh := range shards {
		r, _ := s.Open(context.Background(), sh, event.Start{Type: event.TrimHorizon})
		for {
			res, err := r.Read(context.Background())
			if errors.Is(err, mapping.ErrShardClosed) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out[sh.ID] = append(out[sh.ID], res.Records...)
		}
	}
	return out
}

// TestEngineBisectsPoison runs a generator through the engine with bisect
// and one retry: exactly the poison records reach the destination, each in
// a failure record of its own, and every other record succeeds once, in
// order per key. A drain halfway and a restart from the checkpoints changes
// nothing of that. The reads' memory is reused as the engine releases it,
// with one lane per shard and with reads split over four lanes. (With
// four lanes a drain stops a lane's retries while the others go on, and
// the restart delivers again what lies past the checkpoint, so that run
// does not drain.)
func TestEngineBisectsPoison(t *testing.T) {
	for _, tc := range []struct {
		lanes   int
		restart bool
	}{{1, true}, {4, false}} {
		t.Run(fmt.Sprintf("P%d", tc.lanes), func(t *testing.T) { engineBisectsPoison(t, tc.lanes, tc.restart) })
	}
}

func engineBisectsPoison(t *testing.T, lanes int, restart bool) {
	spec := generator.Spec{Name: "poison", Shards: 3, Keys: 40, Count: 3000, Seed: 9, Poison: 0.01, ReadSize: 250}
	var poisonSeqs []string
	for _, recs := range allRecords(t, spec) {
		for _, r := range recs {
			if generator.ParseDataOf(r).Poison {
				poisonSeqs = append(poisonSeqs, r.Seq)
			}
		}
	}
	if len(poisonSeqs) < 10 {
		t.Fatalf("only %d poison records", len(poisonSeqs))
	}

	fn := &poisonFunc{ok: map[string]int64{}, seen: map[[2]any]bool{}}
	dest := &fakes.Destination{}
	cps := fakes.NewCheckpoints()
	cfg := mapping.Config{
		Name: "m", Kind: event.Kinesis, SourceARN: spec.StreamARN(), BatchSize: 100, ParallelizationFactor: lanes,
		MaxRecordAge: -1, MaxRetryAttempts: 1, BisectOnError: true,
		RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond, ProgressInterval: -1,
	}
	run := func(until int) {
		src, err := generator.New(generator.Config{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		r, err := mapping.NewRunner(cfg, mapping.Deps{Source: src, Invoker: fn, Destination: dest, Checkpointer: cps})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Run(context.Background()) }()
		deadline := time.Now().Add(30 * time.Second)
		for {
			failed := 0
			for _, f := range dest.Got() {
				failed += f.BatchSize
			}
			if fn.count()+failed >= until {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30s: %d succeeded, %d failed, want %d", fn.count(), failed, until)
			}
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Drain(ctx); err != nil {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if restart {
		run(1000)
	}
	run(3000)

	var got []string
	for _, f := range dest.Got() {
		if f.BatchSize != 1 || f.StartSeq != f.EndSeq || f.Condition != event.RetryAttemptsExhausted {
			t.Fatalf("failure record %+v: want one record per poison record", f)
		}
		got = append(got, f.StartSeq)
	}
	slices.Sort(got)
	slices.Sort(poisonSeqs)
	if !slices.Equal(got, poisonSeqs) {
		t.Fatalf("failure records name %d records %v, want the %d poison records %v", len(got), got, len(poisonSeqs), poisonSeqs)
	}
	if fn.okCount != 3000-len(poisonSeqs) || fn.dups != 0 || fn.order != 0 {
		t.Fatalf("%d succeeded (want %d), %d duplicates, %d order violations", fn.okCount, 3000-len(poisonSeqs), fn.dups, fn.order)
	}
}
