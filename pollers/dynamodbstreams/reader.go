package dynamodbstreams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v4"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// Backoff bounds for retried calls (throttling, server and network errors).
const (
	retryInitial = 250 * time.Millisecond
	retryMax     = 10 * time.Second
)

// reader polls one shard. It is used by one goroutine at a time.
type reader struct {
	src   *Source
	shard string
	log   *slog.Logger

	iter *string
	// resume is where a new iterator starts: the reader's start until a
	// record was read, then just after the last record returned.
	resume event.Start
	// since, when set, skips the records created before it, until the
	// first one that is not (an AT_TIMESTAMP start; see Open).
	since time.Time
	// next is the earliest time of the next poll.
	next time.Time
	// ended is set when the shard has no more records: the next Read returns
	// mapping.ErrShardClosed.
	ended  bool
	closed bool
	// trimmed is set after a TrimmedDataAccessException, until a poll
	// succeeds; a second one in a row falls back to TRIM_HORIZON.
	trimmed bool

	retry   *backoff.ExponentialBackOff
	failing int // consecutive failed attempts of the current outage
	// outage mirrors failing > 0 for other goroutines (status, readiness).
	outage atomic.Bool

	scratch []byte // typed JSON of one record's attribute maps
}

func newRetry() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = retryInitial
	b.MaxInterval = retryMax
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// Read polls the shard once (after the poll interval when the previous poll
// returned nothing) and returns its records, which may be none. It retries
// throttling, server errors and network failures with backoff, and renews
// expired or trimmed iterators, all within the one call, until ctx ends.
// After the last records of a closed shard it returns mapping.ErrShardClosed.
// MillisBehind is always -1: DynamoDB Streams does not report it.
func (r *reader) Read(ctx context.Context) (mapping.ReadResult, error) {
	res := mapping.ReadResult{MillisBehind: -1}
	if r.closed {
		return res, fmt.Errorf("dynamodb streams %s: shard %s: read after close", r.src.arn, r.shard)
	}
	if r.ended {
		return res, mapping.ErrShardClosed
	}
	if err := sleep(ctx, time.Until(r.next)); err != nil {
		return res, err
	}
	for {
		if r.iter == nil {
			if err := r.renew(ctx); err != nil {
				return res, err
			}
			if r.ended {
				return res, mapping.ErrShardClosed
			}
		}
		out, err := r.src.api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{
			ShardIterator: r.iter,
			Limit:         aws.Int32(r.src.limit),
		})
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			switch {
			case isCode(err, "ExpiredIteratorException"):
				r.log.Debug("dynamodb streams: shard iterator expired; renewing", "from", r.resume.Type)
				r.iter = nil
				r.src.forgetLatest(r.shard) // it may be the pinned one
				continue
			case isCode(err, "TrimmedDataAccessException"):
				if r.trimmed && r.resume.Type != event.TrimHorizon {
					r.lost("a renewed iterator still points at trimmed records")
				} else if r.trimmed {
					if err := r.backoff(ctx, "get records", err); err != nil {
						return res, err
					}
				}
				r.trimmed = true
				r.iter = nil
				continue
			case isCode(err, "ResourceNotFoundException"):
				if err := r.shardGone(ctx, err); err != nil {
					return res, err
				}
				return res, mapping.ErrShardClosed
			case retryable(err):
				if err := r.backoff(ctx, "get records", err); err != nil {
					return res, err
				}
				continue
			}
			return res, fmt.Errorf("dynamodb streams %s: shard %s: get records: %w", r.src.arn, r.shard, err)
		}
		r.recovered()
		r.trimmed = false
		res.Records = r.encode(out.Records)
		// Sequence numbers rise within a shard: a record at or below the
		// last one returned is a server repeating itself (an iterator that
		// points at, not after, the last record), and would be delivered
		// twice and out of order.
		if r.resume.Type == event.AfterSequence && len(res.Records) > 0 {
			k := 0
			for k < len(res.Records) && event.CompareSeq(res.Records[k].Seq, r.resume.Seq) <= 0 {
				k++
			}
			if k > 0 {
				r.log.Debug("dynamodb streams: dropped records already returned", "records", k)
				res.Records = res.Records[k:]
			}
		}
		if n := len(res.Records); n > 0 {
			r.resume = event.Start{Type: event.AfterSequence, Seq: res.Records[n-1].Seq}
			r.next = time.Time{}
			res.Records = r.skipEarlier(res.Records)
		} else {
			r.next = time.Now().Add(r.src.pollInterval)
		}
		r.iter = out.NextShardIterator
		if r.iter == nil {
			r.end()
			if len(res.Records) == 0 {
				return res, mapping.ErrShardClosed
			}
		}
		return res, nil
	}
}

// skipEarlier drops the leading records created before r.since, and
// stops skipping at the first record that was not.
func (r *reader) skipEarlier(recs []event.Record) []event.Record {
	if r.since.IsZero() {
		return recs
	}
	k := 0
	// A record without a creation time is not taken for an earlier one:
	// skipping it, and every one after it, would lose them.
	for k < len(recs) && !recs[k].Arrival.IsZero() && recs[k].Arrival.Before(r.since) {
		k++
	}
	if k < len(recs) {
		r.since = time.Time{}
	}
	if k > 0 {
		r.log.Debug("dynamodb streams: skipped records created before the start time", "records", k)
	}
	return recs[k:]
}

// Close releases the reader. Read fails after Close.
func (r *reader) Close() error {
	r.closed = true
	r.iter = nil
	return nil
}

// end marks the shard read to its end.
func (r *reader) end() {
	r.ended = true
	r.src.markEnded(r.shard)
}

// renew gets a new iterator at r.resume, retrying what is retryable. A start
// past retention falls back to TRIM_HORIZON; a shard that no longer exists
// ends the reader.
func (r *reader) renew(ctx context.Context) error {
	if r.resume.Type == event.Latest {
		if it, ok := r.src.latestIterator(r.shard); ok {
			r.iter = aws.String(it)
			return nil
		}
	}
	for {
		issued := time.Now()
		in := &dynamodbstreams.GetShardIteratorInput{
			StreamArn:         aws.String(r.src.arn),
			ShardId:           aws.String(r.shard),
			ShardIteratorType: types.ShardIteratorType(r.resume.Type),
		}
		if r.resume.Type == event.AfterSequence || r.resume.Type == event.AtSequence {
			in.SequenceNumber = aws.String(r.resume.Seq)
		}
		out, err := r.src.api.GetShardIterator(ctx, in)
		if err == nil {
			r.recovered()
			if out.ShardIterator == nil {
				// A closed shard with nothing after the position.
				r.end()
				return nil
			}
			r.iter = out.ShardIterator
			if r.resume.Type == event.Latest {
				r.src.pinLatest(r.shard, *out.ShardIterator, issued)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case isCode(err, "TrimmedDataAccessException") && r.resume.Type != event.TrimHorizon:
			r.lost("the starting position is past the stream's retention")
			continue
		case isCode(err, "ResourceNotFoundException"):
			if err := r.shardGone(ctx, err); err != nil {
				return err
			}
			return nil
		case retryable(err):
			if err := r.backoff(ctx, "get shard iterator", err); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("dynamodb streams %s: shard %s: get shard iterator %s: %w", r.src.arn, r.shard, r.resume.Type, err)
	}
}

// lost moves the reader to the oldest record of the shard and warns that the
// records between the last one read and it were lost to retention.
func (r *reader) lost(why string) {
	r.log.Warn("dynamodb streams: records were lost to the stream's 24-hour retention; reading on from the oldest record still held",
		"reason", why, "after", r.resume.Seq)
	r.resume = event.Start{Type: event.TrimHorizon}
}

// shardGone handles ResourceNotFoundException on a shard: when the stream
// itself is gone it returns an error wrapping mapping.ErrSourceGone;
// otherwise the shard was trimmed away, and the reader ends.
func (r *reader) shardGone(ctx context.Context, cause error) error {
	_, err := r.src.api.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{
		StreamArn: aws.String(r.src.arn),
		Limit:     aws.Int32(1),
	})
	if err != nil {
		if isCode(err, "ResourceNotFoundException") {
			return r.src.wrapGone("describe stream", err)
		}
		return fmt.Errorf("dynamodb streams %s: shard %s: %w (and describe stream: %w)", r.src.arn, r.shard, cause, err)
	}
	r.log.Warn("dynamodb streams: shard no longer exists (past retention); treating it as read to its end")
	r.end()
	r.iter = nil
	return nil
}

// backoff waits before the next attempt of a failing call. It logs the first
// failure of an outage only.
func (r *reader) backoff(ctx context.Context, op string, err error) error {
	if r.failing == 0 {
		r.outage.Store(true)
		r.retry.Reset()
		r.log.Warn("dynamodb streams: "+op+" failing; retrying with backoff", "err", err)
	}
	r.failing++
	return sleep(ctx, r.retry.NextBackOff())
}

// recovered ends an outage, logging how long it lasted in attempts.
func (r *reader) recovered() {
	if r.failing > 0 {
		r.log.Info("dynamodb streams: calls succeed again", "failed_attempts", r.failing)
		r.failing = 0
		r.outage.Store(false)
	}
}

// encode turns the SDK records into event records.
func (r *reader) encode(recs []types.Record) []event.Record {
	if len(recs) == 0 {
		return nil
	}
	out := make([]event.Record, 0, len(recs))
	hash := r.src.partitionKey()
	for i := range recs {
		rec := &recs[i]
		d := rec.Dynamodb
		if d == nil {
			d = &types.StreamRecord{}
		}
		b := r.scratch[:0]
		b = appendAttributeMap(b, d.Keys)
		k := len(b)
		b = appendAttributeMap(b, d.NewImage)
		n := len(b)
		b = appendAttributeMap(b, d.OldImage)
		o := len(b)
		// Lambda keeps order per partition key: the lane is chosen by the
		// partition key alone, so that all the items of one partition key
		// (whatever their sort keys) keep their order. Without the key
		// schema, by the item's whole key.
		if v, ok := d.Keys[hash]; ok && hash != "" {
			b = append(appendNamed(append(b, '{'), hash, v), '}')
		}
		r.scratch = b
		dr := event.DynamoDBRecord{
			EventID:                     aws.ToString(rec.EventID),
			EventName:                   string(rec.EventName),
			EventVersion:                aws.ToString(rec.EventVersion),
			AwsRegion:                   aws.ToString(rec.AwsRegion),
			ApproximateCreationDateTime: aws.ToTime(d.ApproximateCreationDateTime),
			Keys:                        nonEmpty(b[:k]),
			NewImage:                    nonEmpty(b[k:n]),
			OldImage:                    nonEmpty(b[n:o]),
			LaneKey:                     nonEmpty(b[o:]),
			SequenceNumber:              aws.ToString(d.SequenceNumber),
			SizeBytes:                   aws.ToInt64(d.SizeBytes),
			StreamViewType:              string(d.StreamViewType),
		}
		if u := rec.UserIdentity; u != nil {
			dr.UserIdentity = &event.UserIdentity{Type: aws.ToString(u.Type), PrincipalID: aws.ToString(u.PrincipalId)}
		}
		out = append(out, r.src.enc.Encode(dr))
	}
	return out
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// retryable reports whether a failed call may succeed when tried again:
// throttling, server-side errors and failures below the API (network, the
// SDK's own retry budget).
func retryable(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return true
	}
	switch ae.ErrorCode() {
	case "LimitExceededException", "ThrottlingException", "ProvisionedThroughputExceededException",
		"RequestLimitExceeded", "InternalServerError", "InternalFailure", "ServiceUnavailable":
		return true
	}
	var hs interface{ HTTPStatusCode() int }
	return errors.As(err, &hs) && hs.HTTPStatusCode() >= 500
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Failing reports that the reader's calls are failing and being retried. It
// is safe to call from any goroutine.
func (r *reader) Failing() bool { return r.outage.Load() }
