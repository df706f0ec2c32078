package destinations

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v4"

	"github.com/esmd-dev/esmd/event"
)

func TestNew(t *testing.T) {
	deps := Deps{SQS: &fakeSQS{}, SNS: &fakeSNS{}, S3: &fakeS3{}}
	tests := []struct {
		target string
		deps   Deps
		want   string // the concrete type, or "" for ErrInvalidTarget
	}{
		{"arn:aws:sqs:us-east-1:000000000000:orders-failures", deps, "*destinations.SQS"},
		{"arn:aws:sqs:eu-west-1:000000000000:orders.fifo", deps, "*destinations.SQS"},
		{"arn:aws:sns:us-east-1:000000000000:orders-failures", deps, "*destinations.SNS"},
		{"arn:aws:s3:::failure-bucket", deps, "*destinations.S3"},
		{"file:///var/log/esmd/failures.jsonl", deps, "*destinations.File"},
		{"file://failures.jsonl", deps, "*destinations.File"},
		{"http://127.0.0.1:8080/failures", deps, "*destinations.HTTP"},
		{"https://user:secret@example.com/hook", deps, "*destinations.HTTP"},

		{"arn:aws:sqs:us-east-1:000000000000:orders", Deps{}, ""},
		{"arn:aws:sns:us-east-1:000000000000:orders", Deps{}, ""},
		{"arn:aws:s3:::bucket", Deps{}, ""},
		{"arn:aws:sqs:us-east-1::orders", deps, ""},
		{"arn:aws:sqs:us-east-1:000000000000:", deps, ""},
		{"arn:aws:sns:us-east-1:000000000000:topic:subscription-id", deps, ""},
		{"arn:aws:s3:::bucket/prefix", deps, ""},
		{"arn:aws:s3:us-east-1:000000000000:bucket", deps, ""},
		{"arn:aws:lambda:us-east-1:000000000000:function:f", deps, ""},
		{"arn:aws:sqs", deps, ""},
		{"file://", deps, ""},
		{"file:///var/log/", deps, ""},
		{"http://", deps, ""},
		{"kafka://broker:9092/topic", Deps{}, "*destinations.Kafka"},
		{"kafka://b1:9092,b2:9093,[::1]:9094/orders.failures_v-1", Deps{}, "*destinations.Kafka"},
		{"nats://127.0.0.1:4222/esmd.failures", Deps{}, "*destinations.NATS"},
		{"nats://nats.internal/failures", Deps{}, "*destinations.NATS"},
		{"nats://user:secret@a:4222,b:4223/failures", Deps{}, "*destinations.NATS"},

		{"kafka://broker/topic", deps, ""},
		{"kafka://broker:9092/", deps, ""},
		{"kafka://broker:9092", deps, ""},
		{"kafka://:9092/topic", deps, ""},
		{"kafka:///topic", deps, ""},
		{"kafka://b:9092/to pic", deps, ""},
		{"kafka://b:9092,/topic", deps, ""},
		{"nats://127.0.0.1:4222/", deps, ""},
		{"nats://127.0.0.1:4222/failures.*", deps, ""},
		{"nats://127.0.0.1:4222/failures.>", deps, ""},
		{"nats://127.0.0.1:4222/a..b", deps, ""},
		{"nats://user:secret@127.0.0.1:4222/a b", deps, ""},
		{"nats:///failures", deps, ""},
		{"stan://127.0.0.1:4222/failures", deps, ""},
		{"orders-failures", deps, ""},
		{"", deps, ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			d, err := New(t.Context(), tt.target, tt.deps)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidTarget) {
					t.Fatalf("New(%q) = %T, %v; want ErrInvalidTarget", tt.target, d, err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.target, err)
			}
			if got := fmt.Sprintf("%T", d); got != tt.want {
				t.Errorf("New(%q) is %s, want %s", tt.target, got, tt.want)
			}
		})
	}
}

// isPermanent reports whether the engine's backoff would stop on err.
func isPermanent(err error) bool {
	var p *backoff.PermanentError
	return errors.As(err, &p)
}

// paddedFailure returns testFailure with its function ARN padded so that its
// JSON is exactly n bytes long.
func paddedFailure(t *testing.T, n int) *event.Failure {
	t.Helper()
	f := testFailure()
	b, err := f.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if n < len(b) {
		t.Fatalf("cannot pad %d bytes down to %d", len(b), n)
	}
	f.FunctionARN += strings.Repeat("x", n-len(b))
	if b, _ := f.MarshalJSON(); len(b) != n {
		t.Fatalf("padded failure is %d bytes, want %d", len(b), n)
	}
	return f
}
