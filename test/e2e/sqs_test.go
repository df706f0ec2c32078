package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/esmd-dev/esmd/test/servers"
)

// sqsYAML renders an esmd configuration with one SQS mapping to the sink;
// extra is indented into the mapping.
func sqsYAML(motoEP, dir, queueARN, sinkURL, extra string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `aws:
  region: us-east-1
  credentials: {accessKeyId: test, secretAccessKey: test}
  endpoints:
    sqs: %s
functions:
  sink:
    http: {url: %q, timeout: 30s}
checkpoints:
  file: {path: %s}
server: {listen: "off"}
logging: {level: debug}
shutdownTimeout: 20s
mappings:
  - EventSourceArn: %s
    FunctionName: sink
`, motoEP, sinkURL, filepath.Join(dir, "state", "checkpoints.db"), queueARN)
	for _, line := range strings.Split(strings.TrimSpace(extra), "\n") {
		if line != "" {
			b.WriteString("    " + line + "\n")
		}
	}
	return b.String()
}

// sqsRecords decodes an invocation's event as Lambda's SQS event.
func sqsRecords(t *testing.T, body []byte) []events.SQSMessage {
	t.Helper()
	var ev events.SQSEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Errorf("event is not an SQS event: %v", err)
	}
	return ev.Records
}

// sqsCalls returns the messages of every invocation the sink received, in
// order of arrival.
func sqsCalls(t *testing.T, s *sink) [][]events.SQSMessage {
	t.Helper()
	var out [][]events.SQSMessage
	for _, c := range s.snapshot() {
		out = append(out, sqsRecords(t, c.Body))
	}
	return out
}

// sendAll sends entries to the queue in SendMessageBatch calls of ten,
// several at once, or in order when ordered is set (FIFO). It fails t on any
// failed entry.
func sendAll(t *testing.T, ep, url string, entries []sqstypes.SendMessageBatchRequestEntry, ordered bool) {
	t.Helper()
	if err := feed(context.Background(), ep, url, entries, ordered, 0, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// feed sends entries like sendAll, but when window is positive it keeps at
// most window messages sent and not yet done (as done reports), so that the
// queue stays shallow: moto's SQS spends time proportional to the queue's
// depth on every receive and delete (test/SERVERS.md).
func feed(ctx context.Context, ep, url string, entries []sqstypes.SendMessageBatchRequestEntry, ordered bool, window int, done func() int) error {
	c := servers.SQSClient(ep)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	if ordered {
		g.SetLimit(1)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(entries); i += 10 {
		for window > 0 && i-done() > window {
			select {
			case <-tick.C:
			case <-gctx.Done():
				return g.Wait()
			}
		}
		chunk := slices.Clone(entries[i:min(i+10, len(entries))])
		for j := range chunk {
			chunk[j].Id = aws.String(strconv.Itoa(j))
		}
		g.Go(func() error {
			out, err := c.SendMessageBatch(gctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: chunk})
			if err != nil {
				return err
			}
			if len(out.Failed) > 0 {
				return fmt.Errorf("%d entries failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
			}
			return nil
		})
	}
	return g.Wait()
}

func bodyEntries(prefix string, n int) []sqstypes.SendMessageBatchRequestEntry {
	out := make([]sqstypes.SendMessageBatchRequestEntry, n)
	for i := range out {
		out[i] = sqstypes.SendMessageBatchRequestEntry{MessageBody: aws.String(fmt.Sprintf("%s%05d", prefix, i))}
	}
	return out
}

// queueDepth returns the queue's visible and in-flight message counts.
func queueDepth(t *testing.T, ep, url string) (visible, inFlight int) {
	t.Helper()
	out, err := servers.SQSClient(ep).GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		t.Fatalf("queue attributes: %v", err)
	}
	visible, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	inFlight, _ = strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return visible, inFlight
}

func queueEmpty(t *testing.T, ep, url string) func() bool {
	return func() bool {
		v, f := queueDepth(t, ep, url)
		return v == 0 && f == 0
	}
}

func TestSQSEventShape(t *testing.T) {
	t.Parallel()
	ep := servers.Moto(t)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName("shape"), nil)
	c := servers.SQSClient(ep)
	type sent struct {
		body  string
		attrs map[string]sqstypes.MessageAttributeValue
		out   *sqs.SendMessageOutput
	}
	msgs := []*sent{
		{body: `{"order":1,"note":"<é & 日本>"}`, attrs: map[string]sqstypes.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String("order")},
			"blob": {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 0xfe, 0xff}},
			"n":    {DataType: aws.String("Number"), StringValue: aws.String("-1.5")},
		}},
		{body: "plain text\nwith a newline"},
	}
	before := time.Now().Add(-time.Second).UnixMilli()
	for _, m := range msgs {
		out, err := c.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(m.body), MessageAttributes: m.attrs})
		if err != nil {
			t.Fatal(err)
		}
		m.out = out
	}
	s := newSink(t, nil)
	dir := t.TempDir()
	startESMD(t, dir, sqsYAML(ep, dir, arn, s.srv.URL, "BatchSize: 10"))
	waitFor(t, 30*time.Second, "the queue to be empty", func() bool { return len(s.snapshot()) > 0 && queueEmpty(t, ep, url)() })

	var got []events.SQSMessage
	for _, c := range sqsCalls(t, s) {
		got = append(got, c...)
	}
	if len(got) != 2 {
		t.Fatalf("%d messages delivered, want 2", len(got))
	}
	for i, m := range msgs {
		r := got[i]
		if r.MessageId != aws.ToString(m.out.MessageId) || r.Body != m.body || r.Md5OfBody != aws.ToString(m.out.MD5OfMessageBody) ||
			r.Md5OfMessageAttributes != aws.ToString(m.out.MD5OfMessageAttributes) || r.ReceiptHandle == "" ||
			r.EventSource != "aws:sqs" || r.EventSourceARN != arn || r.AWSRegion != "us-east-1" {
			t.Errorf("message %d = %+v", i, r)
		}
		sentAt, _ := strconv.ParseInt(r.Attributes["SentTimestamp"], 10, 64)
		if r.Attributes["ApproximateReceiveCount"] != "1" || r.Attributes["SenderId"] == "" || sentAt < before ||
			r.Attributes["ApproximateFirstReceiveTimestamp"] == "" || len(r.Attributes) != 4 {
			t.Errorf("message %d attributes = %v", i, r.Attributes)
		}
		if len(r.MessageAttributes) != len(m.attrs) {
			t.Errorf("message %d: %d message attributes, want %d", i, len(r.MessageAttributes), len(m.attrs))
		}
		for k, a := range m.attrs {
			g := r.MessageAttributes[k]
			if g.DataType != aws.ToString(a.DataType) || aws.ToString(g.StringValue) != aws.ToString(a.StringValue) ||
				!bytes.Equal(g.BinaryValue, a.BinaryValue) || g.StringListValues == nil || g.BinaryListValues == nil {
				t.Errorf("message %d attribute %s = %+v, want %+v", i, k, g, a)
			}
		}
	}
	// The raw JSON has Lambda's list fields, present and empty.
	if body := string(s.snapshot()[0].Body); !strings.Contains(body, `"blob":{"binaryValue":"AAEC/v8=","stringListValues":[],"binaryListValues":[],"dataType":"Binary"}`) {
		t.Errorf("binary attribute not in Lambda's shape: %s", body)
	}
}

func TestSQSStandardQueue20000(t *testing.T) {
	t.Parallel()
	const total = 20000
	ep := servers.Moto(t)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName("std"), map[string]string{"VisibilityTimeout": "120"})
	var mu sync.Mutex
	counts := map[string]int{}
	s := newSink(t, func(c call) (int, string) {
		recs := sqsRecords(t, c.Body)
		// A handler slow enough that 5 pollers (at most 250 messages/s)
		// cannot keep up with what moto can hand out.
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		for _, r := range recs {
			counts[r.Body]++
		}
		mu.Unlock()
		return 200, ""
	})
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(counts)
	}
	dir := t.TempDir()
	p := startESMD(t, dir, sqsYAML(ep, dir, arn, s.srv.URL, "BatchSize: 10"))
	begin := time.Now()
	fed := make(chan error, 1)
	go func() { fed <- feed(t.Context(), ep, url, bodyEntries("s", total), false, 1500, distinct) }()
	waitFor(t, 15*time.Minute, "every message", func() bool { return distinct() == total })
	took := time.Since(begin)
	if err := <-fed; err != nil {
		t.Fatalf("send: %v", err)
	}
	waitFor(t, time.Minute, "the queue to be empty", queueEmpty(t, ep, url))
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, n := range counts {
		dups += n - 1
	}
	t.Logf("%d messages in %s (%.0f/s), %d duplicates, %d invocations, peak concurrency at the function %d",
		total, took, total/took.Seconds(), dups, len(s.snapshot()), s.peakConcurrency())
	if s.peakConcurrency() <= 5 {
		t.Errorf("peak concurrency %d; want more than the initial 5", s.peakConcurrency())
	}
	if !strings.Contains(p.log(), "concurrency changed") {
		t.Errorf("esmd never changed its concurrency")
	}
	if code := p.term(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

func TestSQSPoisonMessageGoesToDLQ(t *testing.T) {
	t.Parallel()
	ep := servers.Moto(t)
	dlqURL, dlqARN := servers.CreateQueue(t, ep, servers.UniqueName("dlq"), nil)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName("src"), map[string]string{
		"VisibilityTimeout": "1",
		"RedrivePolicy":     `{"deadLetterTargetArn":"` + dlqARN + `","maxReceiveCount":"3"}`,
	})
	entries := bodyEntries("ok", 40)
	entries[17].MessageBody = aws.String("poison")
	sendAll(t, ep, url, entries, false)
	var mu sync.Mutex
	poisonCounts := []string{}
	s := newSink(t, func(c call) (int, string) {
		for _, r := range sqsRecords(t, c.Body) {
			if r.Body == "poison" {
				mu.Lock()
				poisonCounts = append(poisonCounts, r.Attributes["ApproximateReceiveCount"])
				mu.Unlock()
				return 500, ""
			}
		}
		return 200, ""
	})
	dir := t.TempDir()
	startESMD(t, dir, sqsYAML(ep, dir, arn, s.srv.URL, "BatchSize: 1"))
	waitFor(t, 60*time.Second, "the poison message in the DLQ", func() bool { v, f := queueDepth(t, ep, dlqURL); return v+f == 1 })
	waitFor(t, 30*time.Second, "the source queue to be empty", queueEmpty(t, ep, url))
	bodies := receiveAll(t, ep, dlqURL, 1, 10*time.Second)
	if !slices.Equal(bodies, []string{"poison"}) {
		t.Fatalf("DLQ holds %v, want [poison]", bodies)
	}
	mu.Lock()
	got := slices.Clone(poisonCounts)
	mu.Unlock()
	if !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("the poison message was delivered with receive counts %v, want [1 2 3]", got)
	}
	ok := map[string]int{}
	for _, c := range sqsCalls(t, s) {
		for _, r := range c {
			if r.Body != "poison" {
				ok[r.Body]++
			}
		}
	}
	if len(ok) != 39 {
		t.Fatalf("%d distinct good messages delivered, want 39", len(ok))
	}
	for b, n := range ok {
		if n != 1 {
			t.Errorf("%s delivered %d times", b, n)
		}
	}
}

func TestSQSReportBatchItemFailures(t *testing.T) {
	t.Parallel()
	ep := servers.Moto(t)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName("rbif"), map[string]string{"VisibilityTimeout": "2"})
	sendAll(t, ep, url, bodyEntries("r", 30), true)
	failing := map[string]bool{"r00003": true, "r00011": true, "r00027": true}
	s := newSink(t, func(c call) (int, string) {
		var failed []string
		for _, r := range sqsRecords(t, c.Body) {
			if failing[r.Body] && r.Attributes["ApproximateReceiveCount"] == "1" {
				failed = append(failed, fmt.Sprintf(`{"itemIdentifier":%q}`, r.MessageId))
			}
		}
		return 200, `{"batchItemFailures":[` + strings.Join(failed, ",") + `]}`
	})
	dir := t.TempDir()
	startESMD(t, dir, sqsYAML(ep, dir, arn, s.srv.URL, "BatchSize: 10\nFunctionResponseTypes: [ReportBatchItemFailures]"))
	waitFor(t, 60*time.Second, "33 deliveries and an empty queue", func() bool { return s.count() >= 33 && queueEmpty(t, ep, url)() })
	time.Sleep(3 * time.Second) // a message wrongly left in flight would be back by now
	counts := map[string][]string{}
	for _, c := range sqsCalls(t, s) {
		for _, r := range c {
			counts[r.Body] = append(counts[r.Body], r.Attributes["ApproximateReceiveCount"])
		}
	}
	if len(counts) != 30 {
		t.Fatalf("%d distinct messages delivered, want 30", len(counts))
	}
	for b, rc := range counts {
		want := []string{"1"}
		if failing[b] {
			want = []string{"1", "2"}
		}
		if !slices.Equal(rc, want) {
			t.Errorf("%s delivered with receive counts %v, want %v", b, rc, want)
		}
	}
}

func TestSQSFIFOGroups(t *testing.T) {
	t.Parallel()
	const groups, per = 50, 100
	ep := servers.Moto(t)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName("fifo")+".fifo", map[string]string{
		// 6 s: the check below is strict, so a batch must never outlive its
		// visibility timeout on a loaded machine and come back a second time.
		"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "6",
	})
	var entries []sqstypes.SendMessageBatchRequestEntry
	for i := range per {
		for g := range groups {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
				MessageBody: aws.String(fmt.Sprintf("g%02d-%03d", g, i)), MessageGroupId: aws.String(fmt.Sprintf("g%02d", g)),
			})
		}
	}

	const poison = "g07-050"
	type delivery struct {
		at     time.Time
		bodies []string
		ok     bool
	}
	var mu sync.Mutex
	inFlight := map[string]int{}
	clashes, mixed := 0, 0
	failedOnce := false
	var failedAt time.Time
	byGroup := map[string][]delivery{}
	s := newSink(t, func(c call) (int, string) {
		recs := sqsRecords(t, c.Body)
		g := recs[0].Attributes["MessageGroupId"]
		d := delivery{at: time.Now()}
		status := 200
		mu.Lock()
		inFlight[g]++
		if inFlight[g] > 1 {
			clashes++
		}
		for _, r := range recs {
			if r.Attributes["MessageGroupId"] != g {
				mixed++
			}
			d.bodies = append(d.bodies, r.Body)
			if r.Body == poison && !failedOnce {
				failedOnce, failedAt, status = true, time.Now(), 500
			}
		}
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		inFlight[g]--
		d.ok = status == 200
		byGroup[g] = append(byGroup[g], d)
		mu.Unlock()
		return status, ""
	})
	dir := t.TempDir()
	startESMD(t, dir, sqsYAML(ep, dir, arn, s.srv.URL, "BatchSize: 10"))
	done := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ds := range byGroup {
			for _, d := range ds {
				if d.ok {
					n += len(d.bodies)
				}
			}
		}
		return n
	}
	// The queue is fed while esmd drains it, at most 1,000 messages ahead:
	// moto checks deduplication against every queued message on each FIFO
	// send, so filling 5,000 first takes many minutes.
	fed := make(chan error, 1)
	go func() { fed <- feed(t.Context(), ep, url, entries, true, 1000, done) }()
	waitFor(t, 15*time.Minute, "every message", func() bool { return done() >= groups*per })
	if err := <-fed; err != nil {
		t.Fatalf("send: %v", err)
	}
	waitFor(t, time.Minute, "the queue to be empty", queueEmpty(t, ep, url))
	mu.Lock()
	defer mu.Unlock()
	if clashes != 0 || mixed != 0 {
		t.Fatalf("%d times two batches of one group were in flight; %d messages in a batch of another group", clashes, mixed)
	}
	var redeliveredAt time.Time
	othersWhileHeld := 0
	for g := range groups {
		name := fmt.Sprintf("g%02d", g)
		var done []string
		for _, d := range byGroup[name] {
			if d.ok {
				done = append(done, d.bodies...)
				if name == "g07" && redeliveredAt.IsZero() && d.at.After(failedAt) {
					redeliveredAt = d.at
				}
			}
		}
		var want []string
		for i := range per {
			want = append(want, fmt.Sprintf("%s-%03d", name, i))
		}
		if !slices.Equal(done, want) {
			t.Errorf("group %s: successful deliveries out of order, repeated or incomplete: %v", name, done)
		}
	}
	for g, ds := range byGroup {
		for _, d := range ds {
			if g != "g07" && d.at.After(failedAt) && d.at.Before(redeliveredAt) {
				othersWhileHeld++
			}
		}
	}
	if !failedOnce || redeliveredAt.Sub(failedAt) < 5*time.Second {
		t.Fatalf("g07 was retried %s after its failure; want after the 6 s visibility timeout", redeliveredAt.Sub(failedAt))
	}
	if othersWhileHeld == 0 {
		t.Fatalf("no other group was served while g07 was held back")
	}
	t.Logf("%d invocations; %d batches of other groups while g07 waited %s",
		len(s.snapshot()), othersWhileHeld, redeliveredAt.Sub(failedAt))
}

func TestSQSHeartbeatLongInvocation(t *testing.T) {
	t.Parallel()
	ep := servers.Moto(t)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName("hb"), map[string]string{"VisibilityTimeout": "2"})
	sendAll(t, ep, url, bodyEntries("slow", 3), true)
	s := newSink(t, func(call) (int, string) {
		time.Sleep(6 * time.Second) // three times the visibility timeout
		return 200, ""
	})
	dir := t.TempDir()
	startESMD(t, dir, sqsYAML(ep, dir, arn, s.srv.URL, "BatchSize: 10\nesmd: {visibilityHeartbeat: true}"))
	waitFor(t, 30*time.Second, "the queue to be empty", func() bool { return s.count() > 0 && queueEmpty(t, ep, url)() })
	time.Sleep(3 * time.Second)
	counts := map[string]int{}
	for _, c := range sqsCalls(t, s) {
		for _, r := range c {
			counts[r.Body]++
		}
	}
	if len(counts) != 3 {
		t.Fatalf("delivered %v, want 3 messages", counts)
	}
	for b, n := range counts {
		if n != 1 {
			t.Errorf("%s delivered %d times; the heartbeat should keep it invisible", b, n)
		}
	}
}
