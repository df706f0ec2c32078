package smoke

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	"github.com/esmd-dev/esmd/test/servers"
)

// TestSNSToSQS publishes to a topic with an SQS subscription and reads the
// notification envelope from the queue.
func TestSNSToSQS(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	topic := servers.CreateTopic(t, ep, servers.UniqueName("smoke"))
	url, qarn := servers.CreateQueue(t, ep, servers.UniqueName("smoke"), nil)
	c := servers.SNSClient(ep)
	if _, err := c.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(topic), Protocol: aws.String("sqs"), Endpoint: aws.String(qarn)}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	pub, err := c.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(topic),
		Subject:  aws.String("failure"),
		Message:  aws.String(`{"requestContext":{"condition":"RetryAttemptsExhausted"}}`),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"source": {DataType: aws.String("String"), StringValue: aws.String("kinesis")},
		},
	})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ms := receive(t, servers.SQSClient(ep), url, 2)
	if len(ms) != 1 {
		t.Fatalf("queue got %d messages, want 1", len(ms))
	}
	var env struct {
		Type, MessageId, TopicArn, Subject, Message, Timestamp string
		MessageAttributes                                      map[string]struct{ Type, Value string }
	}
	if err := json.Unmarshal([]byte(aws.ToString(ms[0].Body)), &env); err != nil {
		t.Fatalf("envelope %q: %v", aws.ToString(ms[0].Body), err)
	}
	if env.Type != "Notification" || env.MessageId != aws.ToString(pub.MessageId) || env.TopicArn != topic || env.Subject != "failure" ||
		env.Message != `{"requestContext":{"condition":"RetryAttemptsExhausted"}}` || env.Timestamp == "" {
		t.Errorf("envelope = %+v", env)
	}
	if a := env.MessageAttributes["source"]; a.Type != "String" || a.Value != "kinesis" {
		t.Errorf("envelope MessageAttributes = %+v", env.MessageAttributes)
	}
}

// TestSNSPublishSizeLimit checks the 256 KiB message limit.
func TestSNSPublishSizeLimit(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	topic := servers.CreateTopic(t, ep, servers.UniqueName("smoke"))
	c := servers.SNSClient(ep)
	if _, err := c.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Message: aws.String(strings.Repeat("x", 256*1024))}); err != nil {
		t.Fatalf("Publish of exactly 256 KiB: %v", err)
	}
	_, err := c.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Message: aws.String(strings.Repeat("x", 256*1024+1))})
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("Publish of 256 KiB + 1: err = %v, want an API error", err)
	}
	if ae.ErrorCode() != "InvalidParameter" {
		t.Errorf("oversized publish error code = %q, want InvalidParameter", ae.ErrorCode())
	}
	// AWS counts UTF-8 bytes (plus attributes); moto counts characters, so
	// 131073 two-byte characters (262146 bytes) pass (SERVERS.md).
	if _, err := c.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Message: aws.String(strings.Repeat("é", 128*1024+1))}); err != nil {
		t.Errorf("Publish of 262146 bytes in 131073 characters: %v; SERVERS.md says moto accepts it", err)
	}
}

// TestSQSMessageSizeLimit checks the SendMessage limit, 1 MiB since 2025
// (moto's default MaximumMessageSize is 1 MiB too).
func TestSQSMessageSizeLimit(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	url, _ := servers.CreateQueue(t, ep, servers.UniqueName("smoke"), nil)
	c := servers.SQSClient(ep)
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strings.Repeat("x", 1024*1024))}); err != nil {
		t.Fatalf("SendMessage of exactly 1 MiB: %v", err)
	}
	_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strings.Repeat("x", 1024*1024+1))})
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("SendMessage of 1 MiB + 1: err = %v, want an API error", err)
	}
	if ae.ErrorCode() != "InvalidParameterValue" {
		t.Errorf("oversized send error code = %q (%s), want InvalidParameterValue", ae.ErrorCode(), ae.ErrorMessage())
	}
}

// TestS3PutGet writes an object and reads it back.
func TestS3PutGet(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	bucket := servers.UniqueName("smoke")
	servers.CreateBucket(t, ep, bucket)
	c := servers.S3Client(ep)
	const key = "failures/2026/11/25/mapping-1/abc.json"
	body := `{"requestContext":{"condition":"RetryAttemptsExhausted"},"payload":"x"}`
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: strings.NewReader(body), ContentType: aws.String("application/json")}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != body || aws.ToString(out.ContentType) != "application/json" || aws.ToInt64(out.ContentLength) != int64(len(body)) {
		t.Fatalf("GetObject = %q, content type %q, length %d", got, aws.ToString(out.ContentType), aws.ToInt64(out.ContentLength))
	}
}
