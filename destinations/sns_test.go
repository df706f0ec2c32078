package destinations

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/go-cmp/cmp"
)

const topicARN = "arn:aws:sns:ap-southeast-2:111122223333:orders-failures"

func TestSNSSend(t *testing.T) {
	fake := &fakeSNS{}
	d, err := NewSNS(topicARN, fake, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(t.Context(), testFailure()); err != nil {
		t.Fatal(err)
	}
	if len(fake.inputs) != 1 {
		t.Fatalf("%d publishes, want 1", len(fake.inputs))
	}
	in := fake.inputs[0]
	if aws.ToString(in.TopicArn) != topicARN {
		t.Errorf("TopicArn %q, want %q", aws.ToString(in.TopicArn), topicARN)
	}
	if diff := cmp.Diff(string(goldenBytes(t, "kinesis_failure.golden.json")), aws.ToString(in.Message)); diff != "" {
		t.Errorf("message differs from the golden file (-want +got):\n%s", diff)
	}
	if in.MessageGroupId != nil || in.Subject != nil || len(in.MessageAttributes) != 0 {
		t.Errorf("unexpected group %v, subject %v or attributes %v", in.MessageGroupId, in.Subject, in.MessageAttributes)
	}
	if fake.regions[0] != "ap-southeast-2" {
		t.Errorf("published in region %q, want the ARN's ap-southeast-2", fake.regions[0])
	}
}

func TestSNSErrors(t *testing.T) {
	t.Run("publish failure is transient", func(t *testing.T) {
		boom := errors.New("throttled")
		d, _ := NewSNS(topicARN, &fakeSNS{err: boom}, nil)
		err := d.Send(t.Context(), testFailure())
		if !errors.Is(err, boom) || isPermanent(err) {
			t.Fatalf("Send = %v; want a transient wrap of %v", err, boom)
		}
		if want := "destination sns orders-failures: publish: throttled"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	})
	for _, tt := range []struct {
		size    int
		wantErr bool
	}{{SNSMaxMessage, false}, {SNSMaxMessage + 1, true}} {
		t.Run("size", func(t *testing.T) {
			fake := &fakeSNS{}
			d, _ := NewSNS(topicARN, fake, nil)
			err := d.Send(t.Context(), paddedFailure(t, tt.size))
			if !tt.wantErr {
				if err != nil || len(fake.inputs) != 1 {
					t.Fatalf("Send of %d bytes = %v with %d publishes; want delivered", tt.size, err, len(fake.inputs))
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || !isPermanent(err) || len(fake.inputs) != 0 {
				t.Fatalf("Send of %d bytes = %v with %d publishes; want a permanent ErrTooLarge and none", tt.size, err, len(fake.inputs))
			}
		})
	}
}

func TestSNSFIFO(t *testing.T) {
	fake := &fakeSNS{}
	d, _ := NewSNS("arn:aws:sns:us-east-1:111122223333:failures.fifo", fake, nil)
	if err := d.Send(t.Context(), testFailure()); err != nil {
		t.Fatal(err)
	}
	in := fake.inputs[0]
	if aws.ToString(in.MessageGroupId) != "a1b2c3d4-0000-4000-8000-0123456789ab/shardId-000000000001" || len(aws.ToString(in.MessageDeduplicationId)) != 64 {
		t.Errorf("group %q, dedup %q", aws.ToString(in.MessageGroupId), aws.ToString(in.MessageDeduplicationId))
	}
}
