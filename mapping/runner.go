package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// Runner runs one stream mapping: it supervises the shards of its source,
// reads each through lanes into the function, and keeps checkpoints.
//
// Run blocks until the mapping stops. Drain asks it to stop softly. Stats and
// the status methods may be called concurrently with both.
type Runner struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	stats Stats

	lifecycle
	listFailing atomic.Bool
	reg         registry
}

// NewRunner checks cfg and deps and returns a Runner; it starts nothing.
func NewRunner(cfg Config, deps Deps) (*Runner, error) {
	cfg.setDefaults()
	if err := cfg.validate(deps); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		cfg:       cfg,
		deps:      deps,
		log:       deps.Logger.With("mapping", cfg.Name, "source", string(cfg.Kind)),
		lifecycle: newLifecycle(cfg.Name),
	}, nil
}

// Stats returns the mapping's live counters.
func (r *Runner) Stats() *Stats { return &r.stats }

// Config returns the mapping's effective settings.
func (r *Runner) Config() Config { return r.cfg }

// exhausted reports that a span that failed attempts times may not be
// retried again.
func (r *Runner) exhausted(attempts int) bool {
	return r.cfg.MaxRetryAttempts >= 0 && attempts > r.cfg.MaxRetryAttempts
}

// Drain stops the mapping softly: it stops reading, lets lanes finish the
// records already read without retrying failures, and saves final
// checkpoints. It waits until Run returns or ctx ends, and may be called
// more than once.
func (r *Runner) Drain(ctx context.Context) error { return r.lifecycle.Drain(ctx) }

// shardState is what the supervisor knows of one shard.
type shardState struct {
	shard    event.Shard
	initial  bool // seen in the mapping's first listing
	cp       event.Position
	finished bool
	running  bool
	read     bool // a worker of this process read it
}

// Run supervises the mapping's shards until Drain completes (it returns nil),
// ctx is cancelled (a hard stop: it returns ctx.Err() once every worker has
// stopped), or the source is gone (an error wrapping ErrSourceGone).
func (r *Runner) Run(ctx context.Context) error {
	if err := r.start(); err != nil {
		return err
	}
	defer close(r.done)
	r.reg.setState("Enabled", "User action")
	defer r.reg.setState("Disabled", "User action")
	r.log.Info("mapping started", "batch_size", r.cfg.BatchSize, "parallelization_factor", r.cfg.ParallelizationFactor,
		"starting_position", r.cfg.StartingPosition.Type)

	wctx, cancelWorkers := context.WithCancel(ctx)
	defer cancelWorkers()
	shards := map[string]*shardState{}
	exits := make(chan exit)
	running := 0
	first := true
	var fatal error

	discover := time.NewTimer(0)
	defer discover.Stop()
	bo := newBackoff(r.cfg.RetryInitial, r.cfg.DiscoveryInterval)
	listFailing := false
	drainC := r.drainC
	var progressC <-chan time.Time
	if r.cfg.ProgressInterval > 0 {
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		progressC = t.C
	}
	prog := progress{at: time.Now()}

	for {
		if (drainC == nil || fatal != nil || ctx.Err() != nil) && running == 0 {
			break
		}
		select {
		case <-discover.C:
			list, err := r.deps.Source.Shards(ctx)
			if err != nil {
				if ctx.Err() != nil {
					continue
				}
				if errors.Is(err, ErrSourceGone) {
					r.log.Error("event source is gone; the mapping stops", "err", err)
					fatal = err
					cancelWorkers()
					continue
				}
				if !listFailing {
					r.log.Warn("listing shards failed; retrying", "err", err)
					listFailing = true
					r.listFailing.Store(true)
				}
				discover.Reset(bo.NextBackOff())
				continue
			}
			if listFailing {
				r.log.Info("listing shards recovered")
				listFailing = false
				r.listFailing.Store(false)
			}
			bo.Reset()
			if err := r.reconcile(ctx, shards, list, first); err != nil {
				if ctx.Err() != nil {
					continue
				}
				r.log.Warn("loading checkpoints failed; retrying", "err", err)
				discover.Reset(bo.NextBackOff())
				continue
			}
			first = false
			if !r.isDraining() {
				running += r.startReady(wctx, shards, exits)
			}
			if drainC != nil && running == 0 && r.sourceDone(shards) {
				drainC = nil
			}
			discover.Reset(r.cfg.DiscoveryInterval)
		case ex := <-exits:
			running--
			st := shards[ex.shard]
			st.running = false
			switch {
			case ex.closed:
				st.finished = true
				// Children may be ready now: list again at once.
				if !discover.Stop() {
					select {
					case <-discover.C:
					default:
					}
				}
				discover.Reset(0)
			case errors.Is(ex.err, ErrSourceGone):
				fatal = ex.err
				cancelWorkers()
			}
			if drainC != nil && running == 0 && r.sourceDone(shards) {
				drainC = nil
			}
		case <-progressC:
			r.logProgress(&prog)
		case <-drainC:
			r.log.Info("mapping draining", "shards_running", running)
			r.reg.setState("Disabling", "User action")
			drainC = nil
		case <-ctx.Done():
			cancelWorkers()
		}
	}
	switch {
	case fatal != nil:
		return fmt.Errorf("mapping %s: %w", r.cfg.Name, fatal)
	case ctx.Err() != nil:
		r.log.Info("mapping stopped")
		return ctx.Err()
	}
	r.log.Info("mapping drained")
	return nil
}

// reconcile merges a shard listing into what the supervisor knows, loading
// the checkpoints of shards it had not seen.
func (r *Runner) reconcile(ctx context.Context, shards map[string]*shardState, list []event.Shard, first bool) error {
	initial := first
	if first {
		// A mapping that has run before starts no shard at its
		// StartingPosition: a shard without a checkpoint was born while
		// esmd was down (its parents may have left the listing since),
		// and LATEST would skip its records.
		resumed, err := r.resumed(ctx)
		if err != nil {
			return err
		}
		initial = !resumed
	}
	for _, s := range list {
		if st, ok := shards[s.ID]; ok {
			st.shard = s
			continue
		}
		cp, err := r.deps.Checkpointer.Load(ctx, r.cfg.Name, s.ID)
		if err != nil {
			return fmt.Errorf("load checkpoint of %s: %w", s.ID, err)
		}
		shards[s.ID] = &shardState{shard: s, initial: initial, cp: cp, finished: cp.Finished}
	}
	return nil
}

// positionLister is a Checkpointer that lists a mapping's saved positions.
type positionLister interface {
	All(ctx context.Context, mapping string) (map[string]event.Position, error)
}

// resumed reports that the checkpoints hold a position of this mapping,
// for any shard: it ran before. A Checkpointer that cannot list says no.
func (r *Runner) resumed(ctx context.Context) (bool, error) {
	pl, ok := r.deps.Checkpointer.(positionLister)
	if !ok {
		return false, nil
	}
	all, err := pl.All(ctx, r.cfg.Name)
	if err != nil {
		return false, fmt.Errorf("list checkpoints: %w", err)
	}
	for _, p := range all {
		if !p.IsZero() {
			return true, nil
		}
	}
	return false, nil
}

// startReady starts a worker for every shard whose parents are finished, and
// returns how many it started.
func (r *Runner) startReady(ctx context.Context, shards map[string]*shardState, exits chan<- exit) int {
	n := 0
	for _, st := range shards {
		if st.running || st.finished {
			continue
		}
		parentSeen := false
		ready := true
		for _, p := range st.shard.Parents {
			ps, ok := shards[p]
			if !ok {
				continue // expired from the stream: nothing left to read
			}
			if !ps.cp.IsZero() || ps.read {
				parentSeen = true
			}
			if !ps.finished {
				ready = false
			}
		}
		if !ready {
			continue
		}
		start := r.startFor(st, parentSeen)
		if start.Type == event.Latest && st.shard.Closed {
			// A closed shard has nothing after its tip: it is done.
			st.finished = true
			r.saveFinished(ctx, st.shard.ID)
			n += r.startReady(ctx, shards, exits)
			return n
		}
		st.running, st.read = true, true
		n++
		w := newWorker(r, st.shard, start)
		r.reg.add(w)
		go func() {
			ex := w.run(ctx)
			r.reg.remove(w.shard.ID, ex.closed)
			exits <- ex
		}()
	}
	return n
}

// startFor picks where a shard without a finished checkpoint begins: after
// its checkpoint; at the time a LATEST start was pinned to (see
// event.Position.Since); at the configured starting position when the
// mapping saw it first and read none of its parents; otherwise (a child of
// a reshard) at TRIM_HORIZON, so that no record of it is skipped.
func (r *Runner) startFor(st *shardState, parentSeen bool) event.Start {
	switch {
	case st.cp.Seq != "":
		return event.Start{Type: event.AfterSequence, Seq: st.cp.Seq}
	case !st.cp.Since.IsZero():
		return event.Start{Type: event.AtTimestamp, Timestamp: st.cp.Since}
	case st.initial && !parentSeen:
		return r.cfg.StartingPosition
	default:
		return event.Start{Type: event.TrimHorizon}
	}
}

func (r *Runner) saveFinished(ctx context.Context, shard string) {
	if err := r.deps.Checkpointer.Save(ctx, r.cfg.Name, shard, event.Position{Finished: true}); err != nil {
		r.log.Error("saving a skipped closed shard as finished failed; it will be skipped again at the next start", "shard", shard, "err", err)
	}
}

// FiniteSource is a Source whose every shard ends, such as a generator with a
// record count or a duration. A Runner on a source whose Finite reports true
// stops by itself, as after a completed drain, once every shard it listed is
// finished.
type FiniteSource interface {
	Source
	Finite() bool
}

// sourceDone reports that the source is finite and every shard is
// finished, which ends the mapping; it logs that once.
func (r *Runner) sourceDone(shards map[string]*shardState) bool {
	f, ok := r.deps.Source.(FiniteSource)
	if !ok || !f.Finite() || len(shards) == 0 {
		return false
	}
	for _, st := range shards {
		if !st.finished {
			return false
		}
	}
	r.log.Info("every shard of the source is finished: the mapping stops")
	return true
}
