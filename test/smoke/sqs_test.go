package smoke

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/esmd-dev/esmd/test/servers"
)

// receive calls ReceiveMessage the way esmd's SQS poller does: up to 10
// messages, all system and message attributes.
func receive(t *testing.T, c *sqs.Client, url string, wait int32) []sqstypes.Message {
	t.Helper()
	out, err := c.ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(url),
		MaxNumberOfMessages:         10,
		WaitTimeSeconds:             wait,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

func bodies(ms []sqstypes.Message) []string {
	var s []string
	for _, m := range ms {
		s = append(s, aws.ToString(m.Body))
	}
	return s
}

// TestSQSSendReceiveDelete covers send with string and binary message
// attributes, receive with every attribute, the receive count, visibility
// changes (single and batch) and DeleteMessageBatch with a bad handle.
func TestSQSSendReceiveDelete(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	c := servers.SQSClient(ep)
	url, _ := servers.CreateQueue(t, ep, servers.UniqueName("smoke"), map[string]string{"VisibilityTimeout": "30"})

	before := time.Now().UnixMilli()
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(url),
		MessageBody: aws.String(`{"hello":"world"}`),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String("greeting")},
			"blob": {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 255}},
			"n":    {DataType: aws.String("Number"), StringValue: aws.String("42")},
		},
	})
	if err != nil {
		t.Fatalf("SendMessage: %v", err) // the SDK also checks MD5OfMessageBody/Attributes
	}
	after := time.Now().UnixMilli()

	ms := receive(t, c, url, 0)
	if len(ms) != 1 {
		t.Fatalf("received %d messages, want 1", len(ms))
	}
	m := ms[0]
	if aws.ToString(m.MessageId) != aws.ToString(sent.MessageId) || aws.ToString(m.Body) != `{"hello":"world"}` || aws.ToString(m.MD5OfBody) != aws.ToString(sent.MD5OfMessageBody) {
		t.Errorf("message = id %q body %q md5 %q", aws.ToString(m.MessageId), aws.ToString(m.Body), aws.ToString(m.MD5OfBody))
	}
	if a := m.MessageAttributes["kind"]; aws.ToString(a.DataType) != "String" || aws.ToString(a.StringValue) != "greeting" {
		t.Errorf("attribute kind = %+v", a)
	}
	if a := m.MessageAttributes["blob"]; aws.ToString(a.DataType) != "Binary" || !slices.Equal(a.BinaryValue, []byte{0, 1, 2, 255}) {
		t.Errorf("attribute blob = %+v", a)
	}
	if a := m.MessageAttributes["n"]; aws.ToString(a.DataType) != "Number" || aws.ToString(a.StringValue) != "42" {
		t.Errorf("attribute n = %+v", a)
	}
	if aws.ToString(m.MD5OfMessageAttributes) != aws.ToString(sent.MD5OfMessageAttributes) {
		t.Errorf("MD5OfMessageAttributes = %q, want %q", aws.ToString(m.MD5OfMessageAttributes), aws.ToString(sent.MD5OfMessageAttributes))
	}
	ts, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
	if err != nil || ts < before-1000 || ts > after+1000 {
		t.Errorf("SentTimestamp = %q, want a time in ms between %d and %d", m.Attributes["SentTimestamp"], before, after)
	}
	for _, k := range []string{"ApproximateFirstReceiveTimestamp", "SenderId"} {
		if m.Attributes[k] == "" {
			t.Errorf("attribute %s missing; have %v", k, m.Attributes)
		}
	}
	if got := m.Attributes["ApproximateReceiveCount"]; got != "1" {
		t.Errorf("first ApproximateReceiveCount = %q, want 1", got)
	}

	// In flight: invisible.
	if ms := receive(t, c, url, 0); len(ms) != 0 {
		t.Fatalf("in-flight message received again: %v", bodies(ms))
	}
	// ChangeMessageVisibility 0 makes it visible again, and the count goes up.
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatalf("ChangeMessageVisibility: %v", err)
	}
	ms = receive(t, c, url, 0)
	if len(ms) != 1 || ms[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("after ChangeMessageVisibility(0): %d messages, receive count %q; want 1 and 2", len(ms), ms[0].Attributes["ApproximateReceiveCount"])
	}

	// ChangeMessageVisibilityBatch with one good and one bad handle.
	cb, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.ChangeMessageVisibilityBatchRequestEntry{
		{Id: aws.String("ok"), ReceiptHandle: ms[0].ReceiptHandle, VisibilityTimeout: 0},
		{Id: aws.String("bad"), ReceiptHandle: aws.String("not-a-receipt-handle"), VisibilityTimeout: 0},
	}})
	if err != nil {
		t.Fatalf("ChangeMessageVisibilityBatch: %v", err)
	}
	if len(cb.Successful) != 1 || aws.ToString(cb.Successful[0].Id) != "ok" || len(cb.Failed) != 1 ||
		aws.ToString(cb.Failed[0].Id) != "bad" || aws.ToString(cb.Failed[0].Code) != "ReceiptHandleIsInvalid" || !cb.Failed[0].SenderFault {
		t.Fatalf("ChangeMessageVisibilityBatch: ok %+v failed %+v; want [ok] and [bad ReceiptHandleIsInvalid, sender fault]", cb.Successful, cb.Failed)
	}
	ms = receive(t, c, url, 0)
	if len(ms) != 1 || ms[0].Attributes["ApproximateReceiveCount"] != "3" {
		t.Fatalf("after ChangeMessageVisibilityBatch(0): %d messages; want 1 with receive count 3", len(ms))
	}

	// DeleteMessageBatch: the good handle succeeds, the bad one fails.
	db, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.DeleteMessageBatchRequestEntry{
		{Id: aws.String("good"), ReceiptHandle: ms[0].ReceiptHandle},
		{Id: aws.String("bad"), ReceiptHandle: aws.String("not-a-receipt-handle")},
	}})
	if err != nil {
		t.Fatalf("DeleteMessageBatch: %v", err)
	}
	var okIDs, failIDs []string
	for _, e := range db.Successful {
		okIDs = append(okIDs, aws.ToString(e.Id))
	}
	for _, e := range db.Failed {
		failIDs = append(failIDs, aws.ToString(e.Id)+"="+aws.ToString(e.Code))
		if !e.SenderFault {
			t.Errorf("failed entry %s: SenderFault false", aws.ToString(e.Id))
		}
	}
	t.Logf("DeleteMessageBatch: ok %v failed %v", okIDs, failIDs)
	if !slices.Equal(okIDs, []string{"good"}) || !slices.Equal(failIDs, []string{"bad=ReceiptHandleIsInvalid"}) {
		t.Errorf("DeleteMessageBatch: ok %v failed %v; want [good] and [bad=ReceiptHandleIsInvalid]", okIDs, failIDs)
	}

	// Deleted: the queue is empty.
	qa, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	for k, want := range map[string]string{"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0", "VisibilityTimeout": "30"} {
		if got := qa.Attributes[k]; got != want {
			t.Errorf("queue attribute %s = %q, want %q", k, got, want)
		}
	}
}

// TestSQSLongPoll checks that WaitTimeSeconds 20 returns as soon as a message
// arrives.
func TestSQSLongPoll(t *testing.T) {
	ep := servers.Moto(t)
	c := servers.SQSClient(ep)
	url, _ := servers.CreateQueue(t, ep, servers.UniqueName("smoke"), nil)
	done := make(chan error, 1)
	go func() {
		timer := time.NewTimer(500 * time.Millisecond)
		defer timer.Stop()
		<-timer.C
		_, err := c.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("late")})
		done <- err
	}()
	start := time.Now()
	ms := receive(t, c, url, 20)
	took := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	if len(ms) != 1 || aws.ToString(ms[0].Body) != "late" || took < 400*time.Millisecond || took > 5*time.Second {
		t.Fatalf("long poll returned %v after %s; want [late] after about 0.5 s", bodies(ms), took)
	}
}

// TestSQSRedrive checks that a message received maxReceiveCount times moves
// to the dead-letter queue.
func TestSQSRedrive(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	c := servers.SQSClient(ep)
	dlqURL, dlqARN := servers.CreateQueue(t, ep, servers.UniqueName("dlq"), nil)
	url, _ := servers.CreateQueue(t, ep, servers.UniqueName("src"), map[string]string{
		"VisibilityTimeout": "30",
		"RedrivePolicy":     `{"deadLetterTargetArn":"` + dlqARN + `","maxReceiveCount":"2"}`,
	})
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		ms := receive(t, c, url, 0)
		if len(ms) != 1 {
			t.Fatalf("receive %d: %d messages, want 1", i, len(ms))
		}
		if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: ms[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	if ms := receive(t, c, url, 0); len(ms) != 0 {
		t.Fatalf("third receive got %v; want nothing (moved to the DLQ)", bodies(ms))
	}
	ms := receive(t, c, dlqURL, 0)
	if got := bodies(ms); !slices.Equal(got, []string{"poison"}) {
		t.Fatalf("DLQ holds %v, want [poison]", got)
	}
	t.Logf("DLQ message receive count %q", ms[0].Attributes["ApproximateReceiveCount"])
}

// TestSQSFIFO checks per-group order, group locking, MessageGroupId and
// SequenceNumber attributes and content-based deduplication.
func TestSQSFIFO(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	c := servers.SQSClient(ep)
	url, _ := servers.CreateQueue(t, ep, servers.UniqueName("smoke")+".fifo", map[string]string{
		"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "30",
	})
	send := func(group, body string) *sqs.SendMessageOutput {
		t.Helper()
		out, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), MessageGroupId: aws.String(group)})
		if err != nil {
			t.Fatalf("SendMessage %s/%s: %v", group, body, err)
		}
		return out
	}
	// AWS returns a SequenceNumber for a FIFO send; moto does not (SERVERS.md).
	if first := send("g1", "a1"); first.SequenceNumber != nil {
		t.Errorf("SendMessage on a FIFO queue: SequenceNumber %q; SERVERS.md says moto returns none", aws.ToString(first.SequenceNumber))
	}
	send("g2", "b1")
	send("g1", "a2")
	send("g1", "a3")
	send("g1", "a1") // same body: dropped by content-based deduplication
	ms := receive(t, c, url, 0)
	var g1, g2 []string
	for _, m := range ms {
		switch m.Attributes["MessageGroupId"] {
		case "g1":
			g1 = append(g1, aws.ToString(m.Body))
		case "g2":
			g2 = append(g2, aws.ToString(m.Body))
		default:
			t.Errorf("message %q: MessageGroupId %q", aws.ToString(m.Body), m.Attributes["MessageGroupId"])
		}
		// AWS returns the SequenceNumber attribute on FIFO messages (Lambda
		// passes it on); moto does not (SERVERS.md).
		if sn, ok := m.Attributes["SequenceNumber"]; ok || m.Attributes["MessageDeduplicationId"] == "" {
			t.Errorf("message %q: SequenceNumber %q, MessageDeduplicationId %q; SERVERS.md says moto returns no SequenceNumber and a MessageDeduplicationId", aws.ToString(m.Body), sn, m.Attributes["MessageDeduplicationId"])
		}
	}
	if !slices.Equal(g1, []string{"a1", "a2", "a3"}) || !slices.Equal(g2, []string{"b1"}) {
		t.Fatalf("received g1 %v g2 %v; want [a1 a2 a3] and [b1]", g1, g2)
	}
	// Group g1 is locked while its messages are in flight.
	send("g1", "a4")
	if ms := receive(t, c, url, 0); len(ms) != 0 {
		t.Fatalf("received %v while group g1 is in flight; want nothing", bodies(ms))
	}
}

// TestSQSReceiveVisibilityOverride checks that ReceiveMessage's
// VisibilityTimeout overrides the queue's.
func TestSQSReceiveVisibilityOverride(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	c := servers.SQSClient(ep)
	url, _ := servers.CreateQueue(t, ep, servers.UniqueName("smoke"), map[string]string{"VisibilityTimeout": "30"})
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), VisibilityTimeout: 1})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("ReceiveMessage: %d messages, %v", len(out.Messages), err)
	}
	timer := time.NewTimer(1500 * time.Millisecond)
	<-timer.C
	if ms := receive(t, c, url, 0); len(ms) != 1 {
		t.Fatalf("after the 1 s override expired: %d messages, want 1", len(ms))
	}
}

// TestSQSErrors checks the error codes esmd branches on.
func TestSQSErrors(t *testing.T) {
	ctx := ctx(t)
	c := servers.SQSClient(servers.Moto(t))
	_, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(servers.Moto(t) + "/000000000000/no-such-queue")})
	var qne *sqstypes.QueueDoesNotExist
	var ae smithy.APIError
	if !errors.As(err, &qne) {
		errors.As(err, &ae)
		t.Fatalf("ReceiveMessage on a missing queue: %v (%T); want QueueDoesNotExist", err, ae)
	}
}

// TestSQSEmptyLongPollWaits checks that a long poll on an empty queue waits
// for WaitTimeSeconds, and that the older AttributeNames parameter still
// selects the system attributes.
func TestSQSEmptyLongPollWaits(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	c := servers.SQSClient(ep)
	url, _ := servers.CreateQueue(t, ep, servers.UniqueName("smoke"), nil)
	start := time.Now()
	if ms := receive(t, c, url, 1); len(ms) != 0 {
		t.Fatalf("empty queue returned %v", bodies(ms))
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("WaitTimeSeconds 1 on an empty queue returned after %s, want about 1 s", took)
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(url),
		//lint:ignore SA1019 this checks that the server still honours the older parameter
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("ReceiveMessage: %d messages, %v", len(out.Messages), err)
	}
	if a := out.Messages[0].Attributes; a["SentTimestamp"] == "" || a["ApproximateReceiveCount"] != "1" {
		t.Fatalf("AttributeNames All: attributes %v, want SentTimestamp and ApproximateReceiveCount 1", a)
	}
}
