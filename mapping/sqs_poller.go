package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"

	"github.com/esmd-dev/esmd/event"
)

// sqsPoller is one of an SQS mapping's pollers: it assembles a batch,
// invokes the function with it (one invocation per message group for FIFO),
// settles the outcome with the queue, and starts over. It is used by one
// goroutine.
type sqsPoller struct {
	r *SQSRunner
	// carry holds messages received beyond the last batch's 6 MB cut; they
	// open the next batch.
	carry []event.Record
	// received is when the receive that returned the oldest message of
	// the current batch began; carriedAt the same for carry.
	received, carriedAt time.Time
	bo                  *backoff.ExponentialBackOff

	// retired is set when the poller gave up its place in a shrinking
	// pool while a throttled batch waited to be invoked again (see
	// retireNow); the FIFO groups of one batch settle concurrently.
	mu      sync.Mutex
	retired bool
}

// retireNow gives up the poller's place in the pool when the pool is
// shrinking, and reports whether the poller is retiring, now or before.
func (p *sqsPoller) retireNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.retired {
		p.retired = p.r.retire()
	}
	return p.retired
}

func (p *sqsPoller) hasRetired() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retired
}

// run loops until the mapping drains or stops, the pool shrinks, or the
// queue is gone (its error). Receives run under rctx, the rest under ctx.
func (p *sqsPoller) run(ctx, rctx context.Context) error {
	r := p.r
	p.bo = newBackoff(r.cfg.RetryInitial, r.cfg.RetryMax)
	defer func() {
		// A retired poller took itself out of live when it retired.
		if !p.hasRetired() {
			r.live.Add(-1)
		}
		p.release(ctx)
	}()
	failing := false
	defer func() {
		if failing {
			r.receiveFailing.Add(-1)
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if r.isDraining() {
			p.flushCarry(ctx)
			return nil
		}
		if p.retireNow() {
			p.flushCarry(ctx)
			return nil
		}
		batch, err := p.assemble(rctx)
		if len(batch) > 0 {
			p.process(ctx, batch)
		}
		if p.hasRetired() {
			p.flushCarry(ctx)
			return nil
		}
		switch {
		case err == nil:
			if failing {
				r.log.Info("receiving recovered")
				failing = false
				r.receiveFailing.Add(-1)
			}
			p.bo.Reset()
		case rctx.Err() != nil:
			// Draining or stopping: the loop's top decides.
		case errors.Is(err, ErrSourceGone):
			return err
		default:
			if !failing {
				r.log.Warn("receive failed; retrying", "err", err)
				failing = true
				r.receiveFailing.Add(1)
			}
			sleepDrain(rctx, nil, p.bo.NextBackOff())
		}
	}
}

// flushCarry invokes the messages a leaving poller holds past its last
// batch's payload cut, without receiving more. Made visible again instead,
// they would reach the function for the first time with an
// ApproximateReceiveCount of 2, and a step closer to the queue's DLQ.
func (p *sqsPoller) flushCarry(ctx context.Context) {
	for len(p.carry) > 0 && ctx.Err() == nil {
		buf := p.carry
		p.carry = nil
		p.received = p.carriedAt
		p.process(ctx, p.cut(buf))
	}
}

// release makes the messages the poller still holds visible again, so that
// another poller (or esmd after a restart) takes them at once.
func (p *sqsPoller) release(ctx context.Context) {
	if len(p.carry) == 0 || ctx.Err() != nil {
		return
	}
	if err := p.r.deps.Queue.SetVisibility(ctx, p.carry, 0); err != nil {
		p.r.log.Warn("releasing received messages failed; they reappear after their visibility timeout", "messages", len(p.carry), "err", err)
	}
	p.carry = nil
}

// assemble receives until it holds BatchSize messages, the batch window
// (which opens with the batch's first message) has passed, or the event
// would exceed MaxPayload; without a window, one receive that returns
// messages makes the batch. It returns the batch, possibly empty after an
// empty long poll, and keeps what lies past the payload cut for the next
// one. On a receive error it returns what it holds with the error.
func (p *sqsPoller) assemble(ctx context.Context) ([]event.Record, error) {
	r := p.r
	cfg := &r.cfg
	buf := p.carry
	p.carry = nil
	p.received = p.carriedAt
	size := event.EventSize(buf)
	var deadline time.Time
	if len(buf) > 0 && cfg.BatchWindow > 0 {
		deadline = time.Now().Add(cfg.BatchWindow)
	}
	for len(buf) < cfg.BatchSize && size <= cfg.MaxPayload {
		wait := cfg.WaitTime
		if len(buf) > 0 {
			if cfg.BatchWindow <= 0 {
				break
			}
			rem := time.Until(deadline)
			if rem <= 0 {
				break
			}
			wait = min(wait, rem.Truncate(time.Second))
		}
		recs, err := r.deps.Queue.Receive(ctx, min(10, cfg.BatchSize-len(buf)), wait)
		// When the receive returned, not when it was asked: a long poll
		// that began before a failure of the group and returned the
		// failed message's redelivery after it must not count as stale.
		returned := time.Now()
		r.stats.Polls.Add(1)
		if err != nil {
			return p.cut(buf), err
		}
		if len(recs) == 0 {
			r.emptyPolls.Add(1)
			if len(buf) == 0 || wait <= 0 {
				break
			}
			continue
		}
		r.fullPolls.Add(1)
		r.stats.PolledEvents.Add(int64(len(recs)))
		if len(buf) == 0 {
			p.received = returned
			if cfg.BatchWindow > 0 {
				deadline = time.Now().Add(cfg.BatchWindow)
			}
		}
		for i := range recs {
			size += event.AddedSize(len(buf)+i, recs[i].Size())
		}
		buf = append(buf, recs...)
	}
	return p.cut(buf), nil
}

// cut returns the longest prefix of buf that fits MaxPayload (at least one
// message: no SQS message reaches 6 MB) and carries the rest over.
func (p *sqsPoller) cut(buf []event.Record) []event.Record {
	max := p.r.cfg.MaxPayload
	size := event.Overhead
	for i := range buf {
		size += event.AddedSize(i, buf[i].Size())
		if size > max && i > 0 {
			p.carry = append([]event.Record(nil), buf[i:]...)
			p.carriedAt = p.received
			return buf[:i]
		}
	}
	return buf
}

// process invokes the function with batch and settles the outcome. A FIFO
// batch is split by message group, in order; the groups run concurrently,
// each after any other batch of the same group. When a group fails, the
// messages of it that were carried over are returned too, so that nothing
// of the group passes the failure.
func (p *sqsPoller) process(ctx context.Context, batch []event.Record) {
	if !p.r.cfg.FIFO {
		p.settle(ctx, batch, "")
		return
	}
	var order []string
	groups := map[string][]event.Record{}
	for _, rec := range batch {
		if _, ok := groups[rec.Key]; !ok {
			order = append(order, rec.Key)
		}
		groups[rec.Key] = append(groups[rec.Key], rec)
	}
	failed := map[string]bool{}
	if len(order) == 1 {
		failed[order[0]] = p.settle(ctx, batch, order[0])
	} else {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, g := range order {
			wg.Go(func() {
				f := p.settle(ctx, groups[g], g)
				mu.Lock()
				failed[g] = f
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	if len(p.carry) == 0 {
		return
	}
	var keep, back []event.Record
	for _, rec := range p.carry {
		if failed[rec.Key] {
			back = append(back, rec)
		} else {
			keep = append(keep, rec)
		}
	}
	p.carry = keep
	if len(back) > 0 && ctx.Err() == nil {
		p.giveBack(ctx, back)
	}
}

// settle invokes the function with recs (one message group's messages, for
// FIFO), then deletes the messages that succeeded and returns the rest to
// the queue. It reports that some message was returned.
func (p *sqsPoller) settle(ctx context.Context, recs []event.Record, group string) (failed bool) {
	r := p.r
	cfg := &r.cfg
	// The heartbeat also covers the wait for the group and for a slot.
	stop := p.heartbeat(ctx, recs)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	// head is the first message this batch returns after a failure; only
	// that marks the group, not giving back messages that must wait.
	var head string
	if cfg.FIFO {
		if !r.groups.lock(ctx, group) {
			return true
		}
		defer func() { r.groups.unlock(group, head) }()
		window := r.visibility
		if cfg.VisibilityOnError != nil {
			window = *cfg.VisibilityOnError
		}
		if r.groups.blocked(group, recs, p.received, window) {
			r.log.Warn("returning messages of a group whose earlier message failed and has not come back yet", "messages", len(recs), "group", group)
			p.giveBack(ctx, recs)
			return true
		}

	}
	// One payload for the first invocation and any throttle retries.
	payload := event.AppendEvent(make([]byte, 0, event.EventSize(recs)), recs)
	resp, err := p.invoke(ctx, recs, payload, 1)
	resp, err = p.retryThrottled(ctx, recs, payload, resp, err)
	stop()
	stopped = true
	if ctx.Err() != nil {
		return true // hard stop: everything reappears after its timeout
	}

	ok, back := recs, []event.Record(nil)
	if err == nil && cfg.ReportBatchItemFailures {
		var perr error
		ok, back, perr = splitPartial(resp.Body, recs)
		if perr != nil {
			err = &FunctionError{Kind: "Unhandled", Type: "PartialBatchResponseError", Message: perr.Error(),
				StatusCode: resp.StatusCode, ExecutedVersion: resp.ExecutedVersion}
		}
	}
	var fe *FunctionError
	var te *ThrottleError
	switch {
	case err == nil:
		if len(back) > 0 {
			r.log.Warn("function reported failed messages", "failed", len(back), "succeeded", len(ok), "group", group)
		}
	case errors.As(err, &fe):
		r.stats.FunctionErrors.Add(1)
		if fe.Timeout {
			r.stats.Timeouts.Add(1)
		}
		if !cfg.ReportBatchItemFailures {
			// With partial responses on, Lambda keeps polling at the same
			// rate when invocations fail.
			r.failures.Add(1)
		}
		r.log.Warn("function error; the batch returns to the queue", "err", err, "messages", len(recs), "group", group)
	case errors.As(err, &te):
		r.stats.Throttles.Add(1)
		r.failures.Add(1)
		r.log.Warn("function throttled until the visibility timeout; the batch returns to the queue", "err", err, "messages", len(recs), "group", group)
	default:
		r.stats.InvokeErrors.Add(1)
		r.failures.Add(1)
		r.log.Warn("invoke failed; the batch returns to the queue", "err", err, "messages", len(recs), "group", group)
	}
	if err != nil {
		ok, back = nil, recs
	}
	if len(back) > 0 {
		head = back[0].ID
		r.stats.FailedInvokeEvents.Add(int64(len(recs)))
		p.giveBack(ctx, back)
	}
	if len(ok) > 0 {
		n, derr := r.deps.Queue.Delete(ctx, ok)
		r.stats.DeletedEvents.Add(int64(n))
		if derr != nil {
			r.stats.DeleteFailures.Add(int64(len(ok) - n))
			r.log.Warn("deleting processed messages failed; they will be delivered again", "failed", len(ok)-n, "err", derr)
		}
	}
	return len(back) > 0
}

// retryThrottled invokes recs again while the function throttles them, as
// Lambda does: until the messages' visibility timeout would run out before
// the next invocation ends. It waits the throttle's RetryAfter, or a
// backoff, between invocations, holding no invocation slot meanwhile. It
// returns the last invocation's outcome; a batch still throttled then
// returns to the queue. So does one whose poller leaves the pool while
// throttles shrink it: Lambda backs off from a throttling function by
// running fewer batches at once. Each throttled invocation counts in the
// stats.
func (p *sqsPoller) retryThrottled(ctx context.Context, recs []event.Record, payload []byte, resp *Response, err error) (*Response, error) {
	r := p.r
	cfg := &r.cfg
	visibleAt := p.received.Add(r.visibility)
	var bo *backoff.ExponentialBackOff
	for attempt := 2; ; attempt++ {
		var te *ThrottleError
		if !errors.As(err, &te) || ctx.Err() != nil || r.visibilityGuessed {
			return resp, err
		}
		if bo == nil {
			bo = newBackoff(cfg.RetryInitial, cfg.RetryMax)
		}
		wait := bo.NextBackOff()
		if te.RetryAfter > 0 {
			wait = te.RetryAfter
		}
		// A drain lets invocations finish but starts no retries, as
		// for streams: the batch returns to the queue.
		if !time.Now().Add(wait+cfg.InvokeTimeout).Before(visibleAt) || r.isDraining() {
			return resp, err
		}
		if p.retireNow() {
			return resp, err
		}
		if attempt == 2 {
			r.log.Warn("function throttled; retrying the batch while its messages stay invisible", "err", err, "messages", len(recs))
		}
		if !sleepDrain(ctx, r.drainC, wait) {
			return resp, err
		}
		// Counted here when retried; settle counts the last one.
		r.stats.Throttles.Add(1)
		r.failures.Add(1)
		resp, err = p.invoke(ctx, recs, payload, attempt)
	}
}

// splitPartial reads a partial batch response: the messages it names
// return, the others are done and deleted, for FIFO queues too. Lambda
// leaves it to a FIFO function to stop at its first failure and name every
// message it did not process; a message it does not name counts as
// processed, so returning it would deliver it again. A malformed response
// is an error (the whole batch fails), as with streams.
func splitPartial(body []byte, recs []event.Record) (ok, back []event.Record, err error) {
	k, err := firstFailed(body, recs)
	if err != nil {
		return nil, recs, err
	}
	if k == len(recs) {
		return recs, nil, nil
	}
	// firstFailed validated every identifier; collect them.
	var resp struct {
		BatchItemFailures []batchItemFailure `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, recs, err
	}
	ids := make(map[string]bool, len(resp.BatchItemFailures))
	for _, f := range resp.BatchItemFailures {
		ids[*f.ItemIdentifier] = true
	}
	ok = make([]event.Record, 0, len(recs)-len(ids))
	for _, rec := range recs {
		if ids[rec.ID] {
			back = append(back, rec)
		} else {
			ok = append(ok, rec)
		}
	}
	return ok, back, nil
}

// giveBack leaves recs to reappear: after visibilityOnError when it is set,
// else after the queue's visibility timeout.
func (p *sqsPoller) giveBack(ctx context.Context, recs []event.Record) {
	r := p.r
	r.stats.ReturnedEvents.Add(int64(len(recs)))
	v := r.cfg.VisibilityOnError
	if v == nil {
		return
	}
	if err := r.deps.Queue.SetVisibility(ctx, recs, *v); err != nil {
		r.log.Warn("setting visibilityOnError failed; the messages reappear after the queue's visibility timeout", "messages", len(recs), "err", err)
	}
}

// heartbeat keeps recs invisible while their batch is invoked, when the
// heartbeat is on: every interval it sets their visibility to the queue's
// timeout again. The returned func stops it and waits for it.
func (p *sqsPoller) heartbeat(ctx context.Context, recs []event.Record) func() {
	r := p.r
	if !r.cfg.Heartbeat || r.visibility <= 0 {
		return func() {}
	}
	every := r.cfg.HeartbeatInterval
	if every <= 0 {
		every = r.visibility / 3
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := r.deps.Queue.SetVisibility(ctx, recs, r.visibility); err != nil && ctx.Err() == nil {
					r.log.Warn("visibility heartbeat failed", "messages", len(recs), "err", err)
				}
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// invoke sends recs, encoded as payload, to the function once, in one of
// the mapping's invocation slots. It returns ctx's error when ctx ends
// while it waits for a slot. The payload is never written to, so a retry
// may send it again while an abandoned invocation still reads it.
func (p *sqsPoller) invoke(ctx context.Context, recs []event.Record, payload []byte, attempt int) (*Response, error) {
	r := p.r
	cfg := &r.cfg
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.slots }()
	req := &Request{
		Payload:   payload,
		RequestID: uuid.NewString(),
		Mapping:   cfg.Name,
		Attempt:   attempt,
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
	r.stats.Invocations.Add(1)
	r.stats.InvokedEvents.Add(int64(len(recs)))
	if !recs[0].Arrival.IsZero() {
		r.stats.IteratorAgeMillis.Store(time.Since(recs[0].Arrival).Milliseconds())
	}
	r.stats.LanesBusy.Add(1)
	resp, err := r.deps.Invoker.Invoke(ictx, req)
	r.stats.LanesBusy.Add(-1)
	r.noteResult(err)
	r.log.Debug("invoked", "request_id", req.RequestID, "messages", len(recs), "bytes", len(req.Payload), "err", err)
	return resp, err
}
