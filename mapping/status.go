package mapping

import (
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ShardStatus is what a running shard reports about itself.
type ShardStatus struct {
	ID string
	// Checkpoint is the last saved sequence number.
	Checkpoint string
	// Pending is how many records were read but not yet checkpointed.
	Pending int64
	// IteratorAgeMillis is the age of the last record of the shard's last
	// invoked batch.
	IteratorAgeMillis int64
	// ReadFailing reports that reading the shard is failing and retried.
	ReadFailing bool
}

// Status is a snapshot of a mapping, in the words of AWS's
// EventSourceMappingConfiguration.
type Status struct {
	// State is Creating, Enabled, Disabling or Disabled (esmd never
	// reports Updating or Deleting on its own: reloads replace runners).
	State                 string
	StateTransitionReason string
	LastProcessingResult  string
	// Healthy reports that the source answers: shards are listed and read
	// without errors. A mapping whose source fails is still retrying.
	Healthy bool
	// ShardsFinished counts shards read to their end in this process.
	ShardsFinished int
	Shards         []ShardStatus
}

// shardStats are a worker's counters, read by Status.
type shardStats struct {
	iteratorAge atomic.Int64
	failing     atomic.Bool
	reader      atomic.Pointer[failer]
}

// failer is implemented by shard readers that retry failing calls inside
// Read, so that status and readiness can see an outage Read hides.
type failer interface{ Failing() bool }

func (s *shardStats) isFailing() bool {
	if s.failing.Load() {
		return true
	}
	if f := s.reader.Load(); f != nil && (*f).Failing() {
		return true
	}
	return false
}

// registry tracks the running workers of a runner for Status.
type registry struct {
	mu       sync.Mutex
	workers  map[string]*worker
	finished int
	state    string
	reason   string
}

func (g *registry) add(w *worker) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.workers == nil {
		g.workers = map[string]*worker{}
	}
	g.workers[w.shard.ID] = w
}

func (g *registry) remove(id string, finished bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.workers, id)
	if finished {
		g.finished++
	}
}

func (g *registry) setState(state, reason string) {
	g.mu.Lock()
	g.state, g.reason = state, reason
	g.mu.Unlock()
}

// Status returns a snapshot of the mapping and its running shards. It is
// safe to call at any time.
func (r *Runner) Status() Status {
	r.reg.mu.Lock()
	st := Status{
		State:                 r.reg.state,
		StateTransitionReason: r.reg.reason,
		ShardsFinished:        r.reg.finished,
		Healthy:               !r.listFailing.Load(),
	}
	workers := make([]*worker, 0, len(r.reg.workers))
	for _, w := range r.reg.workers {
		workers = append(workers, w)
	}
	r.reg.mu.Unlock()
	if st.State == "" {
		st.State = "Creating"
	}
	st.LastProcessingResult = r.LastProcessingResult()
	for _, w := range workers {
		w.mu.Lock()
		saved := w.saved
		w.mu.Unlock()
		ss := ShardStatus{
			ID:                w.shard.ID,
			Checkpoint:        saved,
			Pending:           w.tr.pending(),
			IteratorAgeMillis: w.stats.iteratorAge.Load(),
			ReadFailing:       w.stats.isFailing(),
		}
		if ss.ReadFailing {
			st.Healthy = false
		}
		st.Shards = append(st.Shards, ss)
	}
	sort.Slice(st.Shards, func(i, j int) bool { return st.Shards[i].ID < st.Shards[j].ID })
	return st
}

// progress logs one line about the mapping's throughput since the last
// line, at Info.
type progress struct {
	at                         time.Time
	polled, invoked, failed    int64
	throttles, invokeErrs, fns int64
}

func (r *Runner) logProgress(p *progress) {
	var maxAge int64
	for _, sh := range r.Status().Shards {
		maxAge = max(maxAge, sh.IteratorAgeMillis)
	}
	logProgress(r.log, &r.stats, p, r.LastProcessingResult(), "iterator_age_ms", maxAge)
}

// logProgress logs what a mapping did since the last line: records/s read
// and invoked, and errors by kind, with extra attributes of the source's.
func logProgress(log *slog.Logger, s *Stats, p *progress, result string, extra ...any) {
	now := time.Now()
	cur := progress{now, s.PolledEvents.Load(), s.InvokedEvents.Load(), s.FailedInvokeEvents.Load(),
		s.Throttles.Load(), s.InvokeErrors.Load(), s.FunctionErrors.Load()}
	secs := now.Sub(p.at).Seconds()
	if secs <= 0 {
		secs = 1
	}
	attrs := append([]any{
		"records_per_s", int64(float64(cur.polled-p.polled) / secs),
		"invoked_per_s", int64(float64(cur.invoked-p.invoked) / secs),
		"function_errors", cur.fns - p.fns,
		"throttles", cur.throttles - p.throttles,
		"invoke_errors", cur.invokeErrs - p.invokeErrs,
		"result", result,
	}, extra...)
	log.Info("progress", attrs...)
	*p = cur
}
