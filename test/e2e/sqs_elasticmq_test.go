package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/esmd-dev/esmd/test/servers"
)

// TestElasticMQHoldsFIFOGroup pins the server behaviour that
// TestSQSFIFOGroupsElasticMQ relies on and moto lacks (test/SERVERS.md): while
// a message of a FIFO group is in flight, no later message of that group is
// handed out, to this receiver or a concurrent one, until the first is
// deleted or its visibility timeout ends.
func TestElasticMQHoldsFIFOGroup(t *testing.T) {
	t.Parallel()
	ep := servers.ElasticMQ(t)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName("hold")+".fifo", map[string]string{
		"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "30",
	})
	if want := "arn:aws:sqs:us-east-1:000000000000:"; !strings.HasPrefix(arn, want) {
		t.Fatalf("queue ARN %q, want prefix %q", arn, want)
	}
	var entries []sqstypes.SendMessageBatchRequestEntry
	for _, b := range []string{"a-0", "b-0", "a-1", "b-1"} {
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{MessageBody: aws.String(b), MessageGroupId: aws.String(b[:1])})
	}
	sendAll(t, ep, url, entries, true)
	c := servers.SQSClient(ep)
	receive := func(max int32) []string {
		out, err := c.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: max})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		var bodies []string
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
		}
		return bodies
	}
	// One message: the head of group a. Group a is then held; group b is not.
	if got := receive(1); !slices.Equal(got, []string{"a-0"}) {
		t.Fatalf("first receive = %v, want [a-0]", got)
	}
	if got := receive(10); !slices.Equal(got, []string{"b-0", "b-1"}) {
		t.Fatalf("second receive = %v, want [b-0 b-1]: group a must be held while a-0 is in flight", got)
	}
	if got := receive(10); len(got) != 0 {
		t.Fatalf("third receive = %v, want nothing: both groups are in flight", got)
	}
}

// TestSQSFIFOGroupsElasticMQ is the strict FIFO scenario that moto cannot
// serve (test/SERVERS.md): 50 groups of 100 messages, sent before esmd
// starts; one message fails three times, then succeeds. Every group,
// including the failing one, must be processed in order with at most one
// batch in flight, and the other groups must keep being served while the
// failing group waits out its visibility timeouts.
func TestSQSFIFOGroupsElasticMQ(t *testing.T) {
	t.Parallel()
	const (
		groups, per = 50, 100
		poison      = "g07-010"
		poisonGroup = "g07"
		failures    = 3
		visibility  = 2 * time.Second
	)
	ep := servers.ElasticMQ(t)
	url, arn := servers.CreateQueue(t, ep, servers.UniqueName("fifo")+".fifo", map[string]string{
		"FifoQueue": "true", "ContentBasedDeduplication": "true",
		"VisibilityTimeout": strconv.Itoa(int(visibility / time.Second)),
	})
	var entries []sqstypes.SendMessageBatchRequestEntry
	for i := range per {
		for g := range groups {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
				MessageBody: aws.String(fmt.Sprintf("g%02d-%03d", g, i)), MessageGroupId: aws.String(fmt.Sprintf("g%02d", g)),
			})
		}
	}
	begin := time.Now()
	sendAll(t, ep, url, entries, true)
	if v, f := queueDepth(t, ep, url); v != groups*per || f != 0 {
		t.Fatalf("after sending: %d visible, %d in flight; want %d, 0", v, f, groups*per)
	}
	t.Logf("sent %d FIFO messages in %s", groups*per, time.Since(begin).Round(time.Millisecond))

	// delivery is one invocation of the function, as the function saw it.
	type delivery struct {
		group      string
		start, end time.Time
		first      int // index in the group of the first message
		n          int
		ok         bool
		poisonRC   string // ApproximateReceiveCount of the poison message, if in the batch
		again      int    // messages that had succeeded before
		firstRecv  string // ApproximateFirstReceiveTimestamp of the poison message
	}
	var (
		mu         sync.Mutex
		deliveries []delivery
		inFlight   = map[string]int{}
		next       = map[string]int{} // per group: the index the next delivery must start at
		lastOK     = map[string]time.Time{}
		clashes    []string
		disorder   []string
		mixed      []string
		failed     int
		successful int // distinct messages that succeeded
		duplicates int
	)
	s := newSink(t, func(c call) (int, string) {
		recs := sqsRecords(t, c.Body)
		d := delivery{start: time.Now(), n: len(recs)}
		if len(recs) > 0 {
			d.group = recs[0].Attributes["MessageGroupId"]
		}
		status := 200
		mu.Lock()
		inFlight[d.group]++
		if inFlight[d.group] > 1 {
			clashes = append(clashes, fmt.Sprintf("%s at %s", d.group, d.start.Format(time.StampMilli)))
		}
		for i, r := range recs {
			g, idx, _ := strings.Cut(r.Body, "-")
			n, err := strconv.Atoi(idx)
			if g != d.group || r.Attributes["MessageGroupId"] != d.group || err != nil {
				mixed = append(mixed, fmt.Sprintf("%s in a batch of %s", r.Body, d.group))
				continue
			}
			if i == 0 {
				d.first = n
			}
			// Each delivery of a group is a consecutive run that starts
			// no later than where the group's successful deliveries
			// ended: a failed batch comes back from its first message,
			// and nothing later in the group may come before it
			// succeeds. A run may start earlier only with messages the
			// server hands out again (receive count above 1) because
			// their visibility timeout ran out before esmd deleted them,
			// as SQS does too.
			switch {
			case i == 0 && n > next[d.group]:
				disorder = append(disorder, fmt.Sprintf("%s delivered while %s-%03d was the next to succeed (%s since the group's last success)",
					r.Body, d.group, next[d.group], d.start.Sub(lastOK[d.group]).Round(time.Millisecond)))
			case n != d.first+i:
				disorder = append(disorder, fmt.Sprintf("%s delivered as #%d of a batch that starts at %s-%03d", r.Body, i, d.group, d.first))
			case n < next[d.group] && r.Attributes["ApproximateReceiveCount"] == "1":
				disorder = append(disorder, fmt.Sprintf("%s delivered again with receive count 1 after it succeeded", r.Body))
			case n < next[d.group]:
				d.again++
			}
			if r.Body == poison {
				d.poisonRC = r.Attributes["ApproximateReceiveCount"]
				d.firstRecv = r.Attributes["ApproximateFirstReceiveTimestamp"]
				if failed < failures {
					failed++
					status = 500
				}
			}
		}
		mu.Unlock()
		time.Sleep(5 * time.Millisecond) // a handler that takes a little time
		mu.Lock()
		inFlight[d.group]--
		d.end, d.ok = time.Now(), status == 200
		if d.ok {
			next[d.group] = max(next[d.group], d.first+d.n)
			lastOK[d.group] = d.end
			successful += d.n - d.again
			duplicates += d.again
		}
		deliveries = append(deliveries, d)
		mu.Unlock()
		return status, ""
	})
	dir := t.TempDir()
	p := startESMD(t, dir, sqsYAML(ep, dir, arn, s.srv.URL, "BatchSize: 10"))
	t.Cleanup(func() {
		if t.Failed() { // every warning, not just the log's tail
			for _, l := range strings.Split(p.log(), "\n") {
				if l != "" && !strings.Contains(l, "level=DEBUG") {
					t.Log(l)
				}
			}
		}
	})
	begin = time.Now()
	done := func() int {
		mu.Lock()
		defer mu.Unlock()
		return successful
	}
	waitFor(t, 5*time.Minute, "every message to succeed", func() bool { return done() >= groups*per })
	took := time.Since(begin)
	waitFor(t, 30*time.Second, "the queue to be empty", queueEmpty(t, ep, url))
	// A message wrongly left in the queue, or a batch wrongly re-sent,
	// would be delivered again within a visibility timeout.
	time.Sleep(visibility + time.Second)
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(clashes) != 0 || len(mixed) != 0 || len(disorder) != 0 {
		t.Fatalf("two batches of one group in flight at once: %v\nmessages in another group's batch: %v\nout of order: %v", clashes, mixed, disorder)
	}
	if successful != groups*per {
		t.Fatalf("%d messages succeeded, want exactly %d (no message twice)", successful, groups*per)
	}
	for g := range groups {
		name := fmt.Sprintf("g%02d", g)
		if next[name] != per {
			t.Errorf("group %s: succeeded up to #%d, want %d", name, next[name], per)
		}
	}

	// The poison's batch failed three times and was retried each time
	// after the visibility timeout, and soon after it; meanwhile other
	// groups were served (the poison is early in its group, so the first
	// hold certainly overlaps other groups' work).
	sort.Slice(deliveries, func(i, j int) bool { return deliveries[i].start.Before(deliveries[j].start) })
	var poisonRCs []string
	var poisonDeliveries []delivery
	for _, d := range deliveries {
		if d.poisonRC != "" {
			poisonRCs = append(poisonRCs, d.poisonRC)
			poisonDeliveries = append(poisonDeliveries, d)
		}
	}
	// Each retry is a new receive of the poison, so its receive count
	// grows; it may skip a value only if a receive was returned without an
	// invocation, which the hold-time bound below limits.
	rcs := make([]int, len(poisonRCs))
	for i, v := range poisonRCs {
		rcs[i], _ = strconv.Atoi(v)
	}
	growing := len(rcs) == failures+1 && rcs[0] == 1 && poisonDeliveries[failures].ok
	for i := 1; growing && i < len(rcs); i++ {
		growing = rcs[i] > rcs[i-1]
	}
	if !growing {
		t.Fatalf("%s delivered with receive counts %v; want %d deliveries with growing counts from 1, the last one successful", poison, poisonRCs, failures+1)
	}
	firstRecv, err := strconv.ParseInt(poisonDeliveries[0].firstRecv, 10, 64)
	if err != nil || firstRecv <= 0 {
		t.Fatalf("%s: ApproximateFirstReceiveTimestamp %q", poison, poisonDeliveries[0].firstRecv)
	}
	for i, d := range poisonDeliveries[:failures] {
		retry := poisonDeliveries[i+1]
		held := retry.start.Sub(d.end)
		others, othersLater := 0, false
		for _, o := range deliveries {
			othersLater = othersLater || (o.group != poisonGroup && o.start.After(d.end))
			if o.group == poisonGroup && o.start.After(d.end) && o.start.Before(retry.start) {
				t.Errorf("failure %d: %s delivered from #%d while the group was held", i+1, poisonGroup, o.first)
			}
			if o.group != poisonGroup && o.start.After(d.end) && o.start.Before(retry.start) {
				others++
			}
		}
		// Each receive hides the message for the visibility timeout
		// (esmd sets no visibilityOnError here), so the k-th retry comes
		// at least k timeouts after the first receive. Timestamps are in
		// milliseconds.
		if since := retry.start.Sub(time.UnixMilli(firstRecv)); since < time.Duration(i+1)*visibility-50*time.Millisecond {
			t.Errorf("retry %d of %s came %s after its first receive, before %d visibility timeouts of %s", i+1, poison, since, i+1, visibility)
		}
		// The message is visible again at most one timeout after the
		// failure, and esmd's pollers keep receiving, so the next
		// receive must invoke it: a receive returned without an
		// invocation costs another whole timeout.
		if maxHeld := visibility + 1500*time.Millisecond; held > maxHeld {
			t.Errorf("failure %d: %s retried only %s after the failure (receive counts %v); want within %s with a %s visibility timeout",
				i+1, poisonGroup, held.Round(time.Millisecond), poisonRCs, maxHeld, visibility)
		}
		if others == 0 && (othersLater || i == 0) {
			t.Errorf("failure %d: no other group was served during the %s that %s was held", i+1, held.Round(time.Millisecond), poisonGroup)
		}
		t.Logf("failure %d: %s held %s; %d batches of other groups meanwhile", i+1, poisonGroup, held.Round(time.Millisecond), others)
	}
	t.Logf("%d messages in %s (%.0f/s) in %d invocations, peak concurrency at the function %d; %d messages delivered again after their visibility timeout ran out",
		groups*per, took.Round(time.Millisecond), groups*per/took.Seconds(), len(deliveries), s.peakConcurrency(), duplicates)
}
