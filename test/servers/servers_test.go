package servers

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"
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

// TestMotoSQSUnderConcurrentCalls pins what the harness's moto shim
// (moto_shim.py) adds: moto 5.2.5 alone hands one message to two concurrent
// receivers, and concurrent deletes and sends rebuild the queue's list over
// each other, bringing deleted messages back or losing sent ones.
func TestMotoSQSUnderConcurrentCalls(t *testing.T) {
	t.Parallel()
	const n, receivers, senders, sends = 400, 8, 4, 100
	ep := Moto(t)
	url, _ := CreateQueue(t, ep, UniqueName("conc"), map[string]string{"VisibilityTimeout": "60"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := SQSClient(ep)
	sendN := func(prefix string, count int) error {
		for i := 0; i < count; i += 10 {
			var entries []sqstypes.SendMessageBatchRequestEntry
			for j := i; j < min(i+10, count); j++ {
				entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
					Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(fmt.Sprintf("%s%04d", prefix, j)),
				})
			}
			out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
			if err != nil {
				return err
			}
			if len(out.Failed) > 0 {
				return fmt.Errorf("send: %d failed", len(out.Failed))
			}
		}
		return nil
	}
	if err := sendN("m", n); err != nil {
		t.Fatal(err)
	}

	// Every receiver takes batches until the queue is empty.
	var mu sync.Mutex
	got := map[string]int{}
	var handles []string
	var g errgroup.Group
	for range receivers {
		g.Go(func() error {
			for {
				out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
				if err != nil {
					return err
				}
				if len(out.Messages) == 0 {
					return nil
				}
				mu.Lock()
				for _, m := range out.Messages {
					got[aws.ToString(m.Body)]++
					handles = append(handles, aws.ToString(m.ReceiptHandle))
				}
				mu.Unlock()
			}
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(got) != n || len(handles) != n {
		var twice []string
		for b, k := range got {
			if k > 1 {
				twice = append(twice, b)
			}
		}
		slices.Sort(twice)
		t.Fatalf("%d receives of %d distinct messages, want %d of %d; received more than once: %v", len(handles), len(got), n, n, twice)
	}

	// Delete every received message while new ones are sent: the queue must
	// end with exactly the new ones.
	for i := range receivers {
		g.Go(func() error {
			for j := i * 10; j < len(handles); j += receivers * 10 {
				var entries []sqstypes.DeleteMessageBatchRequestEntry
				for k, h := range handles[j:min(j+10, len(handles))] {
					entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(k)), ReceiptHandle: aws.String(h)})
				}
				out, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
				if err != nil {
					return err
				}
				if len(out.Failed) > 0 {
					return fmt.Errorf("delete: %d failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
				}
			}
			return nil
		})
	}
	for i := range senders {
		g.Go(func() error { return sendN(fmt.Sprintf("s%d-", i), sends) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	visible := attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]
	inFlight := attrs.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
	if want := strconv.Itoa(senders * sends); visible != want || inFlight != "0" {
		t.Fatalf("after the deletes and sends the queue holds %s visible and %s in flight, want %s and 0", visible, inFlight, want)
	}
}
