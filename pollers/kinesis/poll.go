package kinesis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// pollReader reads one shard with GetShardIterator and GetRecords. It is
// used by one goroutine at a time.
type pollReader struct {
	src   *Source
	shard event.Shard
	start event.Start
	log   *slog.Logger
	rt    *retrier
	proto *recordsProtocol // decodes GetRecords responses

	limit    int32         // the GetRecords Limit, adapted
	full     bool          // the last read returned limit records
	took     time.Duration // how long the last GetRecords took
	returned time.Time     // when the last Read returned records
	lastRate float64       // records a second of a full read before the last growth
	settled  bool          // growing stopped paying

	iter    *string   // nil when a new iterator is needed
	lastSeq string    // sequence number of the last record returned
	eager   bool      // poll at once: the last poll returned records or lagged
	ended   bool      // the shard's end was reached
	renewed bool      // the iterator was just renewed after it expired
	polled  time.Time // start of the last GetRecords call
}

var _ mapping.ShardReader = (*pollReader)(nil)

func (s *Source) newPollReader(sh event.Shard, start event.Start) *pollReader {
	log := s.log.With("shard", sh.ID)
	return &pollReader{
		src:   s,
		shard: sh,
		start: start,
		log:   log,
		rt:    newRetrier(s.cfg, log, "get records"),
		proto: &recordsProtocol{enc: s.cfg.Encoder, shard: sh.ID},
		eager: true,
		limit: min(s.cfg.Limit, max(s.cfg.MinLimit, startLimit)),
	}
}

// Bounds of the adapted GetRecords Limit.
const (
	// startLimit is the first Limit of an adapting reader: a second of a
	// few thousand records a second in five reads.
	startLimit = 1000
	// slowConsumer is how long the consumer may take to come back for
	// more before the reader reads less at a time; fastConsumer is how
	// soon it comes back when the reader should read more.
	slowConsumer = 200 * time.Millisecond
	fastConsumer = 50 * time.Millisecond
	// readTurn is one of Kinesis's five reads a second of a shard.
	readTurn = 200 * time.Millisecond
)

// adapt sizes the next GetRecords, given how long the consumer took to
// come back since the last Read returned records. A read is held in memory
// whole until the lanes have taken all of it, so reads are kept as small as
// the pace allows:
//   - a consumer that kept the reader waiting gets smaller reads: it takes
//     records more slowly than they can be read;
//   - a full read, with more records waiting in the shard, to a consumer
//     that came back at once, gets one half as large again, for as long as
//     growing pays: while a read of the new size brings records at least a
//     fifth faster than one of the old size did. Records a second are the
//     read's records over its call's time, or over Kinesis's 200 ms turn
//     when the call was quicker (five reads a second per shard). Below a
//     turn, larger reads are always faster; above it they are when the
//     call's time is mostly a fixed cost (a distant server), and not when
//     it is mostly per record (as on kinesalite).
//
// Growing by half, not double, keeps the largest read, which sets the
// high-water mark of memory, close to what the pace needs. Once growing
// stopped paying, the size holds until the consumer falls behind. The Limit
// stays within MinLimit and Limit.
func (r *pollReader) adapt(away time.Duration) {
	cfg := &r.src.cfg
	switch {
	case away > slowConsumer:
		r.limit = max(cfg.MinLimit, r.limit*3/4)
		r.settled, r.lastRate = false, 0
	case away < fastConsumer && r.full && !r.settled:
		rate := float64(r.limit) / max(r.took, readTurn).Seconds()
		if r.lastRate > 0 && rate < 1.2*r.lastRate {
			r.settled = true
			return
		}
		r.lastRate = rate
		r.limit = min(cfg.Limit, r.limit+max(1, r.limit/2))
	}
}

// position is where a new iterator starts: after the last record returned,
// or at the reader's start when none was. (A LATEST reader's start becomes
// the time it was first opened, once it has its first iterator: renewing
// at a new LATEST would skip what was put in between.)
func (r *pollReader) position() event.Start {
	if r.lastSeq != "" {
		return event.Start{Type: event.AfterSequence, Seq: r.lastSeq}
	}
	return r.start
}

// acquire gets a shard iterator at r.position(), retrying throttles, server
// and network errors until ctx ends.
func (r *pollReader) acquire(ctx context.Context) error {
	pos := r.position()
	in := &kinesis.GetShardIteratorInput{
		StreamName:        aws.String(r.src.stream),
		ShardId:           aws.String(r.shard.ID),
		ShardIteratorType: types.ShardIteratorType(pos.Type),
	}
	switch pos.Type {
	case event.AtTimestamp:
		in.Timestamp = aws.Time(pos.Timestamp)
	case event.AfterSequence, event.AtSequence:
		in.StartingSequenceNumber = aws.String(pos.Seq)
	}
	for {
		out, err := r.src.api.GetShardIterator(ctx, in, sdkRetries)
		if err == nil {
			r.iter = out.ShardIterator
			if r.iter == nil {
				// No iterator for a shard means there is nothing left in it.
				r.ended = true
			}
			return nil
		}
		switch classify(err) {
		case errGone:
			return fmt.Errorf("kinesis %s/%s: get shard iterator: %w: %w", r.src.stream, r.shard.ID, mapping.ErrSourceGone, err)
		case errThrottle, errServer, errNetwork, errExpired:
			if werr := r.rt.wait(ctx, err); werr != nil {
				return fmt.Errorf("kinesis %s/%s: get shard iterator: %w", r.src.stream, r.shard.ID, werr)
			}
		default:
			return fmt.Errorf("kinesis %s/%s: get shard iterator: %w", r.src.stream, r.shard.ID, err)
		}
	}
}

// Read makes one GetRecords call and returns its records, encoded. An idle
// shard waits the poll interval first; after records, or while the shard
// lags behind its tip, Read polls at once, but never sooner than MinPollGap
// after the previous call began. Throttles, server and network
// errors are retried with backoff inside Read, and an expired iterator is
// renewed from the last record returned, until ctx ends. At the end of a
// closed shard Read returns its last records, then mapping.ErrShardClosed.
func (r *pollReader) Read(ctx context.Context) (mapping.ReadResult, error) {
	if r.ended {
		return mapping.ReadResult{MillisBehind: -1}, mapping.ErrShardClosed
	}
	if !r.returned.IsZero() {
		r.adapt(time.Since(r.returned))
		r.returned = time.Time{}
	}
	// A closed shard is read at full speed: it ends soon.
	if !r.eager && !r.shard.Closed {
		if err := sleep(ctx, r.src.cfg.PollInterval); err != nil {
			return mapping.ReadResult{MillisBehind: -1}, err
		}
	}
	for {
		if r.iter == nil {
			if err := r.acquire(ctx); err != nil {
				return mapping.ReadResult{MillisBehind: -1}, err
			}
			if r.ended {
				return mapping.ReadResult{MillisBehind: -1}, mapping.ErrShardClosed
			}
		}
		if err := r.pace(ctx); err != nil {
			return mapping.ReadResult{MillisBehind: -1}, err
		}
		out, err := r.src.api.GetRecords(ctx, &kinesis.GetRecordsInput{
			ShardIterator: r.iter,
			Limit:         aws.Int32(r.limit),
		}, sdkRetries, r.proto.use)
		r.took = time.Since(r.polled)
		if err != nil {
			if err := r.recover(ctx, err); err != nil {
				return mapping.ReadResult{MillisBehind: -1}, err
			}
			continue
		}
		r.rt.ok()
		r.renewed = false
		return r.result(out)
	}
}

// pace waits until MinPollGap has passed since the last GetRecords began.
func (r *pollReader) pace(ctx context.Context) error {
	if gap := r.src.cfg.MinPollGap; gap > 0 && !r.polled.IsZero() {
		if err := sleep(ctx, gap-time.Since(r.polled)); err != nil {
			return err
		}
	}
	r.polled = time.Now()
	return nil
}

// recover handles a failed GetRecords: it returns nil when Read should try
// again, having waited or renewed the iterator as the error asks.
func (r *pollReader) recover(ctx context.Context, err error) error {
	switch classify(err) {
	case errExpired:
		r.iter = nil
		if !r.renewed {
			// Renew at once the first time; a fresh iterator that expires
			// again is paced by the backoff.
			r.renewed = true
			r.log.Debug("shard iterator expired; renewing", "after", r.lastSeq)
			return nil
		}
	case errServer:
		// kinesis-mock answers an unusable iterator with a 500: a new
		// iterator from the same position loses nothing.
		r.iter = nil
	case errThrottle, errNetwork:
	case errGone:
		return fmt.Errorf("kinesis %s/%s: get records: %w: %w", r.src.stream, r.shard.ID, mapping.ErrSourceGone, err)
	default:
		return fmt.Errorf("kinesis %s/%s: get records: %w", r.src.stream, r.shard.ID, err)
	}
	if werr := r.rt.wait(ctx, err); werr != nil {
		return fmt.Errorf("kinesis %s/%s: get records: %w", r.src.stream, r.shard.ID, werr)
	}
	return nil
}

func (r *pollReader) result(out *kinesis.GetRecordsOutput) (mapping.ReadResult, error) {
	recs, ok := r.proto.take()
	if !ok {
		recs = encode(r.src.cfg.Encoder, r.shard.ID, out.Records, "")
	}
	res := mapping.ReadResult{Records: recs, MillisBehind: -1}
	if out.MillisBehindLatest != nil {
		res.MillisBehind = *out.MillisBehindLatest
	}
	if n := len(res.Records); n > 0 {
		// A copy: the record's string keeps its whole response alive.
		r.lastSeq = strings.Clone(res.Records[n-1].Seq)
		r.returned = time.Now()
	}
	r.full = len(res.Records) >= int(r.limit)
	r.eager = len(res.Records) > 0 || res.MillisBehind > 0
	r.iter = out.NextShardIterator
	if r.iter == nil {
		r.ended = true
		r.log.Info("shard read to its end", "children", childIDs(out.ChildShards))
		if len(res.Records) == 0 {
			return res, mapping.ErrShardClosed
		}
	}
	return res, nil
}

func childIDs(cs []types.ChildShard) []string {
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, aws.ToString(c.ShardId))
	}
	return ids
}

// Close releases the reader; it makes no calls.
func (r *pollReader) Close() error { return nil }

// Failing reports that the reader's calls are failing and being retried. It
// is safe to call from any goroutine.
func (r *pollReader) Failing() bool { return r.rt.failing.Load() }
