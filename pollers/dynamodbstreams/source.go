// Package dynamodbstreams reads DynamoDB Streams for esmd's engine: it lists
// a stream's shards with their lineage, opens shard iterators at any starting
// position DynamoDB supports, and polls each shard with GetRecords the way
// Lambda does (four times a second when idle, at once while records keep
// coming), turning each record into its Lambda JSON once, at read time.
//
// Expired and trimmed iterators are renewed from the last record returned;
// throttling, server errors and network failures are retried with backoff. A
// stream that does not exist, or that was disabled and has no open shard
// left, is reported with an error wrapping mapping.ErrSourceGone.
package dynamodbstreams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// API is the part of *dynamodbstreams.Client that the source uses.
type API interface {
	DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

var _ API = (*dynamodbstreams.Client)(nil)

// Defaults of Config.
const (
	// DefaultPollInterval is how long an idle shard waits between polls:
	// Lambda polls each shard four times a second.
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultLimit is the most records one GetRecords call may return.
	DefaultLimit = 1000
)

// Config configures a Source.
type Config struct {
	// StreamARN is the stream to read (required).
	StreamARN string
	// PollInterval is the pause between polls of a shard that returned no
	// records; DefaultPollInterval when zero.
	PollInterval time.Duration
	// Limit caps the records of one GetRecords call, 1 to 1000; DefaultLimit
	// when zero.
	Limit int32
	// Encoder turns records into Lambda JSON; when nil, one is made for the
	// region named in StreamARN.
	Encoder *event.DynamoDBEncoder
	// Logger receives the source's logs; discarded when nil. Record payloads
	// are never logged.
	Logger *slog.Logger
}

// Source reads one DynamoDB stream. It implements mapping.Source and is safe
// for concurrent use.
type Source struct {
	api          API
	arn          string
	pollInterval time.Duration
	limit        int32
	enc          *event.DynamoDBEncoder
	log          *slog.Logger

	mu             sync.Mutex
	ended          map[string]bool // shards read to their end by this Source's readers
	disabledLogged bool
	// hashKey is the table's partition key attribute, from the stream's
	// KeySchema; "" until Shards has read it.
	hashKey string
	// latest holds, per shard, the iterator of the shard's first LATEST
	// position (see latestIterator).
	latest map[string]pinnedIter
}

// pinnedIter is a shard iterator and when it was issued.
type pinnedIter struct {
	iter string
	at   time.Time
}

// latestReuse is how long a shard's first LATEST iterator is reused: less
// than the 15 minutes DynamoDB Streams keeps an iterator valid.
const latestReuse = 10 * time.Minute

// latestIterator returns the iterator of shard's first LATEST position, if
// it is recent enough to use. A reader reopened at LATEST before it
// returned any record starts there, not at a new LATEST that would skip
// what was written in between (DynamoDB Streams has no AT_TIMESTAMP).
func (s *Source) latestIterator(shard string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.latest[shard]
	if !ok || time.Since(p.at) > latestReuse {
		return "", false
	}
	return p.iter, true
}

// forgetLatest drops shard's pinned LATEST iterator: it expired.
func (s *Source) forgetLatest(shard string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.latest[shard]; ok {
		p.at = time.Time{} // too old to use, but still the shard's first
		s.latest[shard] = p
	}
}

// pinLatest keeps iter as shard's first LATEST iterator, unless the shard
// has one.
func (s *Source) pinLatest(shard, iter string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.latest[shard]; ok {
		return
	}
	if s.latest == nil {
		s.latest = map[string]pinnedIter{}
	}
	s.latest[shard] = pinnedIter{iter: iter, at: at}
}

// partitionKey returns the name of the table's partition key attribute, or
// "" when it is not known yet.
func (s *Source) partitionKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hashKey
}

var (
	_ mapping.Source      = (*Source)(nil)
	_ mapping.ShardReader = (*reader)(nil)
)

// New returns a source that reads the stream cfg.StreamARN through client.
// It makes no call: a missing stream is reported by Shards.
func New(client API, cfg Config) (*Source, error) {
	if client == nil {
		return nil, errors.New("dynamodb streams: nil client")
	}
	if cfg.StreamARN == "" {
		return nil, errors.New("dynamodb streams: empty stream ARN")
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("dynamodb streams %s: negative poll interval %s", cfg.StreamARN, cfg.PollInterval)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Limit == 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Limit < 1 || cfg.Limit > DefaultLimit {
		return nil, fmt.Errorf("dynamodb streams %s: limit %d is outside 1-%d", cfg.StreamARN, cfg.Limit, DefaultLimit)
	}
	if cfg.Encoder == nil {
		cfg.Encoder = event.NewDynamoDBEncoder(regionOf(cfg.StreamARN), cfg.StreamARN)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		api:          client,
		arn:          cfg.StreamARN,
		pollInterval: cfg.PollInterval,
		limit:        cfg.Limit,
		enc:          cfg.Encoder,
		log:          cfg.Logger.With("stream", cfg.StreamARN),
		ended:        map[string]bool{},
	}, nil
}

// regionOf returns the region field of an ARN
// (arn:aws:dynamodb:REGION:ACCOUNT:table/T/stream/LABEL), or "".
func regionOf(arn string) string {
	parts := strings.SplitN(arn, ":", 5)
	if len(parts) < 5 {
		return ""
	}
	return parts[3]
}

// Retention is how long DynamoDB Streams keeps a stream's records: 24
// hours, for every stream.
const Retention = 24 * time.Hour

// Retention returns the stream's retention, the engine's bound on retrying
// a failing batch: Lambda discards records once they leave the stream.
func (s *Source) Retention(context.Context) (time.Duration, error) { return Retention, nil }

// Shards lists every shard the stream still holds, following
// LastEvaluatedShardId across pages. A shard's parent is listed in Parents
// only while the stream still holds it: a parent past retention has nothing
// left to read. A shard is Closed once it has an ending sequence number.
//
// When the stream does not exist, the error wraps mapping.ErrSourceGone. A
// stream that is disabled (or being disabled) keeps its records readable:
// Shards lists its shards as usual until none is open and readers of this
// Source have read every one of them to its end; then it returns the shards
// together with a *DisabledError, which wraps mapping.ErrSourceGone, so that
// the engine stops only once nothing is left to deliver. (Shards finished
// before a restart are not known to a new Source: the mapping then idles.)
func (s *Source) Shards(ctx context.Context) ([]event.Shard, error) {
	var (
		shards []event.Shard
		start  *string
		status types.StreamStatus
	)
	for page := 0; ; page++ {
		out, err := s.api.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{
			StreamArn:             aws.String(s.arn),
			ExclusiveStartShardId: start,
		})
		if err != nil {
			return nil, s.wrapGone("describe stream", err)
		}
		d := out.StreamDescription
		if d == nil {
			return nil, fmt.Errorf("dynamodb streams %s: describe stream: no stream description", s.arn)
		}
		status = d.StreamStatus
		for _, k := range d.KeySchema {
			if k.KeyType == types.KeyTypeHash && aws.ToString(k.AttributeName) != "" {
				s.mu.Lock()
				s.hashKey = aws.ToString(k.AttributeName)
				s.mu.Unlock()
			}
		}
		for _, sh := range d.Shards {
			id := aws.ToString(sh.ShardId)
			if id == "" {
				continue
			}
			es := event.Shard{ID: id}
			if p := aws.ToString(sh.ParentShardId); p != "" {
				es.Parents = []string{p}
			}
			es.Closed = sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
			shards = append(shards, es)
		}
		next := d.LastEvaluatedShardId
		if next == nil || *next == "" || (start != nil && *next == *start) {
			break
		}
		start = next
	}
	known := make(map[string]bool, len(shards))
	for _, sh := range shards {
		known[sh.ID] = true
	}
	open := 0
	for i := range shards {
		if p := shards[i].Parents; len(p) == 1 && !known[p[0]] {
			shards[i].Parents = nil
		}
		if !shards[i].Closed {
			open++
		}
	}
	if status == types.StreamStatusDisabled || status == types.StreamStatusDisabling {
		s.mu.Lock()
		left := open
		for _, sh := range shards {
			if sh.Closed && !s.ended[sh.ID] {
				left++
			}
		}
		logged := s.disabledLogged
		s.disabledLogged = true
		s.mu.Unlock()
		if left == 0 {
			return shards, &DisabledError{StreamARN: s.arn, Status: string(status)}
		}
		if !logged {
			s.log.Warn("dynamodb streams: stream is disabled; reading the records it still holds", "status", status, "shards_left", left)
		}
	}
	return shards, nil
}

// markEnded records that a reader read shard id to its end.
func (s *Source) markEnded(id string) {
	s.mu.Lock()
	s.ended[id] = true
	s.mu.Unlock()
}

// DisabledError reports a stream whose writes were turned off and that has no
// open shard left. It wraps mapping.ErrSourceGone.
type DisabledError struct {
	StreamARN string
	Status    string // DISABLED or DISABLING
}

func (e *DisabledError) Error() string {
	return fmt.Sprintf("dynamodb streams %s: stream is %s and every shard is closed", e.StreamARN, e.Status)
}

func (e *DisabledError) Unwrap() error { return mapping.ErrSourceGone }

// wrapGone wraps err with the operation; a missing stream also wraps
// mapping.ErrSourceGone.
func (s *Source) wrapGone(op string, err error) error {
	if isCode(err, "ResourceNotFoundException") {
		return fmt.Errorf("dynamodb streams: stream ARN %s does not exist: %w: %w", s.arn, mapping.ErrSourceGone, err)
	}
	return fmt.Errorf("dynamodb streams %s: %s: %w", s.arn, op, err)
}

// Open returns a reader of shard sh that begins at start: TRIM_HORIZON,
// LATEST, AFTER_SEQUENCE_NUMBER or AT_SEQUENCE_NUMBER. DynamoDB Streams has
// no AT_TIMESTAMP, and mappings cannot ask for one; the engine does, to
// restart a shard first opened at LATEST from where it began (see
// event.Position.Since). The reader then reads from TRIM_HORIZON and skips
// the records created before that second. It gets the first iterator
// before it returns, retrying throttling and server errors until ctx ends.
// A start sequence number that is past retention falls back to
// TRIM_HORIZON, with a warning.
func (s *Source) Open(ctx context.Context, sh event.Shard, start event.Start) (mapping.ShardReader, error) {
	var since time.Time
	switch start.Type {
	case event.TrimHorizon, event.Latest:
	case event.AfterSequence, event.AtSequence:
		if start.Seq == "" {
			return nil, fmt.Errorf("dynamodb streams %s: shard %s: %s needs a sequence number", s.arn, sh.ID, start.Type)
		}
	case event.AtTimestamp:
		if start.Timestamp.IsZero() {
			return nil, fmt.Errorf("dynamodb streams %s: shard %s: AT_TIMESTAMP without a timestamp", s.arn, sh.ID)
		}
		// Creation times are whole seconds: keep the whole second the
		// timestamp falls in.
		since = start.Timestamp.Truncate(time.Second)
		start = event.Start{Type: event.TrimHorizon}
	default:
		return nil, fmt.Errorf("dynamodb streams %s: shard %s: unknown starting position %q", s.arn, sh.ID, start.Type)
	}
	r := &reader{
		src:    s,
		shard:  sh.ID,
		resume: start,
		since:  since,
		log:    s.log.With("shard", sh.ID),
		retry:  newRetry(),
	}
	if err := r.renew(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// isCode reports whether err is an AWS API error with the given code.
func isCode(err error, code string) bool {
	var ae interface{ ErrorCode() string }
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
