package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
)

// answer is an invoker that gives one response to every invocation.
type answer struct{ body string }

func (a answer) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	return &mapping.Response{Body: []byte(a.body), StatusCode: 200}, nil
}

// generated returns the first n records of shard 0 of a generator.
func generated(t *testing.T, spec generator.Spec, n int) []event.Record {
	t.Helper()
	spec.Name, spec.Shards, spec.Count = "obs", 1, int64(n)
	src, err := generator.New(generator.Config{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.Open(t.Context(), event.Shard{ID: "shardId-000000000000"}, event.Start{Type: event.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Read(t.Context())
	if err != nil || len(res.Records) != n {
		t.Fatalf("read %d records: %v", len(res.Records), err)
	}
	return res.Records
}

// TestObserverPartialBatchResponse checks that the observer counts as
// succeeded only the records before the first one a partial batch response
// names, as the engine resolves them, and none when the response is
// malformed.
func TestObserverPartialBatchResponse(t *testing.T) {
	failures := func(ids ...string) string {
		var parts []string
		for _, id := range ids {
			parts = append(parts, fmt.Sprintf(`{"itemIdentifier":%q}`, id))
		}
		return `{"batchItemFailures":[` + strings.Join(parts, ",") + `]}`
	}
	for _, shape := range []event.Kind{event.Kinesis, event.DynamoDB, event.SQS} {
		recs := generated(t, generator.Spec{Shape: shape}, 10)
		id := func(i int) string { return recs[i].ID }
		cases := []struct {
			name    string
			partial bool // ReportBatchItemFailures
			body    string
			ok      int64 // records that succeeded
			partly  int64 // partial batches
			errs    int64 // function errors
		}{
			{"success", true, `{"batchItemFailures":[]}`, 10, 0, 0},
			{"empty body", true, ``, 10, 0, 0},
			{"null", true, `null`, 10, 0, 0},
			{"a string", true, `"done"`, 10, 0, 0},
			{"null list", true, `{"batchItemFailures":null}`, 10, 0, 0},
			{"one failed", true, failures(id(3)), 3, 1, 0},
			{"the lowest position wins", true, failures(id(7), id(2), id(5)), 2, 1, 0},
			{"the first failed", true, failures(id(0)), 0, 1, 0},
			{"the last failed", true, failures(id(9)), 9, 1, 0},
			{"an unknown id fails the batch", true, failures(id(3), "nope"), 0, 0, 1},
			{"an empty id fails the batch", true, failures(""), 0, 0, 1},
			{"no itemIdentifier fails the batch", true, `{"batchItemFailures":[{"id":"x"}]}`, 0, 0, 1},
			{"not JSON fails the batch", true, `{"batchItemFailures":`, 0, 0, 1},
			{"failures without ReportBatchItemFailures", false, failures(id(3)), 10, 0, 0},
		}
		for _, tc := range cases {
			t.Run(string(shape)+"/"+tc.name, func(t *testing.T) {
				o := newObserver(answer{tc.body}, faults{}, 1)
				o.partial = tc.partial
				if _, err := o.Invoke(t.Context(), &mapping.Request{Payload: event.AppendEvent(nil, recs)}); err != nil {
					t.Fatal(err)
				}
				okBatches := int64(0)
				if tc.ok == 10 {
					okBatches = 1
				}
				checkAll(t, []check{
					{"records that succeeded", o.okRecords, tc.ok},
					{"partial batches", o.partialBatches, tc.partly},
					{"records reported failed", o.reportedFailed, tc.partly * (10 - tc.ok)},
					{"function errors", o.functionErrors, tc.errs},
					{"successful batches", o.okBatches, okBatches},
					{"delivered", o.deliveredRecords, int64(10)},
					{"unparsed", o.unparsed, int64(0)},
				})
			})
		}
	}
}

// TestObserverCountsWithoutData checks that records whose data is not the
// generator's JSON are still counted, told apart and checked for
// duplicates, and that --poison finds their poison records.
func TestObserverCountsWithoutData(t *testing.T) {
	cases := []struct {
		name     string
		spec     generator.Spec
		unparsed int64
	}{
		{"json", generator.Spec{}, 0},
		{"random", generator.Spec{Payload: generator.PayloadRandom}, 20},
		{"template", generator.Spec{Template: `<{{key}}|{{n}}|{{pad}}>`}, 20},
		{"random sqs", generator.Spec{Payload: generator.PayloadRandom, Shape: event.SQS}, 20},
		{"random dynamodb", generator.Spec{Payload: generator.PayloadRandom, Shape: event.DynamoDB}, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs := generated(t, tc.spec, 20)
			o := newObserver(answer{`{}`}, faults{}, 1)
			payload := event.AppendEvent(nil, recs)
			for range 2 { // the second time, every record is a duplicate
				if _, err := o.Invoke(t.Context(), &mapping.Request{Payload: payload}); err != nil {
					t.Fatal(err)
				}
			}
			checkAll(t, []check{
				{"records that succeeded", o.okRecords, int64(20)},
				{"succeeded again", o.okAgain, int64(20)},
				{"delivered", o.deliveredRecords, int64(40)},
				{"duplicates", o.duplicates, int64(20)},
				{"unparsed", o.unparsed, tc.unparsed},
			})

			// Poison: the batch fails when it holds a poison record, which
			// the generator names by its place.
			spec := tc.spec
			spec.Poison = 0.2
			recs = generated(t, spec, 20)
			spec.Name, spec.Shards, spec.Count = "obs", 1, 20
			src, err := generator.New(generator.Config{Spec: spec})
			if err != nil {
				t.Fatal(err)
			}
			o = newObserver(answer{`{}`}, faults{Poison: 0.2}, 1)
			o.poison = src.Poison
			poison := 0
			for _, r := range recs {
				_, err := o.Invoke(t.Context(), &mapping.Request{Payload: event.AppendEvent(nil, []event.Record{r})})
				var fe *mapping.FunctionError
				if errors.As(err, &fe) && fe.Type == "PoisonRecord" {
					poison++
				} else if err != nil {
					t.Fatal(err)
				}
				shard, n, _ := generator.ParseSeq(r.Seq)
				if (err != nil) != src.Poison(shard, n) {
					t.Fatalf("record %s: poison %v, invocation error %v", r.Seq, src.Poison(shard, n), err)
				}
			}
			if poison == 0 || o.okRecords != int64(20-poison) {
				t.Fatalf("%d poison records, %d succeeded", poison, o.okRecords)
			}
		})
	}
}

// partialHandler is a function that reports records failed by a partial
// batch response: every record whose number in its shard is a multiple of
// 9, always or only the first time it is seen. It counts, as the engine
// resolves them, the distinct records that succeeded: those before the
// first failed one of each batch.
type partialHandler struct {
	always bool

	mu   sync.Mutex
	seen map[string]bool
	ok   map[string]bool
}

func (h *partialHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen, h.ok = map[string]bool{}, map[string]bool{}
	}
	type failure struct {
		ID string `json:"itemIdentifier"`
	}
	var failed []failure
	var ids []string
	_ = generator.ScanRecords(body, func(rec generator.EventRecord) {
		id := string(rec.ID)
		if rec.N%9 == 0 && (h.always || !h.seen[id]) {
			failed = append(failed, failure{id})
		}
		if len(failed) == 0 {
			ids = append(ids, id)
		}
		h.seen[id] = true
	})
	for _, id := range ids {
		h.ok[id] = true
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"batchItemFailures": failed})
}

func (h *partialHandler) succeeded() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return int64(len(h.ok))
}

// TestBenchPartialBatchResponse benches a function that answers with
// partial batch responses: the records it reports failed, and those after
// them in their batch, are not counted as succeeded, the records that
// succeeded and failed add up to those generated, and the run completes
// only once they do.
func TestBenchPartialBatchResponse(t *testing.T) {
	cases := []struct {
		shape  string
		always bool // fail the same records on every attempt
	}{
		{"kinesis", true},
		{"dynamodb", true},
		{"sqs", true},
		{"kinesis", false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s always=%v", tc.shape, tc.always), func(t *testing.T) {
			h := &partialHandler{always: tc.always}
			srv := httptest.NewServer(h)
			defer srv.Close()
			cfgPath := writeFile(t, t.TempDir(), "esmd.yaml", `functions:
  fn:
    http: {url: "`+srv.URL+`/"}
mappings:
  - EventSourceArn: generator://p?shape=`+tc.shape+`&shards=2&keys=40&count=3000&seed=3
    FunctionName: fn
    BatchSize: 50
    FunctionResponseTypes: [ReportBatchItemFailures]
    MaximumRetryAttempts: 1
    esmd: {retryBackoff: {initial: 1ms, max: 10ms}}
`)
			rep := benchJSON(t, "-c", cfgPath)
			checkAll(t, []check{
				{"complete", rep.Complete, true},
				{"generated", rep.Generated, int64(3000)},
				{"records that succeeded, as the function says", rep.Records, h.succeeded()},
				{"records that succeeded or failed", rep.Records + rep.FailedRecords, int64(3000)},
			})
			if rep.PartialBatches == 0 || rep.ReportedFailed < rep.PartialBatches {
				t.Errorf("%d partial batches, %d records reported failed", rep.PartialBatches, rep.ReportedFailed)
			}
			if want := int64(0); !tc.always && rep.FailedRecords != want {
				t.Errorf("%d records failed, want none: each succeeds when retried", rep.FailedRecords)
			}
		})
	}
}

// TestBenchUnparsedPayloads benches generators whose data esmd bench cannot
// parse: every record is counted, the run completes, --poison fails exactly
// the poison records, and the report says what it could not check.
func TestBenchUnparsedPayloads(t *testing.T) {
	cases := []struct {
		name, query string
	}{
		{"random", "payload=random"},
		{"template", "template=<{{key}}|{{pad}}>"},
		{"random sqs", "payload=random&shape=sqs"},
		{"random dynamodb", "payload=random&shape=dynamodb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(answerHandler(`{}`))
			defer srv.Close()
			cfgPath := writeFile(t, t.TempDir(), "esmd.yaml", `functions:
  fn:
    http: {url: "`+srv.URL+`/"}
mappings:
  - EventSourceArn: generator://u?`+tc.query+`&shards=2&keys=50&count=3000&seed=6
    FunctionName: fn
    BatchSize: 40
    BisectBatchOnFunctionError: true
    MaximumRetryAttempts: 1
    esmd: {retryBackoff: {initial: 1ms, max: 10ms}}
`)
			rep := benchJSON(t, "-c", cfgPath, "--poison", "0.005", "--duplicate", "0.05")
			poison := poisonOf(t, rep.Generator)
			checkAll(t, []check{
				{"complete", rep.Complete, true},
				{"records that succeeded", rep.Records, int64(3000 - len(poison))},
				{"failed records", rep.FailedRecords, int64(len(poison))},
				{"unparsed", rep.Unparsed, int64(3000 - len(poison))},
				{"order violations", rep.OrderViolations, int64(0)},
			})
			if len(poison) == 0 || rep.InjectedPoison == 0 || rep.InjectedDup == 0 || rep.Duplicates == 0 || rep.RecordsPerSec <= 0 {
				t.Errorf("%d poison records; report %+v", len(poison), rep)
			}

			code, out, errOut := runBench(t, "-c", cfgPath)
			if code != exitOK || !strings.Contains(out, "run (complete)") || !strings.Contains(out, "3000 / 0 / 3000") ||
				!regexp.MustCompile(`not checked\s+per-key order and end-to-end latency of 3000 records`).MatchString(out) ||
				!regexp.MustCompile(`end-to-end latency\s+not measured`).MatchString(out) {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
		})
	}
}

// answerHandler answers every request with body.
type answerHandler string

func (a answerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = io.WriteString(w, string(a))
}

// TestTimelineRates checks the rates the throughput chart draws: a steady
// rate stays level to the end of the run, the last (partial) bucket
// included, short runs get enough points, and long runs stay bounded.
func TestTimelineRates(t *testing.T) {
	cases := []struct {
		name      string
		total     time.Duration
		rate      float64 // records per second, spread evenly
		bucket    time.Duration
		minPoints int
	}{
		{"20 ms", 20 * time.Millisecond, 50000, 10 * time.Millisecond, 2},
		{"300 ms", 300 * time.Millisecond, 50000, 10 * time.Millisecond, 20},
		{"2.5 s", 2500 * time.Millisecond, 10000, 100 * time.Millisecond, 20},
		{"9.95 s", 9950 * time.Millisecond, 10000, 200 * time.Millisecond, 20},
		{"25.3 s", 25300 * time.Millisecond, 1000, time.Second, 20},
		{"3 hours", 3 * time.Hour, 10, 2 * time.Minute, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tl timeline
			step := time.Duration(float64(time.Second) / tc.rate)
			for at := step / 2; at < tc.total; at += step {
				tl.at(at).records++
			}
			tl.spread(0, tc.total, 100, 0)
			if len(tl.pts) > maxTimelineBuckets {
				t.Fatalf("%d buckets kept", len(tl.pts))
			}
			r := tl.rates(tc.total)
			if got := time.Duration(r.BucketMS * float64(time.Millisecond)); got != tc.bucket {
				t.Errorf("bucket %s, want %s", got, tc.bucket)
			}
			if len(r.Records) < tc.minPoints {
				t.Errorf("%d points, want at least %d", len(r.Records), tc.minPoints)
			}
			var records, retries float64
			for i, v := range r.Records {
				// One record more or less in a bucket is noise.
				slack := 1.5 / (r.BucketMS / 1000)
				if i == len(r.Records)-1 {
					slack *= 2
				}
				if math.Abs(v-tc.rate) > slack {
					t.Errorf("bucket %d of %d: %.1f records/s, want %.0f: %v", i, len(r.Records), v, tc.rate, r.Records)
				}
				length := r.BucketMS / 1000
				if i == len(r.Records)-1 {
					length = r.Seconds - float64(i)*length
				}
				records += v * length
				retries += r.Retries[i] * length
			}
			if want := math.Floor(tc.total.Seconds() * tc.rate); math.Abs(records-want) > 1 {
				t.Errorf("the rates add up to %.1f records, want %.0f", records, want)
			}
			if math.Abs(retries-100) > 1e-6 {
				t.Errorf("the rates add up to %.3f retries, want 100", retries)
			}
		})
	}
}

// TestRateChart checks that a rate chart draws a line of at least two
// points within the chart, also for a run of one bucket.
func TestRateChart(t *testing.T) {
	cases := []struct {
		name string
		r    rates
	}{
		{"one bucket", rates{BucketMS: 10, Seconds: 0.004, Records: []float64{2500}}},
		{"many buckets", rates{BucketMS: 100, Seconds: 2.53, Records: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25}}},
	}
	point := regexp.MustCompile(`[ML]([\d.]+),([\d.]+)`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rateChart("Throughput (records/s)", []string{"records"}, tc.r, [][]float64{tc.r.Records})
			pts := point.FindAllStringSubmatch(c.Paths[0].D, -1)
			if len(pts) < 2 || !strings.HasPrefix(c.Paths[0].D, "M") {
				t.Fatalf("path %q", c.Paths[0].D)
			}
			for _, p := range pts {
				var x, y float64
				fmt.Sscan(p[1], &x)
				fmt.Sscan(p[2], &y)
				if x < pad || x > chartW-pad || y < pad || y > chartH-pad {
					t.Fatalf("point %s,%s is outside the chart", p[1], p[2])
				}
			}
			if c.XMax != fmt.Sprint(tc.r.Seconds) {
				t.Errorf("x axis ends at %s, want %v", c.XMax, tc.r.Seconds)
			}
		})
	}
}
