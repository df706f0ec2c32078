package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// SQSRunner runs one SQS mapping: a pool of pollers that receive batches,
// invoke the function with each, and delete what succeeded. The pool starts
// at InitialConcurrency pollers, grows while messages keep arriving and
// shrinks when the queue is empty or the function fails, within
// MaxConcurrency.
//
// Run blocks until the mapping stops. Drain asks it to stop softly. Stats and
// the status methods may be called concurrently with both.
type SQSRunner struct {
	cfg   SQSConfig
	deps  SQSDeps
	log   *slog.Logger
	stats SQSStats

	lifecycle
	// receiveFailing counts pollers whose receives fail and are retried.
	receiveFailing atomic.Int64

	// target is the number of pollers wanted; live the number running.
	// A poller retires when live exceeds target.
	target atomic.Int64
	live   atomic.Int64
	// Signals gathered between scale ticks.
	fullPolls  atomic.Int64 // receives that returned messages
	emptyPolls atomic.Int64 // receives that returned none
	failures   atomic.Int64 // failed invocations that call for backing off

	// slots bounds the invocations in flight to MaxConcurrency (FIFO
	// pollers may run one per message group).
	slots  chan struct{}
	groups groupLocks
	// visibility is the queue's visibility timeout, read once at start.
	visibility time.Duration
	// visibilityGuessed is set when the queue's visibility timeout could
	// not be read and visibility is SQS's default: throttled batches are
	// then not retried, as their messages might already be visible again.
	visibilityGuessed bool
}

// NewSQSRunner checks cfg and deps and returns an SQSRunner; it starts
// nothing.
func NewSQSRunner(cfg SQSConfig, deps SQSDeps) (*SQSRunner, error) {
	cfg.setDefaults()
	if err := cfg.validate(deps); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &SQSRunner{
		cfg:       cfg,
		deps:      deps,
		log:       deps.Logger.With("mapping", cfg.Name, "source", "sqs"),
		lifecycle: newLifecycle(cfg.Name),
		slots:     make(chan struct{}, cfg.MaxConcurrency),
		groups:    groupLocks{m: map[string]chan struct{}{}, failed: map[string]failMark{}},
	}, nil
}

// Stats returns the mapping's live counters common to every source.
func (r *SQSRunner) Stats() *Stats { return &r.stats.Stats }

// SQSStats returns all of the mapping's live counters.
func (r *SQSRunner) SQSStats() *SQSStats { return &r.stats }

// Config returns the mapping's effective settings.
func (r *SQSRunner) Config() SQSConfig { return r.cfg }

// Drain stops the mapping softly: pollers stop receiving (an open long poll
// is abandoned), invoke what they already received, delete what succeeded,
// make what they hold unsent visible again, and exit. Drain waits until Run
// returns or ctx ends, and may be called more than once.
func (r *SQSRunner) Drain(ctx context.Context) error { return r.lifecycle.Drain(ctx) }

// Status returns a snapshot of the mapping in AWS's words: Enabled while
// it polls, Disabling while it drains, Disabled once Run returned; Healthy
// is false while receives fail and are retried. The transition reason is
// USER_INITIATED, as Lambda words it for SQS mappings (streams say "User
// action").
func (r *SQSRunner) Status() Status {
	st := Status{State: "Creating", StateTransitionReason: "USER_INITIATED", LastProcessingResult: r.LastProcessingResult(),
		Healthy: r.receiveFailing.Load() == 0}
	select {
	case <-r.done:
		st.State = "Disabled"
	default:
		switch {
		case r.isDraining():
			st.State = "Disabling"
		case r.running.Load():
			st.State = "Enabled"
		}
	}
	return st
}

// Run polls the queue until Drain completes (it returns nil), ctx is
// cancelled (a hard stop: it returns ctx.Err() once every poller has
// stopped; messages in flight reappear after their visibility timeout), or
// the queue is gone (an error wrapping ErrSourceGone).
func (r *SQSRunner) Run(ctx context.Context) error {
	if err := r.start(); err != nil {
		return err
	}
	defer close(r.done)
	// The heartbeat needs the queue's visibility timeout; FIFO group
	// holds use it too, with 30 s (SQS's default) when it cannot be read.
	vt, err := r.deps.Queue.VisibilityTimeout(ctx)
	switch {
	case err == nil:
		r.visibility = vt
	case ctx.Err() != nil:
		return ctx.Err()
	case r.cfg.Heartbeat:
		return fmt.Errorf("mapping %s: read visibility timeout: %w", r.cfg.Name, err)
	default:
		r.visibility, r.visibilityGuessed = 30*time.Second, true
		r.log.Warn("could not read the queue's visibility timeout; throttled batches return to the queue at once "+
			"rather than being retried (grant sqs:GetQueueAttributes)", "err", err)
	}
	if t := r.cfg.InvokeTimeout; err == nil && t > vt && !r.cfg.Heartbeat {
		// Lambda refuses such a mapping; esmd runs it, and says so.
		r.log.Warn("the function's timeout is longer than the queue's visibility timeout: a message whose invocation runs "+
			"longer than the visibility timeout is received and processed again while that invocation still runs; "+
			"set the queue's VisibilityTimeout to at least 6 times the function's timeout (AWS's advice), "+
			"or turn on esmd.visibilityHeartbeat",
			"function_timeout", t, "visibility_timeout", vt)
	}
	r.log.Info("mapping started", "batch_size", r.cfg.BatchSize, "fifo", r.cfg.FIFO,
		"max_concurrency", r.cfg.MaxConcurrency, "heartbeat", r.cfg.Heartbeat)

	// Invocations and deletes run under pctx, which only a hard stop ends;
	// receives run under rctx, which a drain ends too.
	pctx, cancelPollers := context.WithCancel(ctx)
	defer cancelPollers()
	rctx, cancelReceives := context.WithCancel(pctx)
	defer cancelReceives()

	exits := make(chan error)
	pollers := 0
	start := func(n int) {
		for ; n > 0; n-- {
			pollers++
			r.live.Add(1)
			p := &sqsPoller{r: r}
			go func() { exits <- p.run(pctx, rctx) }()
		}
		r.noteConcurrency()
	}
	r.target.Store(int64(r.cfg.InitialConcurrency))
	start(r.cfg.InitialConcurrency)

	tick := time.NewTicker(r.cfg.ScaleInterval)
	defer tick.Stop()
	var progressC <-chan time.Time
	if r.cfg.ProgressInterval > 0 {
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		progressC = t.C
	}
	prog := progress{at: time.Now()}
	drainC, ctxDone := r.drainC, ctx.Done()
	var fatal error
	for pollers > 0 {
		select {
		case err := <-exits:
			pollers--
			r.noteConcurrency()
			if errors.Is(err, ErrSourceGone) && fatal == nil {
				r.log.Error("event source is gone; the mapping stops", "err", err)
				fatal = err
				cancelPollers()
			}
		case <-tick.C:
			if drainC == nil || fatal != nil || ctx.Err() != nil {
				continue
			}
			if n := r.rescale(); n > 0 {
				start(n)
			}
		case <-progressC:
			logProgress(r.log, &r.stats.Stats, &prog, r.LastProcessingResult(),
				"pollers", pollers, "deleted", r.stats.DeletedEvents.Load())
		case <-drainC:
			r.log.Info("mapping draining", "pollers", pollers)
			drainC = nil
			cancelReceives()
		case <-ctxDone:
			// Pollers see pctx end and exit.
			ctxDone = nil
		}
	}
	r.stats.Concurrency.Store(0)
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

func (r *SQSRunner) noteConcurrency() {
	n := r.live.Load()
	r.stats.Concurrency.Store(n)
	for {
		p := r.stats.PeakConcurrency.Load()
		if n <= p || r.stats.PeakConcurrency.CompareAndSwap(p, n) {
			return
		}
	}
}

// rescale sets the poller target from what happened since the last tick and
// returns how many pollers to start. Like Lambda: fewer after failed or
// throttled invocations (halved, down to MinConcurrency) and after empty
// receives (one fewer per empty long poll); more, by up to
// ScaleUpPerMinute a minute, while every receive returns messages.
func (r *SQSRunner) rescale() int {
	full, empty, failed := r.fullPolls.Swap(0), r.emptyPolls.Swap(0), r.failures.Swap(0)
	t := r.target.Load()
	floor, ceil := int64(r.cfg.MinConcurrency), int64(r.cfg.MaxConcurrency)
	next := t
	switch {
	case failed > 0:
		next = max(floor, t/2)
	case full == 0 && empty > 0:
		next = max(floor, t-empty)
	case full > 0 && empty == 0 && r.live.Load() >= t:
		next = min(ceil, t+int64(r.cfg.scaleStep()))
	}
	if next != t {
		r.target.Store(next)
		r.log.Debug("concurrency changed", "from", t, "to", next, "full_polls", full, "empty_polls", empty, "failures", failed)
	}
	return int(max(0, next-r.live.Load()))
}

// retire reports that the calling poller should stop because there are more
// pollers than wanted; when it says so, it has already counted the poller
// out.
func (r *SQSRunner) retire() bool {
	for {
		n := r.live.Load()
		if n <= r.target.Load() {
			return false
		}
		if r.live.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// groupLocks lets one batch per FIFO message group be in flight, and
// remembers when each group last failed, so that messages of the group
// that were received before the failure and waited for the group (SQS
// never hands them out while earlier ones are in flight, but a server may,
// and a visibility timeout may run out) are returned rather than invoked
// out of order.
type groupLocks struct {
	mu     sync.Mutex
	m      map[string]chan struct{}
	failed map[string]failMark
}

// failMark remembers that a batch of a group failed: head is the first
// message it returned, which must come back before any later message of the
// group is invoked.
type failMark struct {
	at   time.Time
	head string
}

// maxFailedGroups bounds the failure marks kept; older ones are pruned.
const maxFailedGroups = 10000

// lock waits until no other batch of group is in flight and takes the
// group. It returns false when ctx ends first.
func (g *groupLocks) lock(ctx context.Context, group string) bool {
	for {
		g.mu.Lock()
		held, ok := g.m[group]
		if !ok {
			g.m[group] = make(chan struct{})
			g.mu.Unlock()
			return true
		}
		g.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return false
		}
	}
}

// blocked reports that recs, a batch of group received at returned, must
// go back because an earlier message of the group failed and has not come
// back yet. The failed message's return clears the mark. Within the failed
// messages' visibility timeout (window) nothing else of the group can
// legitimately arrive first: what does was received before the failure, or
// handed out by a server that does not hold FIFO groups, which may make it
// visible as early as the failed message; so the hold lasts twice the
// window. After that, a later message arriving first means the failed one
// left the queue (to a DLQ): the group goes on. The caller holds the group.
func (g *groupLocks) blocked(group string, recs []event.Record, returned time.Time, window time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	mark, ok := g.failed[group]
	switch {
	case !ok:
		return false
	case recs[0].ID == mark.head:
		delete(g.failed, group)
		return false
	case returned.Before(mark.at.Add(2 * window)):
		// Twice the window: a server that does not hold groups may make
		// later messages visible as early as the failed ones.
		return true
	}
	delete(g.failed, group)
	return false
}

// unlock releases the group; head, when set, is the first message its
// batch returned after a failure.
func (g *groupLocks) unlock(group, head string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if head != "" {
		if len(g.failed) >= maxFailedGroups {
			cutoff := time.Now().Add(-15 * time.Minute)
			for k, f := range g.failed {
				if f.at.Before(cutoff) {
					delete(g.failed, k)
				}
			}
		}
		g.failed[group] = failMark{at: time.Now(), head: head}
	}
	close(g.m[group])
	delete(g.m, group)
}
