package destinations

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// fakeSQS records calls and the region each call was made in.
type fakeSQS struct {
	mu       sync.Mutex
	urlErr   []error // errors GetQueueUrl returns, in turn, before succeeding
	sendErr  error
	lookups  []sqs.GetQueueUrlInput
	sends    []sqs.SendMessageInput
	regions  []string
	queueURL string
	block    chan struct{} // when set, GetQueueUrl waits for it to close
}

func (f *fakeSQS) GetQueueUrl(_ context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups = append(f.lookups, *in)
	f.regions = append(f.regions, sqsRegion(optFns))
	if len(f.urlErr) > 0 {
		err := f.urlErr[0]
		f.urlErr = f.urlErr[1:]
		return nil, err
	}
	return &sqs.GetQueueUrlOutput{QueueUrl: aws.String(f.queueURL)}, nil
}

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends = append(f.sends, *in)
	f.regions = append(f.regions, sqsRegion(optFns))
	if f.sendErr != nil {
		return nil, f.sendErr
	}
	return &sqs.SendMessageOutput{MessageId: aws.String("m-1")}, nil
}

func sqsRegion(optFns []func(*sqs.Options)) string {
	o := sqs.Options{Region: "client-region"}
	for _, fn := range optFns {
		fn(&o)
	}
	return o.Region
}

// fakeSNS records Publish calls.
type fakeSNS struct {
	mu      sync.Mutex
	err     error
	inputs  []sns.PublishInput
	regions []string
}

func (f *fakeSNS) Publish(_ context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, *in)
	o := sns.Options{Region: "client-region"}
	for _, fn := range optFns {
		fn(&o)
	}
	f.regions = append(f.regions, o.Region)
	if f.err != nil {
		return nil, f.err
	}
	return &sns.PublishOutput{MessageId: aws.String("m-1")}, nil
}

// fakeS3 records PutObject calls with their bodies.
type fakeS3 struct {
	mu     sync.Mutex
	err    error
	keys   []string
	bodies [][]byte
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := make([]byte, aws.ToInt64(in.ContentLength))
	if _, err := in.Body.Read(b); err != nil && len(b) > 0 {
		return nil, err
	}
	f.keys = append(f.keys, aws.ToString(in.Key))
	f.bodies = append(f.bodies, b)
	if f.err != nil {
		return nil, f.err
	}
	return &s3.PutObjectOutput{}, nil
}
