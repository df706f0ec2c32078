package mapping

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"

	"github.com/esmd-dev/esmd/event"
)

// lane is one of a shard's ParallelizationFactor batch pipelines. It owns
// its buffer and has at most one invocation in flight, so the records of one
// partition key keep their order.
type lane struct {
	w   *worker
	idx int
	in  chan share
	log *slog.Logger

	buf      []event.Record // received and not yet resolved, in order
	bufBytes int            // event size of buf as one batch, less the frame
	payload  []byte         // reused event buffer
	bo       *backoff.ExponentialBackOff

	// received and shifted count the records the lane took in and let go
	// of; marks say after how many shifted records each read's share is
	// done with, in order.
	received, shifted int64
	marks             []mark
}

// share is the part of one read that a lane gets.
type share struct {
	recs []event.Record
	ref  *readRef // nil when the read has no Release
}

// mark is where a read's share ends in a lane's input.
type mark struct {
	end int64
	ref *readRef
}

// readRef calls a read's Release once every lane that got a share of it
// has let go of its records.
type readRef struct {
	lanes   atomic.Int32
	release func()
}

// newReadRef returns the readRef of a read with release, shared by lanes
// lanes; nil when release is nil.
func newReadRef(release func(), lanes int) *readRef {
	if release == nil || lanes == 0 {
		return nil
	}
	r := &readRef{release: release}
	r.lanes.Store(int32(lanes))
	return r
}

// done records that one lane let go of its share.
func (r *readRef) done() {
	if r.lanes.Add(-1) == 0 {
		r.release()
	}
}

func newLane(w *worker, idx int) *lane {
	bo := newBackoff(w.r.cfg.RetryInitial, w.r.cfg.RetryMax)
	return &lane{
		w:   w,
		idx: idx,
		// Unbuffered: a poll waits in the reader, not in the channel, so
		// the reader sees how long the lane takes to come back for more
		// and sizes its reads to that, and one poll fewer is held.
		in:  make(chan share),
		log: w.log.With("lane", idx),
		bo:  bo,
	}
}

// run collects batches and processes them until the input is closed and
// drained (shard end), the mapping drains, or ctx is cancelled.
func (l *lane) run(ctx context.Context) {
	cfg := &l.w.r.cfg
	in := l.in
	var timer *time.Timer
	var timerC <-chan time.Time
	windowDone := false
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
		}
		timerC, windowDone = nil, false
	}
	defer stopTimer()
	for {
		ready := len(l.buf) > 0 && (in == nil || windowDone || cfg.BatchWindow <= 0 || l.full())
		if ready {
			// A drain still flushes what was read, so that a restart
			// re-delivers nothing; only retries stop (in process).
			if ctx.Err() != nil || !l.w.waitLead(ctx, l.idx) {
				return
			}
			n := l.cut()
			resolved, stopped := l.process(ctx, l.buf[:n])
			l.shift(resolved)
			if stopped {
				l.w.halt()
				return
			}
			if len(l.buf) == 0 {
				stopTimer()
			}
			continue
		}
		if in == nil {
			return // shard end: everything resolved
		}
		select {
		case sh, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			recs := sh.recs
			l.received += int64(len(recs))
			if sh.ref != nil {
				l.marks = append(l.marks, mark{end: l.received, ref: sh.ref})
			}
			if len(l.buf) == 0 && cfg.BatchWindow > 0 {
				if timer == nil {
					timer = time.NewTimer(cfg.BatchWindow)
				} else {
					timer.Reset(cfg.BatchWindow)
				}
				timerC = timer.C
			}
			for i := range recs {
				l.bufBytes += recs[i].Size() + 1
			}
			if len(l.buf) == 0 {
				// The sender is done with recs (see ReadResult): take
				// them as they are, without a copy.
				l.buf = recs[:len(recs):len(recs)]
			} else {
				l.buf = append(l.buf, recs...)
			}
		case <-timerC:
			timerC, windowDone = nil, true
		case <-ctx.Done():
			return
		}
	}
}

// full reports that the buffer holds at least a whole batch.
func (l *lane) full() bool {
	return len(l.buf) >= l.w.r.cfg.BatchSize || l.bufBytes+event.Overhead > l.w.r.cfg.MaxPayload
}

// cut returns how many records of the buffer make the next batch: at most
// BatchSize, and no more than fit in MaxPayload. A single record too large to
// fit still makes a batch of one; process gives it up.
func (l *lane) cut() int {
	cfg := &l.w.r.cfg
	n := min(len(l.buf), cfg.BatchSize)
	size := event.Overhead
	for i := 0; i < n; i++ {
		size += event.AddedSize(i, l.buf[i].Size())
		if size > cfg.MaxPayload {
			return max(i, 1)
		}
	}
	return n
}

func (l *lane) shift(n int) {
	for i := 0; i < n; i++ {
		l.bufBytes -= l.buf[i].Size() + 1
	}
	// Drop the batch from the front without moving the rest: a poll of
	// thousands of records would otherwise be copied down once a batch.
	clear(l.buf[:n])
	l.buf = l.buf[n:]
	if len(l.buf) == 0 {
		l.buf = nil
	}
	// Let go of the reads whose share is all behind.
	l.shifted += int64(n)
	for len(l.marks) > 0 && l.marks[0].end <= l.shifted {
		l.marks[0].ref.done()
		l.marks[0] = mark{}
		l.marks = l.marks[1:]
	}
}

// span is a part of a batch being retried, with its own counts.
type span struct {
	recs     []event.Record
	attempts int // function errors (and partial failures) counted against MaximumRetryAttempts
	invokes  int // invocations of the span that held these records
	// invoked is set once these records were in an invocation, of this
	// span or of the batch it was bisected from.
	invoked bool
	last    outcome
}

// outcome is what the last invocation of a span returned, for failure
// records.
type outcome struct {
	requestID       string // the invocation's; empty when none was made
	statusCode      int
	executedVersion string
	functionError   string
	err             error
}

// process invokes recs as one batch and applies Lambda's error rules until
// every record is resolved: succeeded, or given up and (when a destination is
// set) delivered to it. It resolves records in the tracker as soon as a
// prefix is done, and returns how many it resolved. stopped reports that it
// returned early, on drain or hard stop, leaving the rest unresolved.
func (l *lane) process(ctx context.Context, recs []event.Record) (resolved int, stopped bool) {
	r := l.w.r
	cfg := &r.cfg
	work := []span{{recs: recs}}
	resolve := func(n int) {
		resolved += n
		// Saved now, also when the rest of the batch is retried.
		if l.w.resolve(l.idx, n) {
			l.w.batchDone(ctx)
		}
	}
	for len(work) > 0 {
		s := &work[0]
		if n := l.expired(s.recs, s.invoked); n > 0 {
			if !l.giveUp(ctx, s.recs[:n], event.RecordAgeExceeded, s) {
				return resolved, true
			}
			resolve(n)
			s.recs = s.recs[n:]
			if len(s.recs) == 0 {
				work = work[1:]
			}
			continue
		}
		if len(s.recs) == 1 && event.EventSize(s.recs) > cfg.MaxPayload {
			l.log.Error("record too large to invoke", "seq", s.recs[0].Seq, "bytes", s.recs[0].Size(), "limit", cfg.MaxPayload)
			if !l.giveUp(ctx, s.recs, event.PayloadTooLarge, s) {
				return resolved, true
			}
			resolve(1)
			work = work[1:]
			continue
		}
		if s.invokes > 0 || s.attempts > 0 || resolved > 0 || len(work) > 1 {
			// Not the batch's first invocation: a drain stops here.
			if r.isDraining() {
				return resolved, true
			}
		}
		resp, err := l.invoke(ctx, s)
		if ctx.Err() != nil {
			return resolved, true
		}
		if err == nil && cfg.ReportBatchItemFailures {
			k, perr := firstFailed(resp.Body, s.recs)
			if perr != nil {
				err = &FunctionError{Kind: "Unhandled", Type: "PartialBatchResponseError", Message: perr.Error(), StatusCode: resp.StatusCode, ExecutedVersion: resp.ExecutedVersion}
			} else if k < len(s.recs) {
				r.stats.FailedInvokeEvents.Add(int64(len(s.recs)))
				l.log.Warn("function reported failed records", "failed_from", s.recs[k].Seq, "resolved", k, "retrying", len(s.recs)-k)
				resolve(k)
				s.recs = s.recs[k:]
				// The records left were in every invocation of the
				// span so far: s.invokes still counts them.
				s.attempts++
				if r.exhausted(s.attempts) {
					if !l.giveUp(ctx, s.recs, event.RetryAttemptsExhausted, s) {
						return resolved, true
					}
					resolve(len(s.recs))
					work = work[1:]
					continue
				}
				r.stats.Retries.Add(1)
				if !l.wait(ctx, 0) {
					return resolved, true
				}
				continue
			}
		}
		var fe *FunctionError
		var te *ThrottleError
		switch {
		case err == nil:
			l.bo.Reset()
			resolve(len(s.recs))
			work = work[1:]
		case errors.As(err, &fe):
			r.stats.FunctionErrors.Add(1)
			r.stats.FailedInvokeEvents.Add(int64(len(s.recs)))
			if fe.Timeout {
				r.stats.Timeouts.Add(1)
			}
			if cfg.BisectOnError && len(s.recs) > 1 {
				// Splitting does not count as a retry: both halves keep the
				// attempts of the batch they came from.
				r.stats.Bisects.Add(1)
				half := len(s.recs) / 2
				a := span{recs: s.recs[:half], attempts: s.attempts, invoked: true, last: s.last}
				b := span{recs: s.recs[half:], attempts: s.attempts, invoked: true, last: s.last}
				l.log.Warn("function error, bisecting batch", "err", err, "records", len(s.recs))
				work = append([]span{a, b}, work[1:]...)
				continue
			}
			s.attempts++
			if r.exhausted(s.attempts) {
				if !l.giveUp(ctx, s.recs, event.RetryAttemptsExhausted, s) {
					return resolved, true
				}
				resolve(len(s.recs))
				work = work[1:]
				continue
			}
			r.stats.Retries.Add(1)
			l.log.Warn("function error, retrying batch", "err", err, "records", len(s.recs), "attempt", s.attempts)
			if !l.wait(ctx, 0) {
				return resolved, true
			}
		case errors.As(err, &te):
			// Throttles and invoke-side errors never count as attempts:
			// only age (checked at the top) ends them.
			r.stats.Throttles.Add(1)
			l.log.Warn("function throttled, retrying batch", "err", err, "records", len(s.recs))
			if !l.wait(ctx, te.RetryAfter) {
				return resolved, true
			}
		default:
			r.stats.InvokeErrors.Add(1)
			l.log.Warn("invoke failed, retrying batch", "err", err, "records", len(s.recs))
			if !l.wait(ctx, 0) {
				return resolved, true
			}
		}
	}
	return resolved, false
}

// expired counts the leading records of recs older than MaximumRecordAge,
// or, once they were invoked (retried), than the stream's retention: records
// that have left the stream are not retried. Records read in time are
// invoked at least once, however old they are by then.
func (l *lane) expired(recs []event.Record, retried bool) int {
	cfg := &l.w.r.cfg
	age := cfg.MaxRecordAge
	if retried && cfg.Retention > 0 && (age < 0 || cfg.Retention < age) {
		age = cfg.Retention
	}
	if age < 0 {
		return 0
	}
	cutoff := time.Now().Add(-age)
	n := 0
	for n < len(recs) && recs[n].Arrival.Before(cutoff) {
		n++
	}
	return n
}

// invoke sends recs to the function once.
func (l *lane) invoke(ctx context.Context, s *span) (*Response, error) {
	r := l.w.r
	cfg := &r.cfg
	l.payload = event.AppendEvent(l.payload[:0], s.recs)
	req := &Request{
		Payload:   l.payload,
		RequestID: uuid.NewString(),
		Mapping:   cfg.Name,
		Attempt:   s.attempts + 1,
	}
	ictx := ctx
	if cfg.InvokeTimeout > 0 {
		req.Deadline = time.Now().Add(cfg.InvokeTimeout)
		var cancel context.CancelFunc
		// The invoker enforces the timeout; the engine waits a little longer
		// so that the invoker can report it as a function error.
		ictx, cancel = context.WithDeadline(ctx, req.Deadline.Add(time.Second))
		defer cancel()
	}
	s.invokes++
	s.invoked = true
	r.stats.Invocations.Add(1)
	r.stats.InvokedEvents.Add(int64(len(s.recs)))
	age := time.Since(s.recs[len(s.recs)-1].Arrival).Milliseconds()
	r.stats.IteratorAgeMillis.Store(age)
	l.w.stats.iteratorAge.Store(age)
	r.stats.LanesBusy.Add(1)
	began := time.Now()
	resp, err := r.deps.Invoker.Invoke(ictx, req)
	r.stats.LanesBusy.Add(-1)
	if r.deps.Observer != nil {
		r.deps.Observer.Invoked(l.w.shard.ID, time.Since(began), len(s.recs), len(l.payload), OutcomeOf(err))
	}
	r.noteResult(err)
	switch fe := (*FunctionError)(nil); {
	case err == nil:
		s.last = outcome{statusCode: resp.StatusCode, executedVersion: resp.ExecutedVersion}
	case errors.As(err, &fe):
		s.last = outcome{statusCode: fe.StatusCode, executedVersion: fe.ExecutedVersion, functionError: fe.Kind, err: err}
	default:
		s.last = outcome{err: err}
	}
	s.last.requestID = req.RequestID
	l.log.Debug("invoked", "request_id", req.RequestID, "records", len(s.recs), "bytes", len(l.payload), "attempt", req.Attempt, "err", err)
	if err != nil || resp.PayloadInUse {
		// An abandoned invocation (timed out, cancelled, cut off), or one
		// the function answered early, may still be sending the event:
		// the next one gets a new buffer.
		l.payload = nil
	}
	return resp, err
}

// wait backs off before a retry: at least min, and at least the lane's
// exponential backoff. It returns false when the mapping stops meanwhile.
func (l *lane) wait(ctx context.Context, min time.Duration) bool {
	// The other lanes need not wait for this one's checkpoint meanwhile.
	l.w.tr.fail(l.idx)
	return sleepDrain(ctx, l.w.r.drainC, max(min, l.bo.NextBackOff()))
}

// giveUp sends the failure record of recs to the destination, retrying until
// it is delivered; only then may the records count as done. It returns false
// when the mapping stops first.
func (l *lane) giveUp(ctx context.Context, recs []event.Record, cond event.Condition, s *span) bool {
	r := l.w.r
	cfg := &r.cfg
	// The request ID of the last invocation, as Lambda gives it, so that
	// the failure record leads to the function's logs of it; a batch given
	// up before any invocation (too old already) gets one of its own.
	id := s.last.requestID
	if id == "" {
		id = uuid.NewString()
	}
	f := &event.Failure{
		Source:                 cfg.Kind,
		RequestID:              id,
		FunctionARN:            cfg.FunctionARN,
		Condition:              cond,
		ApproximateInvokeCount: s.invokes,
		StatusCode:             s.last.statusCode,
		ExecutedVersion:        s.last.executedVersion,
		FunctionError:          s.last.functionError,
		Timestamp:              time.Now(),
		ShardID:                l.w.shard.ID,
		StreamARN:              cfg.SourceARN,
		StartSeq:               recs[0].Seq,
		EndSeq:                 recs[len(recs)-1].Seq,
		FirstArrival:           recs[0].Arrival,
		LastArrival:            recs[len(recs)-1].Arrival,
		BatchSize:              len(recs),
		MappingUUID:            cfg.UUID,
		Records:                recs,
	}
	attrs := []any{"condition", cond, "records", len(recs), "start_seq", f.StartSeq, "end_seq", f.EndSeq, "invokes", s.invokes}
	if s.last.err != nil {
		attrs = append(attrs, "last_err", s.last.err.Error())
	}
	if r.deps.Destination == nil {
		r.stats.DroppedEvents.Add(int64(len(recs)))
		l.log.Error("gave up on records; no on-failure destination is set, so they are dropped", attrs...)
		return true
	}
	bo := newBackoff(cfg.RetryInitial, cfg.RetryMax)
	failing := false
	for {
		err := r.deps.Destination.Send(ctx, f)
		if err == nil {
			r.stats.DestinationDeliveredEvents.Add(int64(len(recs)))
			if failing {
				l.log.Info("on-failure destination recovered")
			}
			l.log.Warn("gave up on records; failure record delivered to the on-failure destination", attrs...)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.stats.DestinationFailures.Add(1)
		if !failing {
			failing = true
			var perm *backoff.PermanentError
			if errors.As(err, &perm) {
				// The destination can never take this record: esmd keeps
				// blocking rather than drop it; the destination or the
				// configuration must change.
				l.log.Error("on-failure destination rejects this failure record permanently; the shard is blocked until the destination or the configuration changes", append(attrs, "err", err)...)
			} else {
				l.log.Error("on-failure destination failed; the shard will not advance past these records until it succeeds", append(attrs, "err", err)...)
			}
		}
		// The other lanes need not wait for this one meanwhile.
		l.w.tr.fail(l.idx)
		if !sleepDrain(ctx, l.w.r.drainC, bo.NextBackOff()) {
			return false
		}
	}
}
