package servers

import (
	"context"
	"fmt"
	"net"
	"strings"
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

// kinesisServers are the two Kinesis servers the harness starts.
var kinesisServers = []struct {
	name  string
	start func(testing.TB) string
}{{"kinesis-mock", KinesisMock}, {"kinesalite", Kinesalite}}

func TestCreateStreamOnBothKinesisServers(t *testing.T) {
	for _, tc := range kinesisServers {
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

// TestKinesisServersSurviveAbortedRequests: a client that resets its
// connection halfway through a request body must not bring the shared
// server down. kinesalite throws from its request error listener and so
// exited on such a reset, as the chaos tests' fault proxy causes; the
// harness's Node preload keeps it up.
func TestKinesisServersSurviveAbortedRequests(t *testing.T) {
	for _, tc := range kinesisServers {
		t.Run(tc.name, func(t *testing.T) {
			ep := tc.start(t)
			addr := strings.TrimPrefix(ep, "http://")
			var conns []net.Conn
			for range 3 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				_, err = fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.1\r\n"+
					"X-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 100\r\n\r\n{\"Limit\":", addr)
				if err != nil {
					t.Fatal(err)
				}
			}
			// Let the server read the heads and wait for the rest, then
			// reset every connection.
			time.Sleep(200 * time.Millisecond)
			for _, c := range conns {
				_ = c.(*net.TCPConn).SetLinger(0)
				_ = c.Close()
			}
			time.Sleep(200 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := KinesisClient(ep).ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
				t.Fatalf("the server after three aborted requests: %v", err)
			}
		})
	}
}
