package mapping

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// startSQS runs an SQSRunner on q and f in the current synctest bubble and
// returns it with a channel that gets Run's result.
func startSQS(t *testing.T, ctx context.Context, cfg SQSConfig, q *fakeQueue, f *fakeFunc) (*SQSRunner, <-chan error) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "m"
	}
	cfg.FIFO = q.fifo
	r, err := NewSQSRunner(cfg, SQSDeps{Queue: q, Invoker: f})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return r, done
}

func drain(t *testing.T, r *SQSRunner, done <-chan error) {
	t.Helper()
	if err := r.Drain(t.Context()); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run after drain: %v", err)
	}
}

func bodiesN(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func TestSQSDeletesSucceededBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(false, 30*time.Second)
		q.send("", bodiesN("b", 95)...)
		f := newFakeFunc(nil)
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10}, q, f)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		for b, n := range f.bodies() {
			if n != 1 {
				t.Errorf("%s delivered %d times", b, n)
			}
		}
		if len(f.bodies()) != 95 || q.remaining() != 0 {
			t.Fatalf("%d distinct delivered, %d left in the queue; want 95 and 0", len(f.bodies()), q.remaining())
		}
		for _, c := range f.snapshot() {
			if len(c) > 10 {
				t.Fatalf("batch of %d, want at most 10", len(c))
			}
		}
		st := r.SQSStats()
		if st.DeletedEvents.Load() != 95 || st.PolledEvents.Load() != 95 || st.InvokedEvents.Load() != 95 || st.ReturnedEvents.Load() != 0 {
			t.Fatalf("deleted %d polled %d invoked %d returned %d", st.DeletedEvents.Load(), st.PolledEvents.Load(), st.InvokedEvents.Load(), st.ReturnedEvents.Load())
		}
		if r.LastProcessingResult() != "OK" {
			t.Fatalf("LastProcessingResult %q", r.LastProcessingResult())
		}
		drain(t, r, done)
	})
}

func TestSQSBatchWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(false, 30*time.Second)
		q.send("", bodiesN("w", 25)...)
		f := newFakeFunc(nil)
		start := time.Now()
		var at time.Time
		f.handle = func([]events.SQSMessage) (*Response, error) { at = time.Now(); return okResponse(""), nil }
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 100, BatchWindow: 2 * time.Second, MaxConcurrency: 1}, q, f)
		time.Sleep(1900 * time.Millisecond)
		if n := len(f.snapshot()); n != 0 {
			t.Fatalf("%d invocations before the window closed", n)
		}
		time.Sleep(200 * time.Millisecond)
		calls := f.snapshot()
		if len(calls) != 1 || len(calls[0]) != 25 || at.Sub(start) != 2*time.Second {
			t.Fatalf("%d invocations (first of %d) at %s; want one of 25 at 2s", len(calls), len(calls[0]), at.Sub(start))
		}
		drain(t, r, done)
	})
}

func TestSQSPayloadCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(false, 30*time.Second)
		q.sendNumbered(10, 2, 300)
		f := newFakeFunc(nil)
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, MaxPayload: 2000, MaxConcurrency: 1}, q, f)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		calls := f.snapshot()
		var order []string
		for _, c := range calls {
			if len(c) > 4 {
				t.Fatalf("batch of %d messages of ~700 bytes exceeds 2000 bytes", len(c))
			}
			for _, m := range c {
				order = append(order, m.Body[:2])
			}
		}
		want := []string{"00", "01", "02", "03", "04", "05", "06", "07", "08", "09"}
		if !slices.Equal(order, want) || q.remaining() != 0 {
			t.Fatalf("delivered %v in %d batches, %d left; want each once, in order", order, len(calls), q.remaining())
		}
		drain(t, r, done)
	})
}

func TestSQSFailedBatchReturns(t *testing.T) {
	zero := time.Duration(0)
	cases := []struct {
		name    string
		vis     *time.Duration
		err     error
		back    time.Duration // when the batch is delivered again
		failure func(st *SQSStats) int64
	}{
		{name: "function error", err: &FunctionError{Kind: "Unhandled"}, back: 30 * time.Second, failure: func(st *SQSStats) int64 { return st.FunctionErrors.Load() }},
		{name: "invoke error", err: errors.New("connection refused"), back: 30 * time.Second, failure: func(st *SQSStats) int64 { return st.InvokeErrors.Load() }},
		{name: "visibilityOnError 0", vis: &zero, err: &FunctionError{Kind: "Unhandled"}, back: 0, failure: func(st *SQSStats) int64 { return st.FunctionErrors.Load() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newFakeQueue(false, 30*time.Second)
				q.send("", bodiesN("f", 10)...)
				start := time.Now()
				var mu sync.Mutex
				var times []time.Duration
				f := newFakeFunc(func(ms []events.SQSMessage) (*Response, error) {
					mu.Lock()
					defer mu.Unlock()
					times = append(times, time.Since(start))
					if len(times) == 1 {
						return nil, tc.err
					}
					for _, m := range ms {
						if m.Attributes["ApproximateReceiveCount"] != "2" {
							t.Errorf("redelivered %s with receive count %s", m.Body, m.Attributes["ApproximateReceiveCount"])
						}
					}
					return okResponse(""), nil
				})
				r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, MaxConcurrency: 2, VisibilityOnError: tc.vis}, q, f)
				st := r.SQSStats()
				if tc.back > 0 {
					time.Sleep(time.Second)
					if st.DeletedEvents.Load() != 0 || st.ReturnedEvents.Load() != 10 || tc.failure(st) != 1 || q.remaining() != 10 {
						t.Fatalf("after the failure: deleted %d returned %d failures %d remaining %d", st.DeletedEvents.Load(), st.ReturnedEvents.Load(), tc.failure(st), q.remaining())
					}
				} else {
					synctest.Wait()
					q.mu.Lock()
					calls := slices.Clone(q.setVis)
					q.mu.Unlock()
					if len(calls) != 1 || len(calls[0].ids) != 10 || calls[0].timeout != 0 || tc.failure(st) != 1 {
						t.Fatalf("visibility changes %+v, failures %d; want one of the 10 messages to 0", calls, tc.failure(st))
					}
				}
				if tc.back > 0 && r.LastProcessingResult() != "PROBLEM: Function call failed" {
					t.Fatalf("LastProcessingResult %q", r.LastProcessingResult())
				}
				// Lambda's words for an SQS mapping.
				if st := r.Status(); st.State != "Enabled" || st.StateTransitionReason != "USER_INITIATED" {
					t.Fatalf("status %s, %q; want Enabled, USER_INITIATED", st.State, st.StateTransitionReason)
				}
				time.Sleep(tc.back + time.Second)
				synctest.Wait()
				mu.Lock()
				got := slices.Clone(times)
				mu.Unlock()
				if len(got) != 2 || got[1] < tc.back || got[1] > tc.back+200*time.Millisecond {
					t.Fatalf("invocations at %v; want a second one at %s", got, tc.back)
				}
				if q.remaining() != 0 || st.DeletedEvents.Load() != 10 {
					t.Fatalf("%d left, %d deleted", q.remaining(), st.DeletedEvents.Load())
				}
				drain(t, r, done)
			})
		})
	}
}

func TestSQSPartialBatchResponse(t *testing.T) {
	cases := []struct {
		name     string
		fifo     bool
		response string
		want     []string // message bodies that return
	}{
		{name: "two reported", response: `{"batchItemFailures":[{"itemIdentifier":"m00003"},{"itemIdentifier":"m00006"}]}`, want: []string{"p002", "p005"}},
		{name: "none reported", response: `{"batchItemFailures":[]}`},
		{name: "null list", response: `{"batchItemFailures":null}`},
		{name: "empty body", response: ``},
		{name: "unknown identifier", response: `{"batchItemFailures":[{"itemIdentifier":"nope"}]}`, want: bodiesN("p", 8)},
		{name: "empty identifier", response: `{"batchItemFailures":[{"itemIdentifier":""}]}`, want: bodiesN("p", 8)},
		{name: "misspelled key", response: `{"batchItemFailures":[{"itemId":"m00001"}]}`, want: bodiesN("p", 8)},
		// A FIFO function names every message it did not process; one it
		// does not name is deleted, as by Lambda.
		{name: "fifo returns only the named", fifo: true, response: `{"batchItemFailures":[{"itemIdentifier":"m00006"}]}`, want: []string{"p005"}},
		{name: "fifo returns the named rest of the group", fifo: true, response: `{"batchItemFailures":[{"itemIdentifier":"m00006"},{"itemIdentifier":"m00007"},{"itemIdentifier":"m00008"}]}`, want: []string{"p005", "p006", "p007"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newFakeQueue(tc.fifo, 30*time.Second)
				q.send("g", bodiesN("p", 8)...)
				var once sync.Once
				f := newFakeFunc(func(ms []events.SQSMessage) (*Response, error) {
					resp := okResponse("")
					once.Do(func() { resp = okResponse(tc.response) })
					return resp, nil
				})
				r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, MaxConcurrency: 2, ReportBatchItemFailures: true}, q, f)
				time.Sleep(time.Second)
				synctest.Wait()
				q.mu.Lock()
				var left []string
				for _, m := range q.msgs {
					left = append(left, m.body)
				}
				q.mu.Unlock()
				if !slices.Equal(left, tc.want) {
					t.Fatalf("returned %v, want %v", left, tc.want)
				}
				if got := r.SQSStats().ReturnedEvents.Load(); got != int64(len(tc.want)) {
					t.Fatalf("ReturnedEvents %d, want %d", got, len(tc.want))
				}
				// After the visibility timeout the returned messages come
				// back, with their receive count raised.
				time.Sleep(31 * time.Second)
				synctest.Wait()
				calls := f.snapshot()
				if len(tc.want) == 0 {
					if len(calls) != 1 {
						t.Fatalf("%d invocations, want 1", len(calls))
					}
				} else {
					var again []string
					for _, m := range calls[len(calls)-1] {
						again = append(again, m.Body)
						if m.Attributes["ApproximateReceiveCount"] != "2" {
							t.Errorf("%s: receive count %s, want 2", m.Body, m.Attributes["ApproximateReceiveCount"])
						}
					}
					if len(calls) != 2 || !slices.Equal(again, tc.want) {
						t.Fatalf("%d invocations, the last with %v; want 2, the last with %v", len(calls), again, tc.want)
					}
				}
				if q.remaining() != 0 {
					t.Fatalf("%d left", q.remaining())
				}
				drain(t, r, done)
			})
		})
	}
}

func TestSQSFIFOGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(true, 30*time.Second)
		const groups, per = 8, 30
		for g := range groups {
			q.send(fmt.Sprintf("g%d", g), bodiesN(fmt.Sprintf("g%d-", g), per)...)
		}
		start := time.Now()
		var mu sync.Mutex
		failedOnce := false
		finished := map[string]time.Duration{}
		f := newFakeFunc(func(ms []events.SQSMessage) (*Response, error) {
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			g := ms[0].Attributes["MessageGroupId"]
			for i, m := range ms {
				if m.Attributes["MessageGroupId"] != g {
					t.Errorf("batch mixes groups %s and %s", g, m.Attributes["MessageGroupId"])
				}
				if m.Body == "g3-017" && !failedOnce {
					// As a FIFO function should: it stops at its first
					// failure and names every message from there on.
					failedOnce = true
					var ids []string
					for _, rest := range ms[i:] {
						ids = append(ids, fmt.Sprintf(`{"itemIdentifier":%q}`, rest.MessageId))
					}
					return okResponse(`{"batchItemFailures":[` + strings.Join(ids, ",") + `]}`), nil
				}
			}
			if strings.HasSuffix(ms[len(ms)-1].Body, fmt.Sprintf("-%03d", per-1)) {
				finished[g] = time.Since(start)
			}
			return okResponse(""), nil
		})
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, ReportBatchItemFailures: true}, q, f)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if q.remaining() != 0 {
			t.Fatalf("%d left", q.remaining())
		}
		if f.groupClash != 0 {
			t.Fatalf("%d times two batches of one group were in flight", f.groupClash)
		}
		// Per group, the deliveries are the messages in order, except that
		// after the reported failure the group starts again at the failed
		// message.
		seq := map[string][]string{}
		for _, c := range f.snapshot() {
			for _, m := range c {
				g := m.Attributes["MessageGroupId"]
				seq[g] = append(seq[g], m.Body)
			}
		}
		for g := range groups {
			name := fmt.Sprintf("g%d", g)
			want := bodiesN(name+"-", per)
			if g == 3 {
				// The batch holding 017 was 010..019: 017..019 return.
				want = append(bodiesN(name+"-", 20), bodiesN(name+"-", per)[17:]...)
			}
			if !slices.Equal(seq[name], want) {
				t.Errorf("group %s saw %v\nwant %v", name, seq[name], want)
			}
		}
		// The failure held back only g3: every other group finished before
		// the failed message's visibility timeout ran out.
		for g, at := range finished {
			if g != "g3" && at >= 30*time.Second {
				t.Errorf("group %s finished at %s, after g3's failure held it up", g, at)
			}
		}
		if finished["g3"] < 30*time.Second {
			t.Errorf("g3 finished at %s, before its failed message became visible again", finished["g3"])
		}
		drain(t, r, done)
	})
}

// TestSQSFIFOGroupFailureHoldsLaterBatches hands a second poller later
// messages of a group while the first poller's batch of it is being
// invoked, as a queue with racing receives may: when the earlier batch
// fails, the later one is returned, not invoked.
func TestSQSFIFOGroupFailureHoldsLaterBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(true, 30*time.Second)
		q.send("g", bodiesN("x", 10)...)
		var mu sync.Mutex
		var ok []string
		failed := false
		f := newFakeFunc(func(ms []events.SQSMessage) (*Response, error) {
			// The queue leaks only once the first batch is in flight, so
			// that the other poller's next receive (100 ms on) takes the
			// later messages while x000 is being invoked. Had both
			// pollers received at once, which of them locks the group
			// first would be a race that no consumer can tell apart.
			q.mu.Lock()
			q.leaky = true
			q.mu.Unlock()
			time.Sleep(250 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if ms[0].Body == "x000" && !failed {
				failed = true
				return nil, &FunctionError{Kind: "Unhandled"}
			}
			for _, m := range ms {
				ok = append(ok, m.Body)
			}
			return okResponse(""), nil
		})
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 5, InitialConcurrency: 2, MaxConcurrency: 2}, q, f)
		// The later batch may come back as early as the failed one on this
		// leaky queue; the group holds it until x000 returned, at worst
		// one more visibility timeout.
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		mu.Lock()
		got := slices.Clone(ok)
		mu.Unlock()
		if !slices.Equal(got, bodiesN("x", 10)) || q.remaining() != 0 {
			t.Fatalf("succeeded %v, %d left; want x000..x009 in order", got, q.remaining())
		}
		if n := len(f.snapshot()); n != 3 {
			t.Fatalf("%d invocations; want 3 (the failed batch, then both in order)", n)
		}
		drain(t, r, done)
	})
}

func TestSQSScaling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(false, 5*time.Minute)
		q.send("", bodiesN("s", 4000)...)
		f := newFakeFunc(func([]events.SQSMessage) (*Response, error) {
			time.Sleep(time.Second)
			return okResponse(""), nil
		})
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, MaxConcurrency: 30, WaitTime: 5 * time.Second}, q, f)
		st := r.SQSStats()
		time.Sleep(500 * time.Millisecond)
		if c := st.Concurrency.Load(); c != 5 {
			t.Fatalf("concurrency %d at start, want 5", c)
		}
		// +300 a minute is +5 each one-second tick.
		time.Sleep(2 * time.Second)
		if c := st.Concurrency.Load(); c != 15 {
			t.Fatalf("concurrency %d after 2.5 s of full receives, want 15", c)
		}
		time.Sleep(10 * time.Second)
		if c := st.Concurrency.Load(); c != 30 {
			t.Fatalf("concurrency %d, want the maximum 30", c)
		}
		// The queue runs dry; empty long polls retire pollers down to 2.
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if q.remaining() != 0 {
			t.Fatalf("%d left", q.remaining())
		}
		if c := st.Concurrency.Load(); c != 2 {
			t.Fatalf("concurrency %d on an empty queue, want 2", c)
		}
		if st.PeakConcurrency.Load() != 30 || f.peak > 30 {
			t.Fatalf("peak concurrency %d, function saw %d at once; want 30", st.PeakConcurrency.Load(), f.peak)
		}
		drain(t, r, done)
	})
}

func TestSQSScalesDownOnThrottles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		zero := time.Duration(0)
		q := newFakeQueue(false, 30*time.Second)
		q.send("", bodiesN("t", 200)...)
		f := newFakeFunc(func([]events.SQSMessage) (*Response, error) {
			time.Sleep(100 * time.Millisecond)
			return nil, &ThrottleError{StatusCode: 429}
		})
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, VisibilityOnError: &zero, InitialConcurrency: 8}, q, f)
		time.Sleep(1500 * time.Millisecond)
		if c := r.SQSStats().Concurrency.Load(); c != 4 {
			t.Fatalf("concurrency %d after a second of throttles, want 8/2 = 4", c)
		}
		time.Sleep(5 * time.Second)
		if c := r.SQSStats().Concurrency.Load(); c != 2 {
			t.Fatalf("concurrency %d, want the floor 2", c)
		}
		drain(t, r, done)
		// Every invocation was throttled, and counted once, retried or
		// given back.
		if n, th := len(f.snapshot()), r.SQSStats().Throttles.Load(); th != int64(n) {
			t.Fatalf("%d throttles counted for %d throttled invocations", th, n)
		}
	})
}

func TestSQSHeartbeat(t *testing.T) {
	for _, hb := range []bool{true, false} {
		t.Run(fmt.Sprintf("heartbeat=%v", hb), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newFakeQueue(false, 3*time.Second)
				q.send("", "slow")
				f := newFakeFunc(func([]events.SQSMessage) (*Response, error) {
					time.Sleep(10 * time.Second)
					return okResponse(""), nil
				})
				r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, Heartbeat: hb}, q, f)
				time.Sleep(15 * time.Second)
				synctest.Wait()
				n := f.bodies()["slow"]
				if hb && (n != 1 || q.remaining() != 0) {
					t.Fatalf("with the heartbeat: delivered %d times, %d left; want once and deleted", n, q.remaining())
				}
				if !hb && n < 2 {
					t.Fatalf("without the heartbeat: delivered %d times; want a second delivery after 3 s", n)
				}
				q.mu.Lock()
				beats := len(q.setVis)
				q.mu.Unlock()
				if hb && beats < 9 {
					t.Fatalf("%d heartbeats in 10 s, want one a second", beats)
				}
				drain(t, r, done)
			})
		})
	}
}

func TestSQSDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(false, 30*time.Second)
		f := newFakeFunc(nil)
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 100, BatchWindow: 10 * time.Second, MaxConcurrency: 2}, q, f)
		time.Sleep(time.Second)
		q.send("", "a", "b", "c")
		time.Sleep(time.Second)
		start := time.Now()
		drain(t, r, done)
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Fatalf("drain took %s", took)
		}
		if got := f.bodies(); len(got) != 3 || q.remaining() != 0 {
			t.Fatalf("delivered %v, %d left; want the batch in the window flushed and deleted", got, q.remaining())
		}
	})
}

func TestSQSStops(t *testing.T) {
	t.Run("queue gone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := newFakeQueue(false, 30*time.Second)
			q.gone = true
			_, done := startSQS(t, t.Context(), SQSConfig{}, q, newFakeFunc(nil))
			if err := <-done; !errors.Is(err, ErrSourceGone) {
				t.Fatalf("Run = %v, want ErrSourceGone", err)
			}
		})
	})
	t.Run("hard stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			q := newFakeQueue(false, 30*time.Second)
			q.send("", "x")
			ctx, cancel := context.WithCancel(t.Context())
			f := newFakeFunc(func([]events.SQSMessage) (*Response, error) {
				time.Sleep(time.Hour)
				return okResponse(""), nil
			})
			_, done := startSQS(t, ctx, SQSConfig{}, q, f)
			time.Sleep(time.Second)
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
			if q.remaining() != 1 {
				t.Fatal("the message in flight was deleted on a hard stop")
			}
		})
	})
}

func TestSQSConfigValidation(t *testing.T) {
	cases := []struct {
		cfg  SQSConfig
		want string
	}{
		{SQSConfig{Name: "x", FIFO: true, BatchSize: 11}, "above 10"},
		{SQSConfig{Name: "x", FIFO: true, BatchWindow: time.Second}, "no batching window"},
		{SQSConfig{Name: "x", BatchSize: 10001}, "above 10000"},
		{SQSConfig{}, "no name"},
	}
	for _, tc := range cases {
		_, err := NewSQSRunner(tc.cfg, SQSDeps{Queue: newFakeQueue(false, time.Second), Invoker: newFakeFunc(nil)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// A function timeout above the queue's visibility timeout is flagged at
// start (Lambda refuses such a mapping): unless the heartbeat keeps the
// messages invisible, one can be processed twice at once.
func TestSQSFlagsTimeoutAboveVisibility(t *testing.T) {
	cases := []struct {
		name      string
		timeout   time.Duration
		heartbeat bool
		warned    bool
	}{
		{"above", 5 * time.Minute, false, true},
		{"equal", 30 * time.Second, false, false},
		{"below", 5 * time.Second, false, false},
		{"above with heartbeat", 5 * time.Minute, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs strings.Builder
				var mu sync.Mutex
				q := newFakeQueue(false, 30*time.Second)
				log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))
				r, err := NewSQSRunner(SQSConfig{Name: "m", InvokeTimeout: tc.timeout, Heartbeat: tc.heartbeat},
					SQSDeps{Queue: q, Invoker: newFakeFunc(nil), Logger: log})
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- r.Run(t.Context()) }()
				synctest.Wait()
				drain(t, r, done)
				mu.Lock()
				got := logs.String()
				mu.Unlock()
				warned := strings.Contains(got, "longer than the queue's visibility timeout") &&
					strings.Contains(got, "function_timeout="+tc.timeout.String()) && strings.Contains(got, "visibility_timeout=30s")
				if warned != tc.warned {
					t.Errorf("warned %v, want %v; log:\n%s", warned, tc.warned, got)
				}
			})
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A throttled batch is invoked again, as by Lambda, while its messages stay
// invisible: after the throttle's RetryAfter, or a backoff, for as long as
// the next invocation can end before the visibility timeout. Then it
// returns to the queue.
func TestSQSThrottleRetried(t *testing.T) {
	cases := []struct {
		name       string
		throttles  int           // invocations throttled before one succeeds (on any receive)
		retryAfter time.Duration // of each throttle
		timeout    time.Duration // the function's
		// visibilityErr makes reading the queue's visibility timeout fail
		visibilityErr bool
		// what the function sees: when each invocation began, with its
		// messages' receive count and attempt
		want []string
	}{
		{name: "once, retry after 1s", throttles: 1, retryAfter: time.Second,
			want: []string{"0s r1 a1", "1s r1 a2"}},
		{name: "twice, retry after 500ms", throttles: 2, retryAfter: 500 * time.Millisecond,
			want: []string{"0s r1 a1", "500ms r1 a2", "1s r1 a3"}},
		// Without RetryAfter, a backoff from RetryInitial (100 ms, with
		// jitter): the time is checked to be under a second.
		{name: "once, backoff", throttles: 1,
			want: []string{"0s r1 a1", "<1s r1 a2"}},
		// 0, 8, 16 s; another at 24 s could run past 30 s with a 10 s
		// timeout: the batch returns, and comes back at 30 s.
		{name: "until the visibility timeout", throttles: 3, retryAfter: 8 * time.Second, timeout: 10 * time.Second,
			want: []string{"0s r1 a1", "8s r1 a2", "16s r1 a3", "30s r2 a1"}},
		// Without the queue's visibility timeout (GetQueueAttributes
		// refused), the messages might be visible again already: no retry.
		{name: "visibility timeout unknown", throttles: 1, retryAfter: time.Second, visibilityErr: true,
			want: []string{"0s r1 a1", "30s r2 a1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newFakeQueue(false, 30*time.Second)
				if tc.visibilityErr {
					q.visibilityErr = errors.New("AccessDenied: sqs:GetQueueAttributes")
				}
				q.send("", bodiesN("t", 10)...)
				start := time.Now()
				var mu sync.Mutex
				var got []string
				f := newFakeFunc(func(ms []events.SQSMessage) (*Response, error) {
					mu.Lock()
					defer mu.Unlock()
					at := time.Since(start).String()
					if d := time.Since(start); d > 0 && d < time.Second && tc.retryAfter == 0 {
						at = "<1s"
					}
					got = append(got, fmt.Sprintf("%s r%s", at, ms[0].Attributes["ApproximateReceiveCount"]))
					if len(got) <= tc.throttles {
						return nil, &ThrottleError{StatusCode: 429, RetryAfter: tc.retryAfter}
					}
					return okResponse(""), nil
				})
				r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, MaxConcurrency: 2, InvokeTimeout: tc.timeout}, q, f)
				time.Sleep(time.Minute)
				synctest.Wait()
				st := r.SQSStats()
				mu.Lock()
				calls := slices.Clone(got)
				mu.Unlock()
				for i := range calls {
					calls[i] += fmt.Sprintf(" a%d", f.attempt(i))
				}
				if !slices.Equal(calls, tc.want) {
					t.Errorf("invocations %v, want %v", calls, tc.want)
				}
				if q.remaining() != 0 || st.DeletedEvents.Load() != 10 || st.Throttles.Load() != int64(tc.throttles) {
					t.Errorf("%d left, %d deleted, %d throttles; want 0, 10, %d", q.remaining(), st.DeletedEvents.Load(), st.Throttles.Load(), tc.throttles)
				}
				drain(t, r, done)
			})
		})
	}
}

// A poller that leaves the pool, or a draining one, invokes the messages it
// received past its last payload cut; returned to the queue, they would
// reach the function for the first time as received twice.
func TestSQSLeavingPollerInvokesWhatItHolds(t *testing.T) {
	for _, how := range []string{"pool shrinks", "drain"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newFakeQueue(false, 30*time.Second)
				q.sendNumbered(40, 2, 300)
				var mu sync.Mutex
				first := map[string]string{} // body: receive count at its first delivery
				failed := map[string]bool{}
				calls := 0
				f := newFakeFunc(func(ms []events.SQSMessage) (*Response, error) {
					// Slow enough that pollers hold messages past their cut
					// when the pool shrinks or the drain begins.
					time.Sleep(500 * time.Millisecond)
					mu.Lock()
					defer mu.Unlock()
					calls++
					for _, m := range ms {
						if _, seen := first[m.Body]; !seen {
							first[m.Body] = m.Attributes["ApproximateReceiveCount"]
						}
					}
					if how == "pool shrinks" && calls <= 2 {
						// Failures halve the pool: pollers leave, holding
						// what their cut left over.
						for _, m := range ms {
							failed[m.Body] = true
						}
						return nil, &FunctionError{Kind: "Unhandled"}
					}
					return okResponse(""), nil
				})
				cfg := SQSConfig{BatchSize: 10, MaxPayload: 2000, InitialConcurrency: 4, MinConcurrency: 1}
				r, done := startSQS(t, t.Context(), cfg, q, f)
				if how == "drain" {
					time.Sleep(100 * time.Millisecond)
					drain(t, r, done)
				} else {
					time.Sleep(2 * time.Minute)
					synctest.Wait()
					drain(t, r, done)
				}
				mu.Lock()
				defer mu.Unlock()
				var wrong []string
				for body, n := range first {
					if n != "1" && !failed[body] {
						wrong = append(wrong, body[:2]+"@"+n)
					}
				}
				slices.Sort(wrong)
				if len(wrong) > 0 {
					t.Errorf("first delivered with a receive count above 1, never invoked before: %v", wrong)
				}
				if st := r.SQSStats(); how == "pool shrinks" && (q.remaining() != 0 || st.DeletedEvents.Load() != 40) {
					t.Errorf("%d left, %d deleted; want 0, 40", q.remaining(), st.DeletedEvents.Load())
				}
				if how == "drain" {
					// The four pollers received all 40 at once; a drain
					// invokes what each holds, and returns none of it.
					q.mu.Lock()
					released := len(q.setVis)
					q.mu.Unlock()
					if st := r.SQSStats(); released != 0 || st.DeletedEvents.Load() != 40 || len(first) != 40 {
						t.Errorf("drain: %d visibility changes, %d deleted, %d invoked; want 0, 40, 40", released, st.DeletedEvents.Load(), len(first))
					}
				}
			})
		})
	}
}

// A drain starts no more throttle retries: the batch returns to the queue
// and the drain ends at once, not at the visibility timeout.
func TestSQSDrainEndsThrottleRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newFakeQueue(false, 10*time.Minute)
		q.send("", bodiesN("d", 10)...)
		f := newFakeFunc(func([]events.SQSMessage) (*Response, error) {
			return nil, &ThrottleError{StatusCode: 429, RetryAfter: time.Second}
		})
		r, done := startSQS(t, t.Context(), SQSConfig{BatchSize: 10, MaxConcurrency: 2}, q, f)
		time.Sleep(2500 * time.Millisecond)
		began := time.Now()
		drain(t, r, done)
		if d := time.Since(began); d > time.Second {
			t.Errorf("the drain took %s while the function throttled", d)
		}
		st := r.SQSStats()
		if n := len(f.snapshot()); st.Throttles.Load() != int64(n) || st.ReturnedEvents.Load() != 10 || st.DeletedEvents.Load() != 0 {
			t.Errorf("%d throttles for %d invocations, %d returned, %d deleted; want equal, 10, 0", st.Throttles.Load(), n, st.ReturnedEvents.Load(), st.DeletedEvents.Load())
		}
	})
}

// Every poller leaves the pool's count once, however it leaves: retiring
// from a shrinking pool, or on drain, while what it held past its payload
// cut is throttled.
func TestSQSPollerCountAfterThrottlesAndCarry(t *testing.T) {
	for _, how := range []string{"drain", "pool shrinks"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := newFakeQueue(false, 5*time.Minute)
				q.sendNumbered(2000, 4, 300)
				start := time.Now()
				f := newFakeFunc(func([]events.SQSMessage) (*Response, error) {
					time.Sleep(400 * time.Millisecond)
					switch since := time.Since(start); {
					case since < 1300*time.Millisecond:
						return nil, &FunctionError{Kind: "Unhandled"} // shrinks the pool
					case since < 30*time.Second:
						return nil, &ThrottleError{StatusCode: 429, RetryAfter: time.Second}
					}
					return okResponse(""), nil
				})
				cfg := SQSConfig{BatchSize: 10, MaxPayload: 3000, InitialConcurrency: 8, MinConcurrency: 1, MaxConcurrency: 8}
				r, done := startSQS(t, t.Context(), cfg, q, f)
				if how == "drain" {
					time.Sleep(1050 * time.Millisecond)
				} else {
					time.Sleep(2 * time.Minute)
					synctest.Wait()
				}
				drain(t, r, done)
				if n := r.live.Load(); n != 0 {
					t.Errorf("%d pollers counted live after Run returned, want 0", n)
				}
			})
		})
	}
}
