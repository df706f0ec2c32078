package mapping

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/esmd-dev/esmd/event"
)

// fakeQueue is an in-memory SQS queue with visibility timeouts, receive
// counts, receipt handles that change on every receive, and FIFO group
// locking. It is safe for concurrent use.
type fakeQueue struct {
	mu         sync.Mutex
	fifo       bool
	visibility time.Duration
	// visibilityErr, when set, is what VisibilityTimeout returns.
	visibilityErr error
	enc           *event.SQSEncoder
	msgs          []*fakeMsg // in send order
	seq           int
	wake          chan struct{}
	gone          bool
	// leaky hands out messages of a FIFO group that is in flight, as a
	// server with racing receives may.
	leaky bool

	receives     int
	deleted      map[string]int // messageId -> deletes
	setVis       []visCall
	receiveCount map[string]int
}

type fakeMsg struct {
	id, body, group string
	receipt         string
	visibleAt       time.Time
	count           int
	sent            time.Time
}

type visCall struct {
	ids     []string
	timeout time.Duration
}

func newFakeQueue(fifo bool, visibility time.Duration) *fakeQueue {
	return &fakeQueue{
		fifo:         fifo,
		visibility:   visibility,
		enc:          event.NewSQSEncoder("us-east-1", "arn:aws:sqs:us-east-1:000000000000:q"),
		wake:         make(chan struct{}),
		deleted:      map[string]int{},
		receiveCount: map[string]int{},
	}
}

// send adds messages; group is ignored for standard queues.
func (q *fakeQueue) send(group string, bodies ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, b := range bodies {
		q.seq++
		q.msgs = append(q.msgs, &fakeMsg{id: fmt.Sprintf("m%05d", q.seq), body: b, group: group, sent: time.Now()})
	}
	close(q.wake)
	q.wake = make(chan struct{})
}

func (q *fakeQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]event.Record, error) {
	if wait%time.Second != 0 {
		panic(fmt.Sprintf("receive wait %s is not whole seconds", wait))
	}
	deadline := time.Now().Add(wait)
	for {
		q.mu.Lock()
		if q.gone {
			q.mu.Unlock()
			return nil, fmt.Errorf("queue: %w", ErrSourceGone)
		}
		recs := q.take(max)
		wake := q.wake
		q.mu.Unlock()
		if len(recs) > 0 || !time.Now().Before(deadline) {
			return recs, nil
		}
		t := time.NewTimer(min(100*time.Millisecond, time.Until(deadline)))
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// take returns up to max visible messages; with q.mu held.
func (q *fakeQueue) take(max int) []event.Record {
	now := time.Now()
	q.receives++
	busy := map[string]bool{}
	if q.fifo {
		for _, m := range q.msgs {
			if m.visibleAt.After(now) {
				busy[m.group] = true
			}
		}
	}
	var recs []event.Record
	taken := map[string]bool{}
	for _, m := range q.msgs {
		if len(recs) == max {
			break
		}
		if m.visibleAt.After(now) {
			continue
		}
		if q.fifo && !q.leaky && (busy[m.group] && !taken[m.group]) {
			continue
		}
		m.count++
		q.receiveCount[m.id] = m.count
		m.receipt = fmt.Sprintf("%s#%d", m.id, m.count)
		m.visibleAt = now.Add(q.visibility)
		attrs := map[string]string{"ApproximateReceiveCount": strconv.Itoa(m.count), "SentTimestamp": strconv.FormatInt(m.sent.UnixMilli(), 10)}
		if q.fifo {
			attrs["MessageGroupId"] = m.group
			busy[m.group], taken[m.group] = true, true
		}
		recs = append(recs, q.enc.Encode(event.SQSMessage{MessageID: m.id, ReceiptHandle: m.receipt, Body: m.body, Attributes: attrs}))
	}
	return recs
}

func (q *fakeQueue) find(r event.Record) (int, *fakeMsg) {
	for i, m := range q.msgs {
		if m.id == r.ID && m.receipt == r.Receipt {
			return i, m
		}
	}
	return -1, nil
}

func (q *fakeQueue) Delete(ctx context.Context, recs []event.Record) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	failed := map[string]string{}
	for _, r := range recs {
		i, _ := q.find(r)
		if i < 0 {
			failed[r.ID] = "ReceiptHandleIsInvalid"
			continue
		}
		q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
		q.deleted[r.ID]++
		n++
	}
	close(q.wake)
	q.wake = make(chan struct{})
	if len(failed) > 0 {
		return n, &DeleteError{Failed: failed}
	}
	return n, nil
}

func (q *fakeQueue) SetVisibility(ctx context.Context, recs []event.Record, timeout time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := visCall{timeout: timeout}
	for _, r := range recs {
		c.ids = append(c.ids, r.ID)
		if _, m := q.find(r); m != nil {
			m.visibleAt = time.Now().Add(timeout)
		}
	}
	q.setVis = append(q.setVis, c)
	close(q.wake)
	q.wake = make(chan struct{})
	return nil
}

func (q *fakeQueue) VisibilityTimeout(ctx context.Context) (time.Duration, error) {
	if q.visibilityErr != nil {
		return 0, q.visibilityErr
	}
	return q.visibility, nil
}

// sendNumbered sends n messages whose bodies are their number, zero-padded
// to digits, then pad x's (300 make about 700 bytes of event JSON).
func (q *fakeQueue) sendNumbered(n, digits, pad int) {
	for i := range n {
		q.send("", fmt.Sprintf("%0*d", digits, i)+strings.Repeat("x", pad))
	}
}

func (q *fakeQueue) remaining() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}

// fakeFunc is a function that records its invocations and answers with
// handle.
type fakeFunc struct {
	mu     sync.Mutex
	calls  [][]events.SQSMessage
	active int
	peak   int
	// inGroup counts invocations in flight per message group.
	inGroup    map[string]int
	groupClash int
	attempts   []int // each invocation's Request.Attempt
	handle     func(msgs []events.SQSMessage) (*Response, error)
}

// attempt is the Request.Attempt of invocation i.
func (f *fakeFunc) attempt(i int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[i]
}

func newFakeFunc(handle func([]events.SQSMessage) (*Response, error)) *fakeFunc {
	return &fakeFunc{handle: handle, inGroup: map[string]int{}}
}

func (f *fakeFunc) Invoke(ctx context.Context, req *Request) (*Response, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(req.Payload, &ev); err != nil {
		return nil, err
	}
	groups := map[string]bool{}
	for _, m := range ev.Records {
		groups[m.Attributes["MessageGroupId"]] = true
	}
	f.mu.Lock()
	f.calls = append(f.calls, ev.Records)
	f.attempts = append(f.attempts, req.Attempt)
	f.active++
	f.peak = max(f.peak, f.active)
	for g := range groups {
		if g != "" {
			f.inGroup[g]++
			if f.inGroup[g] > 1 {
				f.groupClash++
			}
		}
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		for g := range groups {
			if g != "" {
				f.inGroup[g]--
			}
		}
		f.mu.Unlock()
	}()
	if f.handle == nil {
		return &Response{StatusCode: 200}, nil
	}
	return f.handle(ev.Records)
}

func (f *fakeFunc) snapshot() [][]events.SQSMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]events.SQSMessage(nil), f.calls...)
}

// bodies returns how often each body was delivered.
func (f *fakeFunc) bodies() map[string]int {
	out := map[string]int{}
	for _, c := range f.snapshot() {
		for _, m := range c {
			out[m.Body]++
		}
	}
	return out
}

func okResponse(body string) *Response { return &Response{StatusCode: 200, Body: []byte(body)} }
