package sqs

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

// motoQueue creates a queue on moto and returns a client, the queue's URL
// and a Queue on it found by ARN.
func motoQueue(t testing.TB, name string, attrs map[string]string) (*awssqs.Client, string, *Queue) {
	t.Helper()
	ep := servers.Moto(t)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName(name), attrs)
	c := servers.SQSClient(ep)
	q, err := New(c, Config{QueueARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	return c, url, q
}

func sendBatch(t testing.TB, c *awssqs.Client, url string, entries []types.SendMessageBatchRequestEntry) {
	t.Helper()
	for i := 0; i < len(entries); i += 10 {
		chunk := entries[i:min(i+10, len(entries))]
		out, err := c.SendMessageBatch(t.Context(), &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: chunk})
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		if len(out.Failed) > 0 {
			t.Fatalf("send: %d failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
		}
	}
}

func decode(t *testing.T, recs []event.Record) []events.SQSMessage {
	t.Helper()
	var ev events.SQSEvent
	if err := json.Unmarshal(event.AppendEvent(nil, recs), &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Records
}

func TestReceiveEncodesEverything(t *testing.T) {
	c, url, q := motoQueue(t, "recv", nil)
	sent, err := c.SendMessage(t.Context(), &awssqs.SendMessageInput{
		QueueUrl:    aws.String(url),
		MessageBody: aws.String(`{"order":1,"note":"<é>"}`),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String("order")},
			"blob": {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 0xff}},
			"n":    {DataType: aws.String("Number"), StringValue: aws.String("42")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	recs, err := q.Receive(t.Context(), 10, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("a receive with a message waiting took %s", took)
	}
	m := decode(t, recs)[0]
	if m.MessageId != aws.ToString(sent.MessageId) || m.Body != `{"order":1,"note":"<é>"}` || m.Md5OfBody != aws.ToString(sent.MD5OfMessageBody) ||
		m.Md5OfMessageAttributes != aws.ToString(sent.MD5OfMessageAttributes) || m.EventSource != "aws:sqs" ||
		m.EventSourceARN != q.cfg.QueueARN || m.AWSRegion != "us-east-1" || m.ReceiptHandle != recs[0].Receipt {
		t.Errorf("message = %+v", m)
	}
	if m.Attributes["ApproximateReceiveCount"] != "1" || m.Attributes["SenderId"] == "" || m.Attributes["ApproximateFirstReceiveTimestamp"] == "" {
		t.Errorf("attributes = %v", m.Attributes)
	}
	ts, _ := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
	if !recs[0].Arrival.Equal(time.UnixMilli(ts)) || recs[0].ID != m.MessageId || recs[0].Key != "" {
		t.Errorf("record Arrival %v ID %q Key %q", recs[0].Arrival, recs[0].ID, recs[0].Key)
	}
	want := map[string]events.SQSMessageAttribute{
		"kind": {DataType: "String", StringValue: aws.String("order"), StringListValues: []string{}, BinaryListValues: [][]byte{}},
		"blob": {DataType: "Binary", BinaryValue: []byte{0, 1, 2, 0xff}, StringListValues: []string{}, BinaryListValues: [][]byte{}},
		"n":    {DataType: "Number", StringValue: aws.String("42"), StringListValues: []string{}, BinaryListValues: [][]byte{}},
	}
	got, _ := json.Marshal(m.MessageAttributes)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("message attributes\n got %s\nwant %s", got, exp)
	}
	n, err := q.Delete(t.Context(), recs)
	if n != 1 || err != nil {
		t.Fatalf("Delete = %d, %v", n, err)
	}
	// An empty queue: the long poll waits its whole second.
	start = time.Now()
	recs, err = q.Receive(t.Context(), 10, time.Second)
	if took := time.Since(start); err != nil || len(recs) != 0 || took < 900*time.Millisecond {
		t.Fatalf("empty receive: %d records, %v, after %s; want none after 1 s", len(recs), err, took)
	}
}

func TestFIFOReceive(t *testing.T) {
	ep := servers.Moto(t)
	name := servers.UniqueName("fifo") + ".fifo"
	url, arn := servers.CreateQueue(t, ep, name, map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	c := servers.SQSClient(ep)
	q, err := New(c, Config{QueueARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	var entries []types.SendMessageBatchRequestEntry
	for i := range 4 {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(fmt.Sprintf("b%d", i)), MessageGroupId: aws.String("g1")})
	}
	sendBatch(t, c, url, entries)
	recs, err := q.Receive(t.Context(), 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for i, m := range decode(t, recs) {
		bodies = append(bodies, m.Body)
		if m.Attributes["MessageGroupId"] != "g1" || m.Attributes["MessageDeduplicationId"] == "" || recs[i].Key != "g1" {
			t.Errorf("%s: attributes %v, Key %q", m.Body, m.Attributes, recs[i].Key)
		}
	}
	if !slices.Equal(bodies, []string{"b0", "b1", "b2", "b3"}) {
		t.Fatalf("received %v", bodies)
	}
}

func TestDeleteAndVisibility(t *testing.T) {
	c, url, q := motoQueue(t, "del", map[string]string{"VisibilityTimeout": "30"})
	var entries []types.SendMessageBatchRequestEntry
	for i := range 25 {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(fmt.Sprintf("d%02d", i))})
	}
	sendBatch(t, c, url, entries)
	var recs []event.Record
	for len(recs) < 25 {
		got, err := q.Receive(t.Context(), 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatalf("received %d of 25", len(recs))
		}
		recs = append(recs, got...)
	}
	vt, err := q.VisibilityTimeout(t.Context())
	if err != nil || vt != 30*time.Second {
		t.Fatalf("VisibilityTimeout = %s, %v; want 30s", vt, err)
	}
	// Five back to the queue at once; their receive count rises.
	if err := q.SetVisibility(t.Context(), recs[:5], 0); err != nil {
		t.Fatal(err)
	}
	again, err := q.Receive(t.Context(), 10, time.Second)
	if err != nil || len(again) != 5 {
		t.Fatalf("after SetVisibility 0: %d records, %v; want 5", len(again), err)
	}
	for _, m := range decode(t, again) {
		if m.Attributes["ApproximateReceiveCount"] != "2" {
			t.Errorf("%s: receive count %s, want 2", m.Body, m.Attributes["ApproximateReceiveCount"])
		}
	}
	n, err := q.Delete(t.Context(), append(slices.Clone(recs[5:]), again...))
	if n != 25 || err != nil {
		t.Fatalf("Delete = %d, %v; want 25", n, err)
	}
	attrs, err := c.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	if attrs.Attributes["ApproximateNumberOfMessages"] != "0" || attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("queue not empty: %v", attrs.Attributes)
	}
	// A bad handle is reported by messageId.
	bad := []event.Record{{ID: "m-bad", Receipt: "not-a-receipt-handle"}}
	n, err = q.Delete(t.Context(), bad)
	var de *mapping.DeleteError
	if n != 0 || !errors.As(err, &de) || de.Failed["m-bad"] == "" {
		t.Fatalf("Delete of a bad handle = %d, %v; want a DeleteError naming m-bad", n, err)
	}
	if err := q.SetVisibility(t.Context(), bad, 0); err == nil {
		t.Fatal("SetVisibility of a bad handle succeeded")
	}
}

func TestMissingQueueIsGone(t *testing.T) {
	ep := servers.Moto(t)
	q, err := New(servers.SQSClient(ep), Config{QueueARN: "arn:aws:sqs:us-east-1:123456789012:" + servers.UniqueName("missing")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Receive(t.Context(), 10, 0); !errors.Is(err, mapping.ErrSourceGone) {
		t.Fatalf("Receive = %v, want ErrSourceGone", err)
	}
	if _, err := q.VisibilityTimeout(t.Context()); !errors.Is(err, mapping.ErrSourceGone) {
		t.Fatalf("VisibilityTimeout = %v, want ErrSourceGone", err)
	}
}

func TestNewRejectsBadARNs(t *testing.T) {
	for _, arn := range []string{"", "arn:aws:kinesis:us-east-1:1:stream/x", "arn:aws:sqs:us-east-1:1:", "queue"} {
		if _, err := New(&fakeAPI{}, Config{QueueARN: arn}); err == nil {
			t.Errorf("New(%q) succeeded", arn)
		}
	}
}
