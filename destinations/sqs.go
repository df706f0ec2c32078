package destinations

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// SQSMaxMessage is the largest SQS message body, 1 MiB since 2026-01-29.
const SQSMaxMessage = 1 << 20

// SQS sends failure records to an SQS queue named by its ARN. The message
// body is the failure record's JSON, without the records, as AWS sends it.
// A FIFO queue (name ending in .fifo) gets the shard as message group and a
// hash of the body as deduplication id, so a retried send is not duplicated.
// It is safe for concurrent use.
type SQS struct {
	client SQSAPI
	name   string
	owner  string
	region string
	fifo   bool
	log    *slog.Logger

	refused refusals

	// lookup admits one GetQueueUrl at a time; it guards url.
	lookup chan struct{}
	url    string // resolved on first use
}

var _ mapping.Destination = (*SQS)(nil)

// NewSQS returns the destination of the queue arn:aws:sqs:REGION:ACCOUNT:NAME.
// Calls are made in the ARN's region through client. It does no I/O.
func NewSQS(queueARN string, client SQSAPI, logger *slog.Logger) (*SQS, error) {
	a, err := parseARN(queueARN, "sqs")
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SQS{
		client: client,
		name:   a.Resource,
		owner:  a.AccountID,
		region: a.Region,
		fifo:   strings.HasSuffix(a.Resource, ".fifo"),
		log:    logger.With("destination", "sqs", "queue", a.Resource),
		lookup: make(chan struct{}, 1),
	}, nil
}

// Send delivers f with one SendMessage. On first use it resolves the queue
// URL with GetQueueUrl and keeps it. It blocks for those round trips and
// returns ctx's error when ctx ends first.
func (d *SQS) Send(ctx context.Context, f *event.Failure) error {
	body, err := marshal(f)
	if err != nil {
		return fmt.Errorf("destination sqs %s: encode: %w", d.name, err)
	}
	if len(body) > SQSMaxMessage {
		d.refused.warn(ctx, d.log, "failure record refused: over the SQS message size limit", f, body, "bytes", len(body), "limit", SQSMaxMessage)
		return fmt.Errorf("destination sqs %s: %w", d.name, tooLarge(len(body), SQSMaxMessage))
	}
	url, err := d.queueURL(ctx)
	if err != nil {
		return fmt.Errorf("destination sqs %s: get queue url: %w", d.name, err)
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(body))}
	if d.fifo {
		in.MessageGroupId = aws.String(groupID(f))
		in.MessageDeduplicationId = aws.String(dedupID(body))
	}
	out, err := d.client.SendMessage(ctx, in, d.inRegion)
	if err != nil {
		return fmt.Errorf("destination sqs %s: send: %w", d.name, err)
	}
	d.log.DebugContext(ctx, "failure record sent", append(logAttrs(f), "message_id", aws.ToString(out.MessageId))...)
	return nil
}

// queueURL returns the cached queue URL, resolving it first if needed. A
// failed lookup is not cached. Concurrent callers wait for one lookup, or
// for ctx to end.
func (d *SQS) queueURL(ctx context.Context) (string, error) {
	select {
	case d.lookup <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-d.lookup }()
	if d.url != "" {
		return d.url, nil
	}
	out, err := d.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{
		QueueName:              aws.String(d.name),
		QueueOwnerAWSAccountId: aws.String(d.owner),
	}, d.inRegion)
	if err != nil {
		return "", err
	}
	if aws.ToString(out.QueueUrl) == "" {
		return "", fmt.Errorf("no queue url returned")
	}
	d.url = *out.QueueUrl
	return d.url, nil
}

// inRegion makes a call in the queue's region, whatever the client's.
func (d *SQS) inRegion(o *sqs.Options) {
	if d.region != "" {
		o.Region = d.region
	}
}

// groupID is the FIFO message group of f: one group per shard keeps a
// shard's failures in order.
func groupID(f *event.Failure) string {
	if f.MappingUUID == "" {
		return f.ShardID
	}
	return f.MappingUUID + "/" + f.ShardID
}

// dedupID is a FIFO deduplication id derived from the body, so that the
// engine's retry of one failure is deduplicated by the queue or topic.
func dedupID(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
