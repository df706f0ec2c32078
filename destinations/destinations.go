package destinations

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/cenkalti/backoff/v4"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// SQSAPI is the part of the SQS client a queue destination uses;
// *sqs.Client satisfies it.
type SQSAPI interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// SNSAPI is the part of the SNS client a topic destination uses;
// *sns.Client satisfies it.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// S3API is the part of the S3 client a bucket destination uses; *s3.Client
// satisfies it.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Deps holds the clients destinations are built on. Only the client the
// target needs must be set. A nil HTTPClient means a client with a 30 s
// timeout; a nil Logger discards.
type Deps struct {
	SQS        SQSAPI
	SNS        SNSAPI
	S3         S3API
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Errors New and Send return; match them with errors.Is.
var (
	// ErrInvalidTarget means the destination string cannot be used: it is
	// malformed, names an unsupported service, or its client is missing
	// from Deps.
	ErrInvalidTarget = errors.New("invalid on-failure destination")
	// ErrTooLarge means the failure record is over the destination's size
	// limit. It comes wrapped in backoff.Permanent: retrying cannot help.
	ErrTooLarge = errors.New("failure record over the destination's size limit")
	// ErrClosed means Send was called after Close.
	ErrClosed = errors.New("destination closed")
)

// New returns the destination that target names (see the package comment for
// the forms). Kafka and NATS destinations hold connections: they implement
// Close() error, which the owner calls at shutdown. New does no I/O: queue
// URLs are resolved, brokers and servers contacted and files opened on the
// first Send, so a destination that is down at start-up is retried by the
// engine rather than failing the mapping. ctx is reserved for destinations
// that need to connect at construction.
func New(ctx context.Context, target string, deps Deps) (mapping.Destination, error) {
	_ = ctx
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case strings.HasPrefix(target, "arn:"):
		a, err := arn.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidTarget, target, err)
		}
		switch a.Service {
		case "sqs":
			if deps.SQS == nil {
				return nil, fmt.Errorf("%w %q: no SQS client", ErrInvalidTarget, target)
			}
			return NewSQS(target, deps.SQS, logger)
		case "sns":
			if deps.SNS == nil {
				return nil, fmt.Errorf("%w %q: no SNS client", ErrInvalidTarget, target)
			}
			return NewSNS(target, deps.SNS, logger)
		case "s3":
			if deps.S3 == nil {
				return nil, fmt.Errorf("%w %q: no S3 client", ErrInvalidTarget, target)
			}
			return NewS3(target, deps.S3, logger)
		}
		return nil, fmt.Errorf("%w %q: service %q is not an SQS queue, SNS topic or S3 bucket", ErrInvalidTarget, target, a.Service)
	case strings.HasPrefix(target, "file://"):
		return NewFile(target, logger)
	case strings.HasPrefix(target, "http://"), strings.HasPrefix(target, "https://"):
		return NewHTTP(target, deps.HTTPClient, logger)
	case strings.HasPrefix(target, "kafka://"):
		return NewKafka(target, logger)
	case strings.HasPrefix(target, "nats://"):
		return NewNATS(target, logger)
	}
	return nil, fmt.Errorf("%w %q: want an SQS, SNS or S3 ARN, or a kafka://, nats://, file:// or http(s):// URL", ErrInvalidTarget, redactUserinfo(target))
}

// parseARN parses an SQS or SNS ARN and checks that it names a resource in
// an account.
func parseARN(target, service string) (arn.ARN, error) {
	a, err := arn.Parse(target)
	if err != nil {
		return a, fmt.Errorf("%w %q: %w", ErrInvalidTarget, target, err)
	}
	if a.Service != service {
		return a, fmt.Errorf("%w %q: not an %s ARN", ErrInvalidTarget, target, strings.ToUpper(service))
	}
	if a.Resource == "" || strings.ContainsAny(a.Resource, ":/") || a.AccountID == "" {
		return a, fmt.Errorf("%w %q: want arn:%s:%s:REGION:ACCOUNT:NAME", ErrInvalidTarget, target, a.Partition, service)
	}
	return a, nil
}

// marshal returns the failure record's JSON.
func marshal(f *event.Failure) ([]byte, error) {
	if f == nil {
		return nil, errors.New("nil failure")
	}
	return f.MarshalJSON()
}

// tooLarge returns the permanent error of a record of n bytes over limit.
func tooLarge(n, limit int) error {
	if limit <= 0 { // the server's limit, unknown here
		return backoff.Permanent(fmt.Errorf("%w: %d bytes", ErrTooLarge, n))
	}
	return backoff.Permanent(fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, n, limit))
}

// logAttrs are the attributes a destination logs about a failure: never its
// payload.
func logAttrs(f *event.Failure) []any {
	return []any{"shard", f.ShardID, "condition", string(f.Condition), "batch_size", f.BatchSize}
}

// refusals remembers the records a destination refused permanently, so that
// it warns once per record although the engine keeps retrying it. It keeps
// at most a few hundred; past that it starts over. Safe for concurrent use.
type refusals struct {
	mu   sync.Mutex
	seen map[[32]byte]struct{}
}

const maxRefusals = 256

// warn logs msg at Warn with f's attributes and extra, unless the record
// body was refused before.
func (r *refusals) warn(ctx context.Context, log *slog.Logger, msg string, f *event.Failure, body []byte, extra ...any) {
	key := sha256.Sum256(body)
	r.mu.Lock()
	_, dup := r.seen[key]
	if !dup {
		if r.seen == nil || len(r.seen) >= maxRefusals {
			r.seen = make(map[[32]byte]struct{})
		}
		r.seen[key] = struct{}{}
	}
	r.mu.Unlock()
	if !dup {
		log.WarnContext(ctx, msg, append(logAttrs(f), extra...)...)
	}
}
