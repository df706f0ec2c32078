package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsddbstreams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/dynamodbstreams"
	"github.com/esmd-dev/esmd/pollers/generator"
	"github.com/esmd-dev/esmd/pollers/kinesis"
)

// sdkLog receives the AWS SDK's log lines; cmdRun points it at esmd's
// logger.
var sdkLog = slog.New(slog.DiscardHandler)

// clients builds each AWS client once, on first use.
type clients struct {
	cfg     aws.Config
	eps     config.Endpoints
	kinesis *awskinesis.Client
	streams *awsddbstreams.Client
	sqs     *sqs.Client
	sns     *sns.Client
	s3      *s3.Client
}

func endpoint(url string) *string {
	if url == "" {
		return nil
	}
	return aws.String(url)
}

func (c *clients) Kinesis() *awskinesis.Client {
	if c.kinesis == nil {
		c.kinesis = awskinesis.NewFromConfig(c.cfg, func(o *awskinesis.Options) { o.BaseEndpoint = endpoint(c.eps.Kinesis) })
	}
	return c.kinesis
}

func (c *clients) Streams() *awsddbstreams.Client {
	if c.streams == nil {
		ep := c.eps.DynamoDBStreams
		if ep == "" {
			ep = c.eps.DynamoDB
		}
		c.streams = awsddbstreams.NewFromConfig(c.cfg, func(o *awsddbstreams.Options) { o.BaseEndpoint = endpoint(ep) })
	}
	return c.streams
}

func (c *clients) SQS() *sqs.Client {
	if c.sqs == nil {
		c.sqs = sqs.NewFromConfig(c.cfg, func(o *sqs.Options) { o.BaseEndpoint = endpoint(c.eps.SQS) })
	}
	return c.sqs
}

func (c *clients) SNS() *sns.Client {
	if c.sns == nil {
		c.sns = sns.NewFromConfig(c.cfg, func(o *sns.Options) { o.BaseEndpoint = endpoint(c.eps.SNS) })
	}
	return c.sns
}

func (c *clients) S3() *s3.Client {
	if c.s3 == nil {
		c.s3 = s3.NewFromConfig(c.cfg, func(o *s3.Options) {
			o.BaseEndpoint = endpoint(c.eps.S3)
			// Local S3 servers answer on one host: address buckets by path.
			o.UsePathStyle = c.eps.S3 != ""
		})
	}
	return c.s3
}

// awsConfig loads the standard credential chain, or the static credentials
// of the file, with an HTTP client sized for many shards. Building on the
// SDK's buildable client keeps AWS_CA_BUNDLE working.
func awsConfig(ctx context.Context, c config.AWS) (aws.Config, error) {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = 256
	})
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(c.Region),
		awsconfig.WithHTTPClient(hc),
	}
	if c.Credentials != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			c.Credentials.AccessKeyID, string(c.Credentials.SecretAccessKey), string(c.Credentials.SessionToken))))
	}
	// The SDK's own log lines (e.g. a response body it could not discard
	// after a broken connection) would go to stderr once per attempt,
	// outside slog: keep them at debug level in esmd's log.
	opts = append(opts, awsconfig.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		sdkLog.Debug(fmt.Sprintf(format, v...), "component", "aws-sdk", "class", string(c))
	})))
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws: load configuration: %w", err)
	}
	return cfg, nil
}

func newSource(s config.Settings, cl *clients, log *slog.Logger) (mapping.Source, event.Kind, error) {
	switch s.Source.Kind {
	case config.SourceKinesis:
		kc := kinesis.Config{
			StreamARN:    s.Source.StreamARN(),
			PollInterval: s.PollInterval,
			// Reads adapt to the function's pace, down to what the
			// lanes take at once.
			MinLimit: int32(min(int(kinesis.DefaultLimit), s.BatchSize*s.ParallelizationFactor)),
			Encoder:  event.NewKinesisEncoder(s.Source.Region, s.Source.StreamARN(), s.InvokeIdentityArn),
			Logger:   log,
		}
		if s.Source.EFO() {
			kc.ConsumerARN = s.Source.ARN
		}
		src, err := kinesis.New(cl.Kinesis(), kc)
		return src, event.Kinesis, err
	case config.SourceDynamoDB:
		src, err := dynamodbstreams.New(cl.Streams(), dynamodbstreams.Config{
			StreamARN:    s.Source.ARN,
			PollInterval: s.PollInterval,
			Encoder:      event.NewDynamoDBEncoder(s.Source.Region, s.Source.ARN),
			Logger:       log,
		})
		return src, event.DynamoDB, err
	case config.SourceGenerator:
		src, err := generator.New(generator.Config{Spec: *s.Source.Generator, InvokeIdentityARN: s.InvokeIdentityArn, Logger: log})
		if err != nil {
			return nil, "", err
		}
		return src, src.Kind(), nil
	}
	return nil, "", fmt.Errorf("%s sources are not supported yet", s.Source.Kind)
}

// engineConfig maps a mapping's effective settings to the engine's.
func engineConfig(s config.Settings, kind event.Kind, cfg *config.Config) mapping.Config {
	start := event.Start{Type: event.StartType(s.StartingPosition), Timestamp: s.StartingPositionTimestamp}
	age := s.MaximumRecordAge
	if age <= 0 {
		age = -1 // AWS's -1: no limit
	}
	mc := mapping.Config{
		Name:                    s.Name,
		UUID:                    s.UUID,
		Kind:                    kind,
		SourceARN:               s.Source.StreamARN(),
		FunctionARN:             functionARN(s, cfg),
		BatchSize:               s.BatchSize,
		BatchWindow:             s.BatchingWindow,
		ParallelizationFactor:   s.ParallelizationFactor,
		MaxRecordAge:            age,
		MaxRetryAttempts:        s.MaximumRetryAttempts,
		BisectOnError:           s.BisectBatchOnFunctionError,
		ReportBatchItemFailures: s.ReportBatchItemFailures,
		StartingPosition:        start,
		DiscoveryInterval:       s.ShardDiscoveryInterval,
		CheckpointInterval:      cfg.Checkpoints.Interval.Std(),
		RetryInitial:            s.RetryInitial,
		RetryMax:                s.RetryMax,
	}
	if f, ok := cfg.Functions[s.Function]; ok {
		mc.InvokeTimeout = f.Timeout()
	}
	return mc
}

// functionARN names the function in failure records: the Lambda function's
// ARN when it is one, else an ARN in the source's account and region.
func functionARN(s config.Settings, cfg *config.Config) string {
	if f, ok := cfg.Functions[s.Function]; ok && f.Lambda != nil && len(f.Lambda.FunctionName) > 4 && f.Lambda.FunctionName[:4] == "arn:" {
		return f.Lambda.FunctionName
	}
	part, region, acct := s.Source.Partition, s.Source.Region, s.Source.Account
	if part == "" {
		part = "aws"
	}
	return fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", part, region, acct, s.Function)
}
