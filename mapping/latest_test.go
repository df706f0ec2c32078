package mapping_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/fakes"
)

// TestLatestRestart: a mapping that starts at LATEST and is stopped before
// any record of a shard was done must not skip, after a restart, what was
// put while it was down, nor what it had read and not finished. The first
// open pins the start time as the shard's checkpoint; a restart reads on
// from there (AT_TIMESTAMP) instead of taking a new LATEST.
func TestLatestRestart(t *testing.T) {
	cfg := baseConfig()
	cfg.StartingPosition = event.Start{Type: event.Latest}
	put := func(s *fakes.Stream, shard, prefix string, n int) []string {
		var out []string
		for i := range n {
			d := fmt.Sprintf("%s%d", prefix, i)
			s.Put(shard, "k", []byte(d))
			out = append(out, d)
		}
		return out
	}
	// firstRun starts a mapping on s, waits until shard-0 polls, and
	// checks the pinned checkpoint.
	firstRun := func(t *testing.T, s *fakes.Stream, fn *fakes.Function, cps *fakes.Checkpoints) *harness {
		before := time.Now()
		h := start(t, cfg, s, fn, cps)
		eventually(t, "the first polls", func() bool { return h.r.Stats().Polls.Load() > 2 })
		p := cps.Get(mname, "shard-0")
		if p.Seq != "" || p.Finished || p.Since.IsZero() {
			t.Fatalf("checkpoint after the first open = %+v, want only Since", p)
		}
		if lo, hi := before.Add(-time.Second-time.Millisecond), before; p.Since.Before(lo) || p.Since.After(hi) {
			t.Errorf("Since = %v, want between %v and %v (the start, less a second)", p.Since, lo, hi)
		}
		return h
	}
	cases := []struct {
		name string
		// run stops a first run somehow and returns the records the
		// second run must deliver.
		run func(t *testing.T, s *fakes.Stream, cps *fakes.Checkpoints) (want []string)
		// gone is a shard that has left the listing by the restart.
		gone string
	}{
		{"drained while idle, records put while down", func(t *testing.T, s *fakes.Stream, cps *fakes.Checkpoints) []string {
			h := firstRun(t, s, &fakes.Function{}, cps)
			h.drain()
			return put(s, "shard-0", "down", 5)
		}, ""},
		{"hard-stopped with its first batch in flight", func(t *testing.T, s *fakes.Stream, cps *fakes.Checkpoints) []string {
			fn := &fakes.Function{Handle: func(ctx context.Context, _ []fakes.Rec) (*mapping.Response, error) {
				<-ctx.Done() // never answers: a crash cuts it short
				return nil, ctx.Err()
			}}
			h := firstRun(t, s, fn, cps)
			want := put(s, "shard-0", "inflight", 5)
			eventually(t, "the invocation in flight", func() bool { return len(fn.Invocations()) == 1 })
			h.stop()
			return append(want, put(s, "shard-0", "down", 3)...)
		}, ""},
		{"split while down", func(t *testing.T, s *fakes.Stream, cps *fakes.Checkpoints) []string {
			h := firstRun(t, s, &fakes.Function{}, cps)
			h.drain()
			want := put(s, "shard-0", "parent", 2)
			s.Split("shard-0", "shard-1", "shard-2")
			return append(want, put(s, "shard-1", "child", 2)...)
		}, ""},
		// The pinned parent leaves the listing (past retention) while
		// esmd is down: its children, which it never saw, must still
		// start at TRIM_HORIZON, not LATEST, since the mapping ran before.
		{"split while down, the parent gone", func(t *testing.T, s *fakes.Stream, cps *fakes.Checkpoints) []string {
			h := firstRun(t, s, &fakes.Function{}, cps)
			h.drain()
			s.Split("shard-0", "shard-1", "shard-2")
			return append(put(s, "shard-1", "child", 2), put(s, "shard-2", "other", 2)...)
		}, "shard-0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := fakes.NewStream(1)
			cps := fakes.NewCheckpoints()
			want := c.run(t, s, cps)
			fn := &fakes.Function{}
			var src mapping.Source = s
			if c.gone != "" {
				src = &listingWithout{Stream: s, gone: c.gone}
			}
			h := run(t, cfg, mapping.Deps{Source: src, Invoker: fn, Destination: &fakes.Destination{}, Checkpointer: cps})
			eventually(t, "every record", func() bool { return h.r.Stats().InvokedEvents.Load() >= int64(len(want)) })
			h.drain()
			var got []string
			for _, inv := range fn.Invocations() {
				for _, r := range inv.Records {
					got = append(got, r.Data)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("after the restart the function got %v, want %v", got, want)
			}
			if p := cps.Get(mname, "shard-0"); c.gone != "shard-0" && !p.Since.IsZero() && p.Seq == "" && !p.Finished {
				t.Errorf("shard-0's checkpoint is still %+v after its records were done", p)
			}
		})
	}
}

// listingWithout is a stream from whose listing one shard has gone, as a
// shard past retention leaves it.
type listingWithout struct {
	*fakes.Stream
	gone string
}

func (l *listingWithout) Shards(ctx context.Context) ([]event.Shard, error) {
	list, err := l.Stream.Shards(ctx)
	return slices.DeleteFunc(list, func(s event.Shard) bool { return s.ID == l.gone }), err
}

// TestLatestPinOnlyOnce: a shard started from its checkpoint, or at
// TRIM_HORIZON, is never pinned; a shard pinned once is not pinned again
// at the restart, which starts at the pinned time.
func TestLatestPinOnlyOnce(t *testing.T) {
	cfg := baseConfig()
	cfg.StartingPosition = event.Start{Type: event.Latest}
	s := fakes.NewStream(1)
	cps := fakes.NewCheckpoints()
	h := start(t, cfg, s, &fakes.Function{}, cps)
	eventually(t, "the first polls", func() bool { return h.r.Stats().Polls.Load() > 2 })
	h.drain()
	first := cps.Get(mname, "shard-0")
	h = start(t, cfg, s, &fakes.Function{}, cps)
	eventually(t, "the polls of the restart", func() bool { return h.r.Stats().Polls.Load() > 2 })
	h.drain()
	if again := cps.Get(mname, "shard-0"); !again.Since.Equal(first.Since) {
		t.Errorf("the restart pinned the shard again: Since %v, was %v", again.Since, first.Since)
	}

	cfg.StartingPosition = event.Start{Type: event.TrimHorizon}
	cps = fakes.NewCheckpoints()
	h = start(t, cfg, s, &fakes.Function{}, cps)
	eventually(t, "the first polls", func() bool { return h.r.Stats().Polls.Load() > 2 })
	h.drain()
	if p := cps.Get(mname, "shard-0"); !p.Since.IsZero() {
		t.Errorf("a TRIM_HORIZON start was pinned: %+v", p)
	}
}
