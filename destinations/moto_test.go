package destinations

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

// receiveAll reads queueURL until it has want messages, then waits one more
// short poll to catch any extra, and returns every body.
func receiveAll(t *testing.T, c *sqs.Client, queueURL string, want int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var bodies []string
	for {
		wait := int32(5)
		if len(bodies) >= want {
			wait = 1
		}
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: wait, VisibilityTimeout: 60,
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
		}
		if len(out.Messages) == 0 && (len(bodies) >= want || ctx.Err() != nil) {
			return bodies
		}
	}
}

func TestMotoSQS(t *testing.T) {
	ep := servers.Moto(t)
	client := servers.SQSClient(ep)
	golden := string(goldenBytes(t, "kinesis_failure.golden.json"))

	t.Run("standard queue", func(t *testing.T) {
		url, arn := servers.CreateQueue(t, ep, servers.UniqueName("failures"), nil)
		d, err := New(t.Context(), arn, Deps{SQS: client})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatal(err)
		}
		got := receiveAll(t, client, url, 1)
		if diff := cmp.Diff([]string{golden}, got); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
	})

	t.Run("queue in another region than the client", func(t *testing.T) {
		cfg := servers.AWSConfig(ep)
		cfg.Region = "eu-west-1"
		euClient := sqs.NewFromConfig(cfg)
		out, err := euClient.CreateQueue(t.Context(), &sqs.CreateQueueInput{QueueName: aws.String(servers.UniqueName("eu-failures"))})
		if err != nil {
			t.Fatal(err)
		}
		attrs, err := euClient.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
			QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
		})
		if err != nil {
			t.Fatal(err)
		}
		arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
		d, err := New(t.Context(), arn, Deps{SQS: client}) // client is us-east-1
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{golden}, receiveAll(t, euClient, aws.ToString(out.QueueUrl), 1)); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
	})

	t.Run("FIFO queue deduplicates a retried send", func(t *testing.T) {
		url, arn := servers.CreateQueue(t, ep, servers.UniqueName("failures")+".fifo", map[string]string{"FifoQueue": "true"})
		d, err := New(t.Context(), arn, Deps{SQS: client})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := d.Send(t.Context(), testFailure()); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff([]string{golden}, receiveAll(t, client, url, 1)); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
	})

	t.Run("missing queue is a transient error", func(t *testing.T) {
		d, err := New(t.Context(), "arn:aws:sqs:us-east-1:"+servers.Account+":"+servers.UniqueName("absent"), Deps{SQS: client})
		if err != nil {
			t.Fatal(err)
		}
		err = d.Send(t.Context(), testFailure())
		var qe *sqstypes.QueueDoesNotExist
		if !errors.As(err, &qe) || isPermanent(err) {
			t.Fatalf("Send = %v, want a transient QueueDoesNotExist", err)
		}
	})
}

func TestMotoSNSToSQS(t *testing.T) {
	ep := servers.Moto(t)
	sqsClient := servers.SQSClient(ep)
	snsClient := servers.SNSClient(ep)
	topic := servers.CreateTopic(t, ep, servers.UniqueName("failures"))
	url, queueARN := servers.CreateQueue(t, ep, servers.UniqueName("sub"), nil)
	if _, err := snsClient.Subscribe(t.Context(), &sns.SubscribeInput{
		TopicArn: aws.String(topic), Protocol: aws.String("sqs"), Endpoint: aws.String(queueARN),
	}); err != nil {
		t.Fatal(err)
	}

	d, err := New(t.Context(), topic, Deps{SNS: snsClient})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(t.Context(), testFailure()); err != nil {
		t.Fatal(err)
	}
	got := receiveAll(t, sqsClient, url, 1)
	if len(got) != 1 {
		t.Fatalf("%d messages on the subscribed queue, want 1", len(got))
	}
	var env struct {
		Type, TopicArn, Message string
	}
	if err := json.Unmarshal([]byte(got[0]), &env); err != nil {
		t.Fatalf("envelope %q: %v", got[0], err)
	}
	want := struct{ Type, TopicArn, Message string }{"Notification", topic, string(goldenBytes(t, "kinesis_failure.golden.json"))}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("envelope (-want +got):\n%s", diff)
	}
}

func TestMotoS3(t *testing.T) {
	ep := servers.Moto(t)
	client := servers.S3Client(ep)
	bucket := servers.UniqueName("failures")
	servers.CreateBucket(t, ep, bucket)

	d, err := New(t.Context(), "arn:aws:s3:::"+bucket, Deps{S3: client})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retried send overwrites the same object
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatal(err)
		}
	}
	list, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 {
		t.Fatalf("%d objects in the bucket, want 1", len(list.Contents))
	}
	key := aws.ToString(list.Contents[0].Key)
	if !s3KeyPattern.MatchString(key) {
		t.Errorf("key %q does not follow aws/lambda/<uuid>/<shard>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>", key)
	}
	obj, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	body, err := io.ReadAll(obj.Body)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(goldenBytes(t, "kinesis_failure_s3.golden.json")), string(body)); diff != "" {
		t.Errorf("object (-want +got):\n%s", diff)
	}
	if got := aws.ToString(obj.ContentType); got != "application/json" {
		t.Errorf("content type %q, want application/json", got)
	}
}
