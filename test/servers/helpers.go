package servers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// helperTimeout bounds each helper, including waiting for a resource to
// become ACTIVE.
const helperTimeout = 2 * time.Minute

var (
	nameMu  sync.Mutex
	nameSeq int
)

func helperContext(testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), helperTimeout)
}

// KinesisClient returns a Kinesis client for a Kinesis test server.
func KinesisClient(endpoint string) *kinesis.Client {
	return kinesis.NewFromConfig(AWSConfig(endpoint))
}

// SQSClient returns an SQS client (awsJson1_0, the SDK default) for moto.
func SQSClient(endpoint string) *sqs.Client {
	return sqs.NewFromConfig(AWSConfig(endpoint))
}

// SNSClient returns an SNS client for moto.
func SNSClient(endpoint string) *sns.Client {
	return sns.NewFromConfig(AWSConfig(endpoint))
}

// S3Client returns an S3 client with path-style addressing for moto.
func S3Client(endpoint string) *s3.Client {
	return s3.NewFromConfig(AWSConfig(endpoint), func(o *s3.Options) { o.UsePathStyle = true })
}

// DynamoDBClient returns a DynamoDB client for moto.
func DynamoDBClient(endpoint string) *dynamodb.Client {
	return dynamodb.NewFromConfig(AWSConfig(endpoint))
}

// CreateStream creates a Kinesis stream with shards shards on the server at
// endpoint (kinesis-mock or kinesalite; it addresses the stream by name), waits
// until it is ACTIVE and returns its ARN. It fails t on any error.
func CreateStream(t testing.TB, endpoint, name string, shards int) (arn string) {
	t.Helper()
	ctx, cancel := helperContext(t)
	defer cancel()
	c := KinesisClient(endpoint)
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(int32(shards)),
	})
	if err != nil {
		t.Fatalf("servers: create stream %s: %v", name, err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatalf("servers: describe stream %s: %v", name, err)
		}
		if d := out.StreamDescriptionSummary; d.StreamStatus == ktypes.StreamStatusActive {
			return aws.ToString(d.StreamARN)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("servers: stream %s not ACTIVE within %s", name, helperTimeout)
		case <-tick.C:
		}
	}
}

// CreateQueue creates an SQS queue on moto with the given attributes (for
// example "VisibilityTimeout", "RedrivePolicy", "FifoQueue"; may be nil) and
// returns its URL and ARN. It fails t on any error.
func CreateQueue(t testing.TB, endpoint, name string, attrs map[string]string) (url, arn string) {
	t.Helper()
	ctx, cancel := helperContext(t)
	defer cancel()
	c := SQSClient(endpoint)
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("servers: create queue %s: %v", name, err)
	}
	url = aws.ToString(out.QueueUrl)
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       out.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("servers: queue %s: get attributes: %v", name, err)
	}
	arn = a.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if arn == "" {
		t.Fatalf("servers: queue %s: no QueueArn attribute", name)
	}
	return url, arn
}

// CreateTopic creates an SNS topic on moto and returns its ARN. It fails t on
// any error.
func CreateTopic(t testing.TB, endpoint, name string) (arn string) {
	t.Helper()
	ctx, cancel := helperContext(t)
	defer cancel()
	out, err := SNSClient(endpoint).CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("servers: create topic %s: %v", name, err)
	}
	return aws.ToString(out.TopicArn)
}

// CreateBucket creates an S3 bucket on moto (us-east-1, so no location
// constraint). It fails t on any error.
func CreateBucket(t testing.TB, endpoint, name string) {
	t.Helper()
	ctx, cancel := helperContext(t)
	defer cancel()
	if _, err := S3Client(endpoint).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("servers: create bucket %s: %v", name, err)
	}
}

// CreateTable creates a DynamoDB table on moto with a string hash key "pk",
// pay-per-request billing and a NEW_AND_OLD_IMAGES stream, waits until it is
// ACTIVE and returns the stream's ARN. It fails t on any error.
func CreateTable(t testing.TB, endpoint, name string) (streamARN string) {
	t.Helper()
	ctx, cancel := helperContext(t)
	defer cancel()
	c := DynamoDBClient(endpoint)
	out, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: dtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: dtypes.ScalarAttributeTypeS},
		},
		KeySchema: []dtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: dtypes.KeyTypeHash},
		},
		StreamSpecification: &dtypes.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: dtypes.StreamViewTypeNewAndOldImages,
		},
	})
	if err != nil {
		t.Fatalf("servers: create table %s: %v", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 20 * time.Millisecond
		o.MaxDelay = 200 * time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, helperTimeout); err != nil {
		t.Fatalf("servers: table %s not ACTIVE: %v", name, err)
	}
	streamARN = aws.ToString(out.TableDescription.LatestStreamArn)
	if streamARN == "" {
		t.Fatal(errors.New("servers: table " + name + ": no LatestStreamArn"))
	}
	return streamARN
}

// UniqueName returns prefix plus a suffix unique in this test binary run,
// usable as a stream, queue, topic, table or bucket name (lower case,
// digits and dashes).
func UniqueName(prefix string) string {
	nameMu.Lock()
	nameSeq++
	n := nameSeq
	nameMu.Unlock()
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000_000, n)
}
