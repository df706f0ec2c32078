package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// API is the part of *kinesis.Client that a Source uses. Tests may swap in a
// fake; SubscribeToShard is called only when Config.ConsumerARN is set.
type API interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

var _ API = (*kinesis.Client)(nil)

// Defaults of Config.
const (
	// DefaultPollInterval is Lambda's base polling rate of a shard: once a
	// second.
	DefaultPollInterval = time.Second
	// DefaultLimit is the most records one GetRecords may return.
	DefaultLimit int32 = 10000
	// DefaultMinPollGap keeps one reader within Kinesis's limit of five
	// GetRecords calls per second per shard.
	DefaultMinPollGap = 200 * time.Millisecond
)

// Config configures a Source.
type Config struct {
	// StreamARN names the stream. It may be left empty when ConsumerARN is
	// set: the stream is then the consumer's.
	StreamARN string
	// ConsumerARN, when set, switches the readers to enhanced fan-out
	// (SubscribeToShard) through this registered stream consumer.
	ConsumerARN string
	// PollInterval is how long an idle shard waits before its next
	// GetRecords; DefaultPollInterval when zero.
	PollInterval time.Duration
	// Limit is the largest GetRecords Limit; DefaultLimit when zero.
	Limit int32
	// MinLimit is the least Limit a reader adapts down to; Limit when zero
	// or above it, and then the Limit is fixed. Set it to what the lanes
	// take at once, BatchSize x ParallelizationFactor, so that adapting
	// never makes a batch smaller. See pollReader.adapt.
	MinLimit int32
	// MinPollGap is the least time between the starts of two GetRecords
	// calls of one reader, even while it catches up: DefaultMinPollGap when
	// zero, none when negative (for emulators without Kinesis's limits).
	MinPollGap time.Duration
	// Encoder turns records into Lambda's JSON. When nil, an encoder for the
	// stream's ARN and region is made, with an empty invokeIdentityArn.
	Encoder *event.KinesisEncoder
	// Logger receives lifecycle and retry messages; discarded when nil.
	Logger *slog.Logger

	// backoff bounds for retries; unexported so tests can shorten them.
	minBackoff, maxBackoff time.Duration
}

// Backoff bounds of the readers' and Shards' retries.
const (
	defaultMinBackoff = 100 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
	// sdkAttempts caps the SDK's own retries per call: the readers retry
	// themselves, with their own backoff and logging.
	sdkAttempts = 2
)

// Source reads one Kinesis data stream. It implements mapping.Source and is
// safe for concurrent use.
type Source struct {
	api    API
	cfg    Config
	stream string // the stream's name
	log    *slog.Logger
	// subscribe opens an enhanced fan-out subscription; a field so unit tests
	// can stand in for the SDK's event stream.
	subscribe func(ctx context.Context, in *kinesis.SubscribeToShardInput) (eventStream, error)

	mu     sync.Mutex
	latest map[string]time.Time // per shard, when it was first opened at LATEST
}

// pinLatest returns when shard was first opened at LATEST by this Source
// (now if this is the first time, and whether it is), as
// mapping.LatestSince gives it.
// Later opens start at that time (AT_TIMESTAMP), not at a new LATEST: a
// reader reopened before it returned any record would otherwise skip what
// was put in between.
func (s *Source) pinLatest(shard string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.latest[shard]; ok {
		return t, false
	}
	if s.latest == nil {
		s.latest = map[string]time.Time{}
	}
	t := mapping.LatestSince()
	s.latest[shard] = t
	return t, true
}

var _ mapping.Source = (*Source)(nil)

// eventStream is the part of *kinesis.SubscribeToShardEventStream a reader
// uses.
type eventStream interface {
	Events() <-chan types.SubscribeToShardEventStream
	Close() error
	Err() error
}

// New returns a Source for the stream that cfg names. It makes no calls.
func New(client API, cfg Config) (*Source, error) {
	if client == nil {
		return nil, errors.New("kinesis: nil client")
	}
	if cfg.ConsumerARN != "" {
		streamARN, _, err := parseConsumerARN(cfg.ConsumerARN)
		if err != nil {
			return nil, err
		}
		if cfg.StreamARN == "" {
			cfg.StreamARN = streamARN
		} else if cfg.StreamARN != streamARN {
			return nil, fmt.Errorf("kinesis: consumer %s does not belong to stream %s", cfg.ConsumerARN, cfg.StreamARN)
		}
	}
	name, region, err := parseStreamARN(cfg.StreamARN)
	if err != nil {
		return nil, err
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.MinPollGap == 0 {
		cfg.MinPollGap = DefaultMinPollGap
	}
	if cfg.Limit > DefaultLimit {
		return nil, fmt.Errorf("kinesis: limit %d above %d", cfg.Limit, DefaultLimit)
	}
	if cfg.MinLimit <= 0 || cfg.MinLimit > cfg.Limit {
		cfg.MinLimit = cfg.Limit
	}
	if cfg.Encoder == nil {
		cfg.Encoder = event.NewKinesisEncoder(region, cfg.StreamARN, "")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.minBackoff <= 0 {
		cfg.minBackoff = defaultMinBackoff
	}
	if cfg.maxBackoff <= 0 {
		cfg.maxBackoff = defaultMaxBackoff
	}
	s := &Source{
		api:    client,
		cfg:    cfg,
		stream: name,
		log:    cfg.Logger.With("stream", cfg.StreamARN),
	}
	s.subscribe = func(ctx context.Context, in *kinesis.SubscribeToShardInput) (eventStream, error) {
		out, err := client.SubscribeToShard(ctx, in, sdkRetries, ownCodec)
		if err != nil {
			return nil, err
		}
		return out.GetStream(), nil
	}
	return s, nil
}

// sdkRetries keeps the SDK's retries of one call modest.
func sdkRetries(o *kinesis.Options) { o.RetryMaxAttempts = sdkAttempts }

// ownCodec gives one subscription a protocol of its own. The client's
// protocol holds a single event-stream codec with scratch state that every
// open subscription shares, unsynchronised: concurrent subscriptions on one
// client race (aws/smithy-go issue 714, seen with kinesis v1.56.13 and
// smithy-go v1.28.9).
func ownCodec(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }

// parseStreamARN returns the stream name and region of
// arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME.
func parseStreamARN(arn string) (name, region string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kinesis" {
		return "", "", fmt.Errorf("kinesis: %q is not a Kinesis stream ARN", arn)
	}
	name, ok := strings.CutPrefix(parts[5], "stream/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("kinesis: %q is not a Kinesis stream ARN", arn)
	}
	return name, parts[3], nil
}

// parseConsumerARN splits
// arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME/consumer/CNAME:TIMESTAMP
// into the stream's ARN and the consumer's name.
func parseConsumerARN(arn string) (streamARN, consumer string, err error) {
	stream, rest, ok := strings.Cut(arn, "/consumer/")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("kinesis: %q is not a Kinesis stream consumer ARN", arn)
	}
	if _, _, err := parseStreamARN(stream); err != nil {
		return "", "", fmt.Errorf("kinesis: %q is not a Kinesis stream consumer ARN", arn)
	}
	consumer, _, _ = strings.Cut(rest, ":")
	return stream, consumer, nil
}

// describer is the part of *kinesis.Client that Retention uses; an API
// without it gives no retention.
type describer interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// Retention returns how long the stream keeps records (its
// RetentionPeriodHours), the engine's bound on retrying a failing batch:
// Lambda discards records once they leave the stream. It makes one
// DescribeStreamSummary call.
func (s *Source) Retention(ctx context.Context) (time.Duration, error) {
	d, ok := s.api.(describer)
	if !ok {
		return 0, fmt.Errorf("kinesis %s: describe stream summary: the client cannot", s.stream)
	}
	out, err := d.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.stream)}, sdkRetries)
	if err != nil {
		return 0, fmt.Errorf("kinesis %s: describe stream summary: %w", s.stream, err)
	}
	if out.StreamDescriptionSummary == nil || out.StreamDescriptionSummary.RetentionPeriodHours == nil {
		return 0, fmt.Errorf("kinesis %s: describe stream summary: no retention period in the answer", s.stream)
	}
	return time.Duration(*out.StreamDescriptionSummary.RetentionPeriodHours) * time.Hour, nil
}

// Shards lists every shard of the stream, open and closed, with the parents
// of each. It pages through ListShards and retries throttles with backoff
// until ctx ends. A deleted stream gives an error wrapping
// mapping.ErrSourceGone.
//
// The stream is addressed by name, not StreamARN, because kinesalite accepts
// only names. Reading a stream of another account would need StreamARN.
func (s *Source) Shards(ctx context.Context) ([]event.Shard, error) {
	var shards []event.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(s.stream)}
	rt := newRetrier(s.cfg, s.log, "list shards")
	for {
		out, err := s.api.ListShards(ctx, in, sdkRetries)
		if err != nil {
			switch classify(err) {
			case errGone:
				return nil, fmt.Errorf("kinesis %s: list shards: %w: %w", s.stream, mapping.ErrSourceGone, err)
			case errThrottle, errServer, errNetwork:
				if werr := rt.wait(ctx, err); werr != nil {
					return nil, fmt.Errorf("kinesis %s: list shards: %w", s.stream, werr)
				}
				continue
			default:
				return nil, fmt.Errorf("kinesis %s: list shards: %w", s.stream, err)
			}
		}
		rt.ok()
		for _, sh := range out.Shards {
			shards = append(shards, toShard(sh))
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		// ListShards refuses StreamName next to NextToken.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

func toShard(sh types.Shard) event.Shard {
	e := event.Shard{ID: aws.ToString(sh.ShardId)}
	if p := aws.ToString(sh.ParentShardId); p != "" {
		e.Parents = append(e.Parents, p)
	}
	if p := aws.ToString(sh.AdjacentParentShardId); p != "" {
		e.Parents = append(e.Parents, p)
	}
	// A closed shard has an ending sequence number. Its value does not
	// matter (kinesis-mock reports 2^63-1).
	e.Closed = sh.SequenceNumberRange != nil && aws.ToString(sh.SequenceNumberRange.EndingSequenceNumber) != ""
	return e
}

// Open returns a reader of shard sh that begins at start. For shared
// throughput, and for a shard already closed, it gets the first shard
// iterator before it returns, retrying throttles until ctx ends; for
// enhanced fan-out the first Read subscribes.
// The reader is used by one goroutine at a time.
func (s *Source) Open(ctx context.Context, sh event.Shard, start event.Start) (mapping.ShardReader, error) {
	if err := checkStart(start); err != nil {
		return nil, fmt.Errorf("kinesis %s/%s: open: %w", s.stream, sh.ID, err)
	}
	// A shard that is already closed is read with GetRecords even under
	// enhanced fan-out: its records are fixed, and GetRecords ends it
	// reliably, where kinesis-mock keeps a subscription to a closed shard
	// open forever without the final ChildShards event.
	var pinned time.Time
	if start.Type == event.Latest {
		at, first := s.pinLatest(sh.ID)
		if !first {
			start = event.Start{Type: event.AtTimestamp, Timestamp: at}
		}
		pinned = at
	}
	if s.cfg.ConsumerARN != "" && !sh.Closed {
		fr := s.newFanOutReader(sh, start)
		if !pinned.IsZero() {
			fr.again = event.Start{Type: event.AtTimestamp, Timestamp: pinned}
		}
		return fr, nil
	}
	r := s.newPollReader(sh, start)
	if err := r.acquire(ctx); err != nil {
		return nil, err
	}
	if !pinned.IsZero() {
		// An iterator renewed before any record was returned starts at
		// the pinned time too.
		r.start = event.Start{Type: event.AtTimestamp, Timestamp: pinned}
	}
	return r, nil
}

func checkStart(start event.Start) error {
	switch start.Type {
	case event.TrimHorizon, event.Latest:
	case event.AtTimestamp:
		if start.Timestamp.IsZero() {
			return errors.New("AT_TIMESTAMP without a timestamp")
		}
	case event.AfterSequence, event.AtSequence:
		if start.Seq == "" {
			return fmt.Errorf("%s without a sequence number", start.Type)
		}
	default:
		return fmt.Errorf("unknown starting position %q", start.Type)
	}
	return nil
}

// encode turns SDK records into esmd records, dropping any at or before
// after (a sequence number, or "" for none).
func encode(enc *event.KinesisEncoder, shardID string, recs []types.Record, after string) []event.Record {
	if len(recs) == 0 {
		return nil
	}
	out := make([]event.Record, 0, len(recs))
	for i := range recs {
		rec := &recs[i]
		seq := aws.ToString(rec.SequenceNumber)
		if after != "" && event.CompareSeq(seq, after) <= 0 {
			continue
		}
		out = append(out, enc.Encode(shardID, aws.ToString(rec.PartitionKey), seq, rec.Data, aws.ToTime(rec.ApproximateArrivalTimestamp)))
	}
	return out
}
