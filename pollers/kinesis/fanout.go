package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// fanOutReader reads one shard through enhanced fan-out: each event of a
// SubscribeToShard subscription is one Read result. It is used by one
// goroutine at a time.
type fanOutReader struct {
	src   *Source
	shard event.Shard
	start event.Start
	// again, when set, replaces start once a subscription was tried: a
	// LATEST start pinned to the time the shard was first opened, so that
	// a resubscription before the first event skips nothing.
	again event.Start
	log   *slog.Logger
	rt    *retrier

	stream eventStream        // the open subscription; nil when none
	cancel context.CancelFunc // ends the open subscription
	cont   string             // last ContinuationSequenceNumber
	last   string             // sequence number of the last record returned
	ended  bool
}

var _ mapping.ShardReader = (*fanOutReader)(nil)

func (s *Source) newFanOutReader(sh event.Shard, start event.Start) *fanOutReader {
	log := s.log.With("shard", sh.ID, "consumer", s.cfg.ConsumerARN)
	// Kinesis allows one SubscribeToShard per second per consumer and
	// shard, and refuses a new subscription for 5 s after the last one
	// began (ResourceInUseException): retry no faster than once a second.
	cfg := s.cfg
	cfg.minBackoff = max(cfg.minBackoff, time.Second)
	cfg.maxBackoff = max(cfg.maxBackoff, cfg.minBackoff)
	return &fanOutReader{
		src:   s,
		shard: sh,
		start: start,
		log:   log,
		rt:    newRetrier(cfg, log, "subscribe to shard"),
	}
}

// position is where the next subscription starts: after the last
// continuation sequence number, or at the reader's start.
func (r *fanOutReader) position() *types.StartingPosition {
	if r.cont != "" {
		return &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(r.cont)}
	}
	start := r.start
	if r.again.Type != "" {
		r.start = r.again // for the next subscription
	}
	p := &types.StartingPosition{Type: types.ShardIteratorType(start.Type)}
	switch start.Type {
	case event.AtTimestamp:
		p.Timestamp = aws.Time(start.Timestamp)
	case event.AfterSequence, event.AtSequence:
		p.SequenceNumber = aws.String(start.Seq)
	}
	return p
}

// Read blocks until the subscription pushes its next event and returns that
// event's records, which may be none. It subscribes when there is no
// subscription, and resubscribes from the last continuation sequence number
// when one ends (they last five minutes) or fails, with backoff after
// failures, until ctx ends. The subscription outlives ctx: a cancelled Read
// leaves it open for the next one. After the shard's last event Read returns
// mapping.ErrShardClosed.
func (r *fanOutReader) Read(ctx context.Context) (mapping.ReadResult, error) {
	none := mapping.ReadResult{MillisBehind: -1}
	for {
		if r.ended {
			return none, mapping.ErrShardClosed
		}
		if r.stream == nil {
			if err := r.subscribe(ctx); err != nil {
				return none, err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return none, ctx.Err()
		case ev, ok := <-r.stream.Events():
			if !ok {
				err := r.stream.Err()
				r.drop()
				if err == nil {
					r.log.Debug("subscription ended; resubscribing", "after", r.cont)
					continue
				}
				if err := r.failed(ctx, err); err != nil {
					return none, err
				}
				continue
			}
			e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				continue // an event type this SDK does not know
			}
			r.rt.ok()
			return r.result(&e.Value)
		}
	}
}

// subscribe opens a subscription at r.position(). Retryable failures wait
// for the backoff and return nil, so Read tries again.
func (r *fanOutReader) subscribe(ctx context.Context) error {
	// The subscription lives past this call's ctx: it is ended by Close, by
	// the server, or by a failure.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stream, err := r.src.subscribe(sctx, &kinesis.SubscribeToShardInput{
		ConsumerARN:      aws.String(r.src.cfg.ConsumerARN),
		ShardId:          aws.String(r.shard.ID),
		StartingPosition: r.position(),
	})
	if err != nil {
		cancel()
		return r.failed(ctx, err)
	}
	r.stream, r.cancel = stream, cancel
	return nil
}

// failed decides what a failed subscription means: nil after waiting the
// backoff when it is worth another try, an error when not.
func (r *fanOutReader) failed(ctx context.Context, err error) error {
	switch classify(err) {
	case errGone:
		return fmt.Errorf("kinesis %s/%s: subscribe to shard: %w: %w", r.src.stream, r.shard.ID, mapping.ErrSourceGone, err)
	case errFatal:
		return fmt.Errorf("kinesis %s/%s: subscribe to shard: %w", r.src.stream, r.shard.ID, err)
	case errCanceled:
		if ctx.Err() != nil {
			return fmt.Errorf("kinesis %s/%s: subscribe to shard: %w", r.src.stream, r.shard.ID, ctx.Err())
		}
	}
	if werr := r.rt.wait(ctx, err); werr != nil {
		return fmt.Errorf("kinesis %s/%s: subscribe to shard: %w", r.src.stream, r.shard.ID, werr)
	}
	return nil
}

func (r *fanOutReader) result(ev *types.SubscribeToShardEvent) (mapping.ReadResult, error) {
	res := mapping.ReadResult{
		// Drop what an earlier subscription already returned.
		Records:      encode(r.src.cfg.Encoder, r.shard.ID, ev.Records, r.last),
		MillisBehind: -1,
	}
	if ev.MillisBehindLatest != nil {
		res.MillisBehind = *ev.MillisBehindLatest
	}
	if n := len(res.Records); n > 0 {
		r.last = res.Records[n-1].Seq
	}
	if c := aws.ToString(ev.ContinuationSequenceNumber); c != "" {
		r.cont = c
		return res, nil
	}
	// No continuation: the shard is closed and this was its last event.
	r.ended = true
	r.drop()
	r.log.Info("shard read to its end", "children", childIDs(ev.ChildShards))
	if len(res.Records) == 0 {
		return res, mapping.ErrShardClosed
	}
	return res, nil
}

// drop closes the open subscription.
func (r *fanOutReader) drop() {
	if r.stream == nil {
		return
	}
	r.cancel()
	if err := r.stream.Close(); err != nil && !errors.Is(err, context.Canceled) {
		r.log.Debug("closing subscription", "err", err)
	}
	r.stream, r.cancel = nil, nil
}

// Close ends the open subscription, if any.
func (r *fanOutReader) Close() error {
	r.drop()
	return nil
}

// Failing reports that the reader's calls are failing and being retried. It
// is safe to call from any goroutine.
func (r *fanOutReader) Failing() bool { return r.rt.failing.Load() }
