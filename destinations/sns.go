package destinations

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// SNSMaxMessage is the largest SNS message, 256 KiB.
const SNSMaxMessage = 256 << 10

// SNS publishes failure records to an SNS topic named by its ARN. The message
// is the failure record's JSON, without the records, as AWS sends it. A FIFO
// topic (name ending in .fifo) gets the shard as message group and a hash of
// the message as deduplication id. It is safe for concurrent use.
type SNS struct {
	client SNSAPI
	arn    string
	name   string
	region string
	fifo   bool
	log    *slog.Logger

	refused refusals
}

var _ mapping.Destination = (*SNS)(nil)

// NewSNS returns the destination of the topic arn:aws:sns:REGION:ACCOUNT:NAME.
// Calls are made in the ARN's region through client. It does no I/O.
func NewSNS(topicARN string, client SNSAPI, logger *slog.Logger) (*SNS, error) {
	a, err := parseARN(topicARN, "sns")
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SNS{
		client: client,
		arn:    topicARN,
		name:   a.Resource,
		region: a.Region,
		fifo:   strings.HasSuffix(a.Resource, ".fifo"),
		log:    logger.With("destination", "sns", "topic", a.Resource),
	}, nil
}

// Send publishes f with one Publish call. It blocks for the round trip and
// returns ctx's error when ctx ends first.
func (d *SNS) Send(ctx context.Context, f *event.Failure) error {
	body, err := marshal(f)
	if err != nil {
		return fmt.Errorf("destination sns %s: encode: %w", d.name, err)
	}
	if len(body) > SNSMaxMessage {
		d.refused.warn(ctx, d.log, "failure record refused: over the SNS message size limit", f, body, "bytes", len(body), "limit", SNSMaxMessage)
		return fmt.Errorf("destination sns %s: %w", d.name, tooLarge(len(body), SNSMaxMessage))
	}
	in := &sns.PublishInput{TopicArn: aws.String(d.arn), Message: aws.String(string(body))}
	if d.fifo {
		in.MessageGroupId = aws.String(groupID(f))
		in.MessageDeduplicationId = aws.String(dedupID(body))
	}
	out, err := d.client.Publish(ctx, in, func(o *sns.Options) {
		if d.region != "" {
			o.Region = d.region
		}
	})
	if err != nil {
		return fmt.Errorf("destination sns %s: publish: %w", d.name, err)
	}
	d.log.DebugContext(ctx, "failure record sent", append(logAttrs(f), "message_id", aws.ToString(out.MessageId))...)
	return nil
}
