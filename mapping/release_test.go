package mapping_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/fakes"
)

// poison is the data of the record a test function always fails.
const poison = "r37"

// scrambleCheck counts the events that hold a record of a read the engine
// had released, and answers them as a success so that the run ends.
type scrambleCheck struct {
	fn    *fakes.Function
	after atomic.Int64 // events that held released records
}

func (c *scrambleCheck) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	if fakes.Scrambled(req.Payload) {
		c.after.Add(1)
		return &mapping.Response{StatusCode: 200}, nil
	}
	return c.fn.Invoke(ctx, req)
}

// scrambleDest is a destination that counts the failure records holding
// a record of a read the engine had released, as it receives them.
type scrambleDest struct {
	fakes.Destination
	after atomic.Int64
}

func (d *scrambleDest) Send(ctx context.Context, f *event.Failure) error {
	if fakes.Scrambled(event.AppendEvent(nil, f.Records)) {
		d.after.Add(1)
	}
	return d.Destination.Send(ctx, f)
}

// bisectOnly turns bisect on and retries off, so that a failing record
// goes to the failure destination through bisection alone.
func bisectOnly(cfg *mapping.Config) {
	cfg.BisectOnError = true
	cfg.MaxRetryAttempts = 0
}

// failPoison fails every batch that holds the poison record.
func failPoison(_ int64, recs []fakes.Rec) (*mapping.Response, error) {
	for _, r := range recs {
		if r.Data == poison {
			return nil, &mapping.FunctionError{Kind: "Unhandled", StatusCode: 200}
		}
	}
	return nil, nil
}

// TestReleaseAfterEveryLaneIsDone checks ReadResult.Release: the engine
// calls it once per read, and only once no lane will touch the read's
// records again, through retries, bisects, partial batch responses,
// failure records, reads split across lanes and reads merged in a lane.
// The source scrambles a read's records and JSON when they are released:
// an event sent after holds the scramble, and a record the engine wrote
// after loses it.
func TestReleaseAfterEveryLaneIsDone(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lanes     int
		window    time.Duration
		readLimit int
		setup     func(cfg *mapping.Config)
		// answer answers the nth invocation; nil for success.
		answer func(n int64, recs []fakes.Rec) (*mapping.Response, error)
	}{
		{name: "one lane", lanes: 1},
		{name: "four lanes", lanes: 4},
		{name: "reads merged by a batching window", lanes: 1, window: 20 * time.Millisecond, readLimit: 7},
		{name: "retries", lanes: 2, answer: func(n int64, _ []fakes.Rec) (*mapping.Response, error) {
			if n%3 == 0 {
				return nil, &mapping.FunctionError{Kind: "Unhandled", StatusCode: 200}
			}
			return nil, nil
		}},
		{name: "bisect to a failure record, four lanes", lanes: 4, setup: bisectOnly, answer: failPoison},
		{name: "bisect to a failure record", lanes: 1, setup: bisectOnly, answer: failPoison},
		{name: "partial batch responses", lanes: 4, setup: func(cfg *mapping.Config) {
			cfg.ReportBatchItemFailures = true
		}, answer: func(n int64, recs []fakes.Rec) (*mapping.Response, error) {
			if n%2 == 0 && len(recs) > 1 {
				body := fmt.Sprintf(`{"batchItemFailures":[{"itemIdentifier":%q}]}`, recs[1].Seq)
				return &mapping.Response{StatusCode: 200, Body: []byte(body)}, nil
			}
			return nil, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const records = 200
			s := fakes.NewStream(1)
			s.Release = true
			s.ReadLimit = 30
			if tc.readLimit > 0 {
				s.ReadLimit = tc.readLimit
			}
			var last string
			seqOf := map[string]string{}
			for i := 0; i < records; i++ {
				d := fmt.Sprintf("r%d", i)
				last = s.Put("shard-0", "k"+fakes.Itoa(i%13), []byte(d))
				seqOf[d] = last
			}
			var calls atomic.Int64
			fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
				n := calls.Add(1)
				if tc.answer != nil {
					if resp, err := tc.answer(n, recs); resp != nil || err != nil {
						return resp, err
					}
				}
				return &mapping.Response{StatusCode: 200}, nil
			}}
			check := &scrambleCheck{fn: fn}
			cfg := baseConfig()
			// Batches of 7 from reads of 30: shares end inside batches.
			cfg.BatchSize = 7
			cfg.ParallelizationFactor = tc.lanes
			cfg.BatchWindow = tc.window
			if tc.setup != nil {
				tc.setup(&cfg)
			}
			cps := fakes.NewCheckpoints()
			dest := &scrambleDest{}
			h := run(t, cfg, mapping.Deps{Source: s, Invoker: check, Destination: dest, Checkpointer: cps})
			eventually(t, "checkpoint at the last record", func() bool { return cps.Get(mname, "shard-0").Seq == last })
			h.drain()

			if n := check.after.Load(); n > 0 {
				t.Errorf("%d events held records of reads already released", n)
			}
			if n := dest.after.Load(); n > 0 {
				t.Errorf("%d failure records held records of reads already released", n)
			}
			reads, released, err := s.Released()
			if err != nil {
				t.Error(err)
			}
			if reads == 0 || released != reads {
				t.Errorf("%d reads, %d released; want every read released once", reads, released)
			}
			// Every record reached the function in a successful call,
			// or the destination.
			ok := map[string]int{}
			for _, inv := range fn.Invocations() {
				for _, r := range inv.Records {
					ok[r.Data]++ // held by an invocation; failures retry until delivered
				}
			}
			for _, f := range dest.Got() {
				if f.StartSeq != f.EndSeq || f.StartSeq != seqOf[poison] {
					t.Errorf("failure record %s..%s, want only %s's", f.StartSeq, f.EndSeq, poison)
				}
			}
			for d := range seqOf {
				if ok[d] == 0 {
					t.Errorf("record %s was never delivered", d)
				}
			}
		})
	}
}

// TestReleaseOnDrain checks a drain that stops a lane in the middle of its
// retries: the reads the lanes finished are released, the rest are not,
// and nothing released is used again.
func TestReleaseOnDrain(t *testing.T) {
	s := fakes.NewStream(1)
	s.Release = true
	s.ReadLimit = 9
	for i := 0; i < 60; i++ {
		s.Put("shard-0", "k"+fakes.Itoa(i%5), []byte(fmt.Sprintf("r%d", i)))
	}
	var failing atomic.Bool
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		if _, err := failPoison(0, recs); err != nil {
			failing.Store(true)
			return nil, err
		}
		return &mapping.Response{StatusCode: 200}, nil
	}}
	check := &scrambleCheck{fn: fn}
	cfg := baseConfig()
	cfg.BatchSize = 4
	cfg.ParallelizationFactor = 2
	h := run(t, cfg, mapping.Deps{Source: s, Invoker: check, Destination: &fakes.Destination{}, Checkpointer: fakes.NewCheckpoints()})
	eventually(t, "the poison record failing", failing.Load)
	h.drain()
	if n := check.after.Load(); n > 0 {
		t.Errorf("%d events held records of reads already released", n)
	}
	reads, released, err := s.Released()
	if err != nil {
		t.Error(err)
	}
	if released == 0 || released >= reads {
		t.Errorf("%d reads, %d released; want the finished ones released and the poison record's kept", reads, released)
	}
}

// TestReleaseNotCalledForUnfinishedReads checks that a hard stop releases
// nothing the engine still holds: reads whose records a failing function
// keeps are never released.
func TestReleaseNotCalledForUnfinishedReads(t *testing.T) {
	s := fakes.NewStream(1)
	s.Release = true
	s.ReadLimit = 10
	for i := 0; i < 50; i++ {
		s.Put("shard-0", "k", []byte(fmt.Sprintf("r%d", i)))
	}
	fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
		return nil, &mapping.FunctionError{Kind: "Unhandled", StatusCode: 200}
	}}
	cfg := baseConfig()
	h := run(t, cfg, mapping.Deps{Source: s, Invoker: fn, Destination: &fakes.Destination{}, Checkpointer: fakes.NewCheckpoints()})
	eventually(t, "retries", func() bool { return len(fn.Invocations()) >= 5 })
	h.stop()
	reads, released, err := s.Released()
	if err != nil {
		t.Error(err)
	}
	if reads == 0 || released != 0 {
		t.Errorf("%d reads, %d released; want none released while the function fails", reads, released)
	}
}
