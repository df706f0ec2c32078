// Package sqs reads standard and FIFO SQS queues for esmd's SQS engine: it
// implements mapping.Queue over the AWS SDK's SQS client. Receives
// long-poll for up to ten messages with every system and message attribute
// and encode them as Lambda's SQS records; deletes and visibility changes go
// in batches of ten, retrying the entries that fail for the server's sake.
package sqs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v4"
	"golang.org/x/sync/errgroup"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// API is the part of *sqs.Client that a Queue uses; tests may swap in a
// fake.
type API interface {
	ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, optFns ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, optFns ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *awssqs.ChangeMessageVisibilityBatchInput, optFns ...func(*awssqs.Options)) (*awssqs.ChangeMessageVisibilityBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, optFns ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error)
	GetQueueUrl(ctx context.Context, in *awssqs.GetQueueUrlInput, optFns ...func(*awssqs.Options)) (*awssqs.GetQueueUrlOutput, error)
}

var _ API = (*awssqs.Client)(nil)

// Defaults of Config.
const (
	// DefaultMaxWait is SQS's longest long poll.
	DefaultMaxWait = 20 * time.Second
	// DefaultAttempts is how often an entry of a batch delete or visibility
	// change is tried before it is reported failed.
	DefaultAttempts = 3
	// batchLimit is the most entries one batch call takes.
	batchLimit = 10
	// parallelBatches bounds the batch calls one Delete or SetVisibility
	// runs at once.
	parallelBatches = 8
)

// Config configures a Queue.
type Config struct {
	// QueueARN names the queue: arn:PARTITION:sqs:REGION:ACCOUNT:NAME.
	QueueARN string
	// URL is the queue URL; empty resolves it from the ARN with GetQueueUrl
	// on first use.
	URL string
	// Encoder encodes messages; nil uses one for the ARN's region and queue.
	Encoder *event.SQSEncoder
	// MaxWait caps each receive's long poll; default DefaultMaxWait. Tests
	// use a shorter one.
	MaxWait time.Duration
	// Attempts is how often a failing delete or visibility entry is tried;
	// default DefaultAttempts.
	Attempts int
	// RetryInitial is the first pause between attempts; default 100 ms.
	RetryInitial time.Duration
	Logger       *slog.Logger
}

// Queue is one SQS queue. It implements mapping.Queue and is safe for
// concurrent use.
type Queue struct {
	api   API
	cfg   Config
	name  string
	owner string
	log   *slog.Logger

	mu  sync.Mutex
	url string
}

var _ mapping.Queue = (*Queue)(nil)

// New checks cfg and returns a Queue; it makes no call.
func New(api API, cfg Config) (*Queue, error) {
	parts := strings.Split(cfg.QueueARN, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return nil, fmt.Errorf("sqs: %q is not an SQS queue ARN", cfg.QueueARN)
	}
	if api == nil {
		return nil, errors.New("sqs: no client")
	}
	if cfg.Encoder == nil {
		cfg.Encoder = event.NewSQSEncoder(parts[3], cfg.QueueARN)
	}
	if cfg.MaxWait <= 0 || cfg.MaxWait > DefaultMaxWait {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Queue{api: api, cfg: cfg, name: parts[5], owner: parts[4], url: cfg.URL,
		log: cfg.Logger.With("queue", parts[5])}, nil
}

// gone maps SQS's missing-queue errors to mapping.ErrSourceGone.
func gone(err error) error {
	var qe *types.QueueDoesNotExist
	var ae smithy.APIError
	if errors.As(err, &qe) || (errors.As(err, &ae) &&
		(ae.ErrorCode() == "QueueDoesNotExist" || ae.ErrorCode() == "AWS.SimpleQueueService.NonExistentQueue")) {
		return fmt.Errorf("%w: %w", mapping.ErrSourceGone, err)
	}
	return err
}

// URL returns the queue's URL, resolving it once from the ARN.
func (q *Queue) URL(ctx context.Context) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.url != "" {
		return q.url, nil
	}
	in := &awssqs.GetQueueUrlInput{QueueName: aws.String(q.name)}
	if q.owner != "" {
		in.QueueOwnerAWSAccountId = aws.String(q.owner)
	}
	out, err := q.api.GetQueueUrl(ctx, in)
	if err != nil {
		return "", fmt.Errorf("sqs %s: get queue url: %w", q.name, gone(err))
	}
	q.url = aws.ToString(out.QueueUrl)
	return q.url, nil
}

// Receive long-polls once for up to n messages (1 to 10), waiting at most
// wait (whole seconds, capped at MaxWait), and returns them encoded. It
// blocks for the poll; a queue that does not exist is an error wrapping
// mapping.ErrSourceGone.
func (q *Queue) Receive(ctx context.Context, n int, wait time.Duration) ([]event.Record, error) {
	url, err := q.URL(ctx)
	if err != nil {
		return nil, err
	}
	wait = min(wait, q.cfg.MaxWait)
	out, err := q.api.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(url),
		MaxNumberOfMessages:         int32(min(max(n, 1), batchLimit)),
		WaitTimeSeconds:             int32(wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return nil, fmt.Errorf("sqs %s: receive: %w", q.name, gone(err))
	}
	recs := make([]event.Record, len(out.Messages))
	for i := range out.Messages {
		recs[i] = q.cfg.Encoder.Encode(convert(&out.Messages[i]))
	}
	return recs, nil
}

// convert turns an SDK message into the encoder's input.
func convert(m *types.Message) event.SQSMessage {
	out := event.SQSMessage{
		MessageID:              aws.ToString(m.MessageId),
		ReceiptHandle:          aws.ToString(m.ReceiptHandle),
		Body:                   aws.ToString(m.Body),
		MD5OfBody:              aws.ToString(m.MD5OfBody),
		MD5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
		Attributes:             m.Attributes,
	}
	if len(m.MessageAttributes) > 0 {
		out.MessageAttributes = make(map[string]event.SQSMessageAttribute, len(m.MessageAttributes))
		for k, a := range m.MessageAttributes {
			out.MessageAttributes[k] = event.SQSMessageAttribute{
				DataType:         aws.ToString(a.DataType),
				StringValue:      a.StringValue,
				BinaryValue:      a.BinaryValue,
				StringListValues: a.StringListValues,
				BinaryListValues: a.BinaryListValues,
			}
		}
	}
	return out
}

// entryResult is the outcome of one entry of a batch call: "" for success,
// else the reason; retry reports a failure worth another attempt.
type entryResult struct {
	reason string
	retry  bool
}

// batchCall runs one batch call over recs (at most ten) and returns each
// entry's result, by index.
type batchCall func(ctx context.Context, url string, recs []event.Record) ([]entryResult, error)

// each runs call over recs in chunks of ten, several chunks at once,
// retrying the entries that failed for a reason worth retrying, and returns
// how many succeeded and the reason of each failure by messageId.
func (q *Queue) each(ctx context.Context, what string, recs []event.Record, call batchCall) (int, map[string]string, error) {
	url, err := q.URL(ctx)
	if err != nil {
		return 0, nil, err
	}
	var mu sync.Mutex
	ok := 0
	failed := map[string]string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelBatches)
	for i := 0; i < len(recs); i += batchLimit {
		chunk := recs[i:min(i+batchLimit, len(recs))]
		g.Go(func() error {
			n, f := q.chunk(gctx, what, url, chunk, call)
			mu.Lock()
			ok += n
			for id, why := range f {
				failed[id] = why
			}
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	return ok, failed, nil
}

// chunk tries one chunk up to Attempts times.
func (q *Queue) chunk(ctx context.Context, what, url string, recs []event.Record, call batchCall) (int, map[string]string) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = q.cfg.RetryInitial
	bo.MaxElapsedTime = 0
	ok := 0
	failed := map[string]string{}
	pending := recs
	for attempt := 1; len(pending) > 0; attempt++ {
		res, err := call(ctx, url, pending)
		var again []event.Record
		if err != nil {
			for _, r := range pending {
				failed[r.ID] = err.Error()
			}
			again = pending
		} else {
			for i, r := range pending {
				switch {
				case res[i].reason == "":
					ok++
					delete(failed, r.ID)
				case res[i].retry:
					failed[r.ID] = res[i].reason
					again = append(again, r)
				default:
					failed[r.ID] = res[i].reason
				}
			}
		}
		if len(again) == 0 || attempt >= q.cfg.Attempts || ctx.Err() != nil {
			break
		}
		q.log.Debug("retrying failed batch entries", "call", what, "entries", len(again), "attempt", attempt)
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ok, failed
		}
		pending = again
	}
	return ok, failed
}

// results maps a batch call's Successful and Failed entries (ids are the
// indexes of recs) to one result per record. Entries the answer leaves out
// count as failed and are retried.
func results(n int, okIDs []string, failed []types.BatchResultErrorEntry) []entryResult {
	res := make([]entryResult, n)
	for i := range res {
		res[i] = entryResult{reason: "missing from the answer", retry: true}
	}
	for _, id := range okIDs {
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < n {
			res[i] = entryResult{}
		}
	}
	for _, f := range failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || i < 0 || i >= n {
			continue
		}
		reason := aws.ToString(f.Code)
		if msg := aws.ToString(f.Message); msg != "" {
			reason += ": " + msg
		}
		// A sender fault (an invalid or expired receipt handle) never
		// heals; a server fault may.
		res[i] = entryResult{reason: reason, retry: !f.SenderFault}
	}
	return res
}

// Delete deletes recs with DeleteMessageBatch in chunks of ten, retrying
// entries that fail for the server's sake, and returns how many were
// deleted. Messages that could not be deleted (for example because their
// receipt handle expired) are reported in a *mapping.DeleteError.
func (q *Queue) Delete(ctx context.Context, recs []event.Record) (int, error) {
	n, failed, err := q.each(ctx, "delete", recs, func(ctx context.Context, url string, recs []event.Record) ([]entryResult, error) {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(recs))
		for i, r := range recs {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r.Receipt)}
		}
		out, err := q.api.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return nil, gone(err)
		}
		okIDs := make([]string, len(out.Successful))
		for i, s := range out.Successful {
			okIDs[i] = aws.ToString(s.Id)
		}
		return results(len(recs), okIDs, out.Failed), nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqs %s: delete: %w", q.name, err)
	}
	if len(failed) > 0 {
		return n, fmt.Errorf("sqs %s: %w", q.name, &mapping.DeleteError{Failed: failed})
	}
	return n, nil
}

// SetVisibility sets the visibility timeout of recs, from now, with
// ChangeMessageVisibilityBatch in chunks of ten; 0 makes them visible at
// once. Entries that keep failing are reported in the error.
func (q *Queue) SetVisibility(ctx context.Context, recs []event.Record, timeout time.Duration) error {
	secs := int32(timeout / time.Second)
	_, failed, err := q.each(ctx, "change visibility", recs, func(ctx context.Context, url string, recs []event.Record) ([]entryResult, error) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(recs))
		for i, r := range recs {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r.Receipt), VisibilityTimeout: secs}
		}
		out, err := q.api.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			return nil, gone(err)
		}
		okIDs := make([]string, len(out.Successful))
		for i, s := range out.Successful {
			okIDs[i] = aws.ToString(s.Id)
		}
		return results(len(recs), okIDs, out.Failed), nil
	})
	if err != nil {
		return fmt.Errorf("sqs %s: change visibility: %w", q.name, err)
	}
	if len(failed) > 0 {
		for id, why := range failed {
			return fmt.Errorf("sqs %s: change visibility of %d messages failed, e.g. %s: %s", q.name, len(failed), id, why)
		}
	}
	return nil
}

// VisibilityTimeout reads the queue's default visibility timeout.
func (q *Queue) VisibilityTimeout(ctx context.Context) (time.Duration, error) {
	url, err := q.URL(ctx)
	if err != nil {
		return 0, err
	}
	out, err := q.api.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout},
	})
	if err != nil {
		return 0, fmt.Errorf("sqs %s: get attributes: %w", q.name, gone(err))
	}
	v := out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)]
	secs, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("sqs %s: visibility timeout %q: %w", q.name, v, err)
	}
	return time.Duration(secs) * time.Second, nil
}
