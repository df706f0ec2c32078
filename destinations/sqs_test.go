package destinations

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
)

const queueARN = "arn:aws:sqs:eu-west-1:111122223333:orders-failures"

func TestSQSSendResolvesQueueOnce(t *testing.T) {
	fake := &fakeSQS{queueURL: "https://sqs.eu-west-1.amazonaws.com/111122223333/orders-failures"}
	d, err := NewSQS(queueARN, fake, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() { errs <- d.Send(t.Context(), testFailure()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(fake.lookups) != 1 {
		t.Fatalf("GetQueueUrl called %d times, want 1", len(fake.lookups))
	}
	if got := fake.lookups[0]; aws.ToString(got.QueueName) != "orders-failures" || aws.ToString(got.QueueOwnerAWSAccountId) != "111122223333" {
		t.Errorf("GetQueueUrl(%q, owner %q), want orders-failures, 111122223333", aws.ToString(got.QueueName), aws.ToString(got.QueueOwnerAWSAccountId))
	}
	want := string(goldenBytes(t, "kinesis_failure.golden.json"))
	if len(fake.sends) != n {
		t.Fatalf("%d messages sent, want %d", len(fake.sends), n)
	}
	for _, in := range fake.sends {
		if aws.ToString(in.QueueUrl) != fake.queueURL {
			t.Errorf("sent to %q, want %q", aws.ToString(in.QueueUrl), fake.queueURL)
		}
		if diff := cmp.Diff(want, aws.ToString(in.MessageBody)); diff != "" {
			t.Errorf("body differs from the golden file (-want +got):\n%s", diff)
		}
		if in.MessageGroupId != nil || in.MessageDeduplicationId != nil || len(in.MessageAttributes) != 0 {
			t.Errorf("standard queue message has group %v, dedup %v, attributes %v", in.MessageGroupId, in.MessageDeduplicationId, in.MessageAttributes)
		}
	}
	for i, r := range fake.regions {
		if r != "eu-west-1" {
			t.Errorf("call %d made in region %q, want the ARN's eu-west-1", i, r)
		}
	}
}

func TestSQSSendErrors(t *testing.T) {
	t.Run("lookup failure is retried, not cached", func(t *testing.T) {
		fake := &fakeSQS{queueURL: "http://q", urlErr: []error{&types.QueueDoesNotExist{Message: aws.String("no queue")}}}
		d, _ := NewSQS(queueARN, fake, nil)
		err := d.Send(t.Context(), testFailure())
		var qe *types.QueueDoesNotExist
		if !errors.As(err, &qe) || isPermanent(err) {
			t.Fatalf("first Send = %v; want a transient QueueDoesNotExist", err)
		}
		if !strings.HasPrefix(err.Error(), "destination sqs orders-failures: get queue url: ") {
			t.Errorf("error %q lacks the destination prefix", err)
		}
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatalf("second Send: %v", err)
		}
		if len(fake.lookups) != 2 || len(fake.sends) != 1 {
			t.Errorf("%d lookups and %d sends, want 2 and 1", len(fake.lookups), len(fake.sends))
		}
	})
	t.Run("send failure is transient", func(t *testing.T) {
		boom := errors.New("connection reset")
		fake := &fakeSQS{queueURL: "http://q", sendErr: boom}
		d, _ := NewSQS(queueARN, fake, nil)
		err := d.Send(t.Context(), testFailure())
		if !errors.Is(err, boom) || isPermanent(err) {
			t.Fatalf("Send = %v; want a transient wrap of %v", err, boom)
		}
		if want := "destination sqs orders-failures: send: connection reset"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	})
}

func TestSQSSizeLimit(t *testing.T) {
	tests := []struct {
		size    int
		wantErr bool
	}{
		{SQSMaxMessage, false},
		{SQSMaxMessage + 1, true},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			fake := &fakeSQS{queueURL: "http://q"}
			d, _ := NewSQS(queueARN, fake, nil)
			err := d.Send(t.Context(), paddedFailure(t, tt.size))
			if !tt.wantErr {
				if err != nil || len(fake.sends) != 1 {
					t.Fatalf("Send of %d bytes = %v with %d sends; want delivered", tt.size, err, len(fake.sends))
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || !isPermanent(err) {
				t.Fatalf("Send of %d bytes = %v; want a permanent ErrTooLarge", tt.size, err)
			}
			if len(fake.sends) != 0 {
				t.Errorf("an oversize record was sent")
			}
			if want := "destination sqs orders-failures: failure record over the destination's size limit: 1048577 bytes, the limit is 1048576"; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}

func TestSQSFIFO(t *testing.T) {
	fake := &fakeSQS{queueURL: "http://q.fifo"}
	d, _ := NewSQS("arn:aws:sqs:us-east-1:111122223333:failures.fifo", fake, nil)
	for range 2 {
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatal(err)
		}
	}
	a, b := fake.sends[0], fake.sends[1]
	if got, want := aws.ToString(a.MessageGroupId), "a1b2c3d4-0000-4000-8000-0123456789ab/shardId-000000000001"; got != want {
		t.Errorf("group %q, want %q", got, want)
	}
	if aws.ToString(a.MessageDeduplicationId) == "" || aws.ToString(a.MessageDeduplicationId) != aws.ToString(b.MessageDeduplicationId) {
		t.Errorf("dedup ids %q and %q: want equal and set for one failure sent twice", aws.ToString(a.MessageDeduplicationId), aws.ToString(b.MessageDeduplicationId))
	}
}

func TestSQSWaitForLookupHonoursContext(t *testing.T) {
	fake := &fakeSQS{queueURL: "http://q", block: make(chan struct{})}
	d, _ := NewSQS(queueARN, fake, nil)
	first := make(chan error, 1)
	go func() { first <- d.Send(t.Context(), testFailure()) }()
	for { // wait until the first Send holds the lookup
		if len(d.lookup) == 1 {
			break
		}
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d.Send(ctx, testFailure()); !errors.Is(err, context.Canceled) {
		t.Errorf("Send behind a pending lookup with a cancelled context = %v, want context.Canceled", err)
	}
	close(fake.block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}
