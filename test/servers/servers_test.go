package servers

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

func TestMain(m *testing.M) { Main(m) }

func TestStartersShareOneServer(t *testing.T) {
	tests := []struct {
		name  string
		start func(testing.TB) string
	}{
		{"kinesis-mock", KinesisMock},
		{"kinesalite", Kinesalite},
		{"moto", Moto},
		{"nats", NATS},
		{"kafka", func(t testing.TB) string { return Kafka(t)[0] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.start(t)
			b := tc.start(t)
			if a == "" || a != b {
				t.Fatalf("second call returned %q, first %q; want the same non-empty address", b, a)
			}
		})
	}
}

func TestCreateStreamOnBothKinesisServers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) string
	}{{"kinesis-mock", KinesisMock}, {"kinesalite", Kinesalite}} {
		t.Run(tc.name, func(t *testing.T) {
			ep := tc.start(t)
			name := UniqueName("s")
			arn := CreateStream(t, ep, name, 2)
			want := "arn:aws:kinesis:us-east-1:000000000000:stream/" + name
			if arn != want {
				t.Fatalf("arn = %q, want %q", arn, want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := KinesisClient(ep).ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Shards) != 2 {
				t.Fatalf("got %d shards, want 2", len(out.Shards))
			}
		})
	}
}

func TestCreateQueueTopicBucketTable(t *testing.T) {
	ep := Moto(t)
	q := UniqueName("q")
	url, arn := CreateQueue(t, ep, q, map[string]string{"VisibilityTimeout": "5"})
	if want := "arn:aws:sqs:us-east-1:000000000000:" + q; arn != want {
		t.Errorf("queue arn = %q, want %q", arn, want)
	}
	if url == "" {
		t.Error("empty queue url")
	}
	topic := UniqueName("t")
	if got, want := CreateTopic(t, ep, topic), "arn:aws:sns:us-east-1:000000000000:"+topic; got != want {
		t.Errorf("topic arn = %q, want %q", got, want)
	}
	CreateBucket(t, ep, UniqueName("b"))
	table := UniqueName("tbl")
	sa := CreateTable(t, ep, table)
	if want := "arn:aws:dynamodb:us-east-1:000000000000:table/" + table + "/stream/"; len(sa) <= len(want) || sa[:len(want)] != want {
		t.Errorf("stream arn = %q, want prefix %q", sa, want)
	}
}
