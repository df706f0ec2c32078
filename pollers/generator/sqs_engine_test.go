package generator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
	"github.com/esmd-dev/esmd/test/fakes"
)

// partialFunc answers SQS-shaped events with a partial batch response:
// every message in fail is reported failed on its first failN deliveries,
// by its messageId. It logs every invocation.
type partialFunc struct {
	fail  map[string]bool
	failN int

	mu    sync.Mutex
	calls []partialCall
	got   map[string]int // deliveries per messageId
}

type partialCall struct {
	ids    []string
	failed []string
}

func (f *partialFunc) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(req.Payload, &ev); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := partialCall{}
	for _, m := range ev.Records {
		c.ids = append(c.ids, m.MessageId)
		f.got[m.MessageId]++
		if f.fail[m.MessageId] && f.got[m.MessageId] <= f.failN {
			c.failed = append(c.failed, m.MessageId)
		}
	}
	f.calls = append(f.calls, c)
	// Name the failures from the last to the first: the engine must still
	// retry from the lowest.
	var resp struct {
		BatchItemFailures []map[string]string `json:"batchItemFailures"`
	}
	resp.BatchItemFailures = []map[string]string{}
	for _, id := range slices.Backward(c.failed) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, map[string]string{"itemIdentifier": id})
	}
	body, _ := json.Marshal(resp)
	return &mapping.Response{Body: body, StatusCode: 200}, nil
}

// TestEngineSQSPartialBatch runs an SQS-shaped generator through the stream
// engine with ReportBatchItemFailures: the function names failed messages by
// messageId, and the engine retries exactly from the lowest failed message of
// each batch (Lambda's partial batch rule for streams), so every message
// succeeds once. A message that keeps failing ends in a failure record of
// the stream engine's form, naming the generator's shard and sequence
// numbers.
func TestEngineSQSPartialBatch(t *testing.T) {
	spec := generator.Spec{Name: "jobs", Shards: 1, Keys: 20, Count: 300, Seed: 4, Shape: event.SQS, ReadSize: 10}
	recs := allRecords(t, spec)["shardId-000000000000"]
	if len(recs) != 300 {
		t.Fatalf("%d records", len(recs))
	}
	pos := map[string]int{}
	for i, r := range recs {
		pos[r.ID] = i
	}
	cases := []struct {
		name     string
		failN    int // deliveries on which a failing message fails
		maxRetry int
		every    int // every this many-th message fails
	}{
		{"retried from the lowest failed", 1, -1, 7},
		{"failed twice", 2, -1, 23},
		{"given up", 1000, 2, 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fn := &partialFunc{fail: map[string]bool{}, failN: tc.failN, got: map[string]int{}}
			var failing []string
			for i, r := range recs {
				if i%tc.every == 3 {
					fn.fail[r.ID] = true
					failing = append(failing, r.ID)
				}
			}
			dest := &captureDest{gaveUp: map[string]bool{}, seqs: map[*event.Failure][]string{}, json: map[*event.Failure]string{}}
			cps := fakes.NewCheckpoints()
			src, err := generator.New(generator.Config{Spec: spec})
			if err != nil {
				t.Fatal(err)
			}
			cfg := mapping.Config{
				Name: "m", Kind: src.Kind(), SourceARN: spec.StreamARN(), BatchSize: 10, ParallelizationFactor: 1,
				MaxRecordAge: -1, MaxRetryAttempts: tc.maxRetry, ReportBatchItemFailures: true,
				RetryInitial: time.Millisecond, RetryMax: 2 * time.Millisecond, ProgressInterval: -1,
			}
			r, err := mapping.NewRunner(cfg, mapping.Deps{Source: src, Invoker: fn, Destination: dest, Checkpointer: cps})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := r.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if p := cps.Get("m", "shardId-000000000000"); !p.Finished {
				t.Fatalf("checkpoint %+v, want the shard finished", p)
			}

			// One shard, one lane: invocations follow each other. After a
			// partial failure the next invocation is exactly the batch from
			// its lowest failed message on (unless the engine gave up on
			// it); otherwise it starts with the message after the last one.
			succeeded := map[string]int{}
			next := 0
			var pending []string   // the retry the last invocation asked for
			var givenUp [][]string // sequence numbers of the spans the engine gave up
			for i, c := range fn.calls {
				if pending != nil && !slices.Equal(c.ids, pending) {
					t.Fatalf("invocation %d: %v, want the retry %v", i, c.ids, pending)
				} else if pending == nil && pos[c.ids[0]] != next {
					t.Fatalf("invocation %d starts with message %d, want %d", i, pos[c.ids[0]], next)
				}
				for j, id := range c.ids {
					if pos[id] != pos[c.ids[0]]+j {
						t.Fatalf("invocation %d: messages %v are not consecutive", i, c.ids)
					}
				}
				low := len(c.ids)
				for _, id := range c.failed {
					low = min(low, slices.Index(c.ids, id))
				}
				for _, id := range c.ids[:low] {
					succeeded[id]++
				}
				pending = nil
				if low < len(c.ids) {
					pending = c.ids[low:]
				}
				next = pos[c.ids[len(c.ids)-1]] + 1
				if pending != nil && dest.gaveUp[pending[0]] && countIn(fn.calls[:i+1], pending[0]) == tc.maxRetry+1 {
					// The engine gave up on the rest: it went to the
					// destination, and the next batch follows it.
					var seqs []string
					for _, id := range pending {
						seqs = append(seqs, recs[pos[id]].Seq)
					}
					givenUp = append(givenUp, seqs)
					pending = nil
				}
			}
			if pending != nil {
				t.Fatalf("the last invocation asked for a retry of %v that never came", pending)
			}
			var firsts []string
			got := dest.Got()
			if len(got) != len(givenUp) {
				t.Fatalf("%d failure records, want %d: one per message failed %d times", len(got), len(givenUp), tc.maxRetry+1)
			}
			for i, f := range got {
				// Lambda has no on-failure destination for SQS: the
				// generator's failure records keep the stream form, with
				// the queue ARN as the stream ARN.
				if f.Source != event.SQS || f.ShardID != "shardId-000000000000" || f.StreamARN != "arn:aws:sqs:us-east-1:000000000000:jobs" ||
					f.Condition != event.RetryAttemptsExhausted {
					t.Fatalf("failure record %+v", f)
				}
				seqs := dest.seqs[f]
				if !slices.Equal(seqs, givenUp[i]) {
					t.Fatalf("failure record %d names %v, want the last retry %v", i, seqs, givenUp[i])
				}
				firsts = append(firsts, seqs[0])
				if f.BatchSize != len(seqs) || f.StartSeq != seqs[0] || f.EndSeq != seqs[len(seqs)-1] {
					t.Fatalf("failure record %s–%s of %d does not name its records' sequence numbers %v", f.StartSeq, f.EndSeq, f.BatchSize, seqs)
				}
				if want := fmt.Sprintf(`"KinesisBatchInfo":{"shardId":"shardId-000000000000","startSequenceNumber":%q,"endSequenceNumber":%q`, f.StartSeq, f.EndSeq); !strings.Contains(dest.json[f], want) {
					t.Fatalf("failure record %s, want it to hold %s", dest.json[f], want)
				}
			}
			for _, r := range recs {
				want := 1
				if dest.gaveUp[r.ID] {
					want = 0
				}
				if succeeded[r.ID] != want {
					t.Fatalf("message %d (%s) succeeded %d times, want %d", pos[r.ID], r.ID, succeeded[r.ID], want)
				}
			}
			var wantFirsts []string
			if tc.maxRetry >= 0 {
				for _, id := range failing {
					wantFirsts = append(wantFirsts, recs[pos[id]].Seq)
				}
			}
			if !slices.Equal(firsts, wantFirsts) {
				t.Fatalf("failure records start with %v, want the failing messages %v", firsts, wantFirsts)
			}
			// Every failing message was reported failed as often as asked,
			// or until the engine gave up.
			for _, id := range failing {
				n := 0
				for _, c := range fn.calls {
					if slices.Contains(c.failed, id) {
						n++
					}
				}
				want := tc.failN
				if dest.gaveUp[id] {
					want = tc.maxRetry + 1
				}
				if n != want {
					t.Fatalf("message %d reported failed %d times, want %d", pos[id], n, want)
				}
			}
		})
	}
}

// captureDest is a fakes.Destination that also keeps what a failure record
// names while Send runs: the engine reuses the records afterwards.
type captureDest struct {
	fakes.Destination
	mu     sync.Mutex
	gaveUp map[string]bool // messageIds
	seqs   map[*event.Failure][]string
	json   map[*event.Failure]string
}

func (d *captureDest) Send(ctx context.Context, f *event.Failure) error {
	j, err := json.Marshal(f)
	if err != nil {
		return err
	}
	d.mu.Lock()
	for _, r := range f.Records {
		d.gaveUp[r.ID] = true
		d.seqs[f] = append(d.seqs[f], r.Seq)
	}
	d.json[f] = string(j)
	d.mu.Unlock()
	return d.Destination.Send(ctx, f)
}

func countIn(calls []partialCall, id string) int {
	n := 0
	for _, c := range calls {
		if slices.Contains(c.ids, id) {
			n++
		}
	}
	return n
}
