package chaos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/servers"
)

// failureLine is the part of a failure record the function fault tests read.
type failureLine struct {
	RequestContext struct {
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		FunctionError string `json:"functionError"`
	} `json:"responseContext"`
	KinesisBatchInfo struct {
		BatchSize int `json:"batchSize"`
	} `json:"KinesisBatchInfo"`
}

// readFailures reads the failure records a file:// destination wrote.
func readFailures(t *testing.T, path string) []failureLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []failureLine
	for line := range strings.Lines(string(b)) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var f failureLine
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("failure record %q: %v", line, err)
		}
		out = append(out, f)
	}
	return out
}

// TestFunctionFaults runs one esmd per misbehaving function against
// kinesalite, under a watchdog that fails the test after 60 s without an
// invocation, and checks each outcome against README's "What it does,
// exactly".
func TestFunctionFaults(t *testing.T) {
	t.Parallel()
	ep := servers.Kinesalite(t)

	type scenario struct {
		name    string
		records int
		fn      string // extra http function settings
		mapping string
		// respond answers call number n (from 0).
		respond func(w http.ResponseWriter, n int, c call) (int, string)
		check   func(t *testing.T, s *sink, l *ledger, failures []failureLine, log string)
	}
	hijack := func(w http.ResponseWriter) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			abortConn(conn)
		}
	}
	slowCalls := atomic.Int64{}
	var peakMu sync.Mutex
	active, peak := 0, 0
	scenarios := []scenario{
		{
			// A hang is a timeout: a function error that counts attempts.
			name: "hang", records: 20, fn: ", timeout: 1s",
			mapping: "BatchSize: 10\nMaximumRetryAttempts: 1",
			respond: func(w http.ResponseWriter, n int, c call) (int, string) {
				if containsData(c, "key-0:0") {
					select {
					case <-c.Req.Context().Done():
					case <-time.After(30 * time.Second):
					}
					return 0, "" // esmd has given up on this call
				}
				return 200, ""
			},
			check: func(t *testing.T, s *sink, l *ledger, failures []failureLine, log string) {
				if len(failures) != 1 || failures[0].RequestContext.Condition != "RetryAttemptsExhausted" ||
					failures[0].RequestContext.ApproximateInvokeCount != 2 || failures[0].KinesisBatchInfo.BatchSize != 10 {
					t.Fatalf("failure records %+v, want one RetryAttemptsExhausted after 2 invocations of the 10 records", failures)
				}
				if n := countLines(log, "Sandbox.Timedout"); n == 0 && countLines(log, "timed out") == 0 {
					t.Error("no log line says the function timed out")
				}
			},
		},
		{
			// A dropped connection is an invoke-side error: retried
			// without counting attempts, so MaximumRetryAttempts 0 does
			// not give up.
			name: "crash", records: 20,
			mapping: "BatchSize: 10\nMaximumRetryAttempts: 0",
			respond: func(w http.ResponseWriter, n int, c call) (int, string) {
				if n < 4 {
					hijack(w)
					return 0, ""
				}
				return 200, ""
			},
			check: func(t *testing.T, s *sink, l *ledger, failures []failureLine, log string) {
				if len(failures) != 0 {
					t.Fatalf("failure records %+v after dropped connections, want none (not counted as attempts)", failures)
				}
			},
		},
		{
			// A body that is not JSON fails the whole batch.
			name: "malformed JSON", records: 10,
			mapping: "BatchSize: 10\nMaximumRetryAttempts: 2\nFunctionResponseTypes: [ReportBatchItemFailures]",
			respond: func(w http.ResponseWriter, n int, c call) (int, string) {
				if n < 2 {
					return 200, `{"batchItemFailures":[{"itemIdentifier":`
				}
				return 200, `{"batchItemFailures":[]}`
			},
			check: func(t *testing.T, s *sink, l *ledger, failures []failureLine, log string) {
				calls := s.snapshot()
				if len(calls) != 3 || len(failures) != 0 {
					t.Fatalf("%d invocations and %d failure records, want the whole batch 3 times and none", len(calls), len(failures))
				}
				for _, c := range calls {
					if len(c.Recs) != 10 {
						t.Fatalf("an invocation had %d records, want the whole batch of 10", len(c.Recs))
					}
				}
			},
		},
		{
			// A partial response naming an id not in the batch fails the
			// whole batch; once attempts run out it goes to the
			// destination.
			name: "unknown itemIdentifier", records: 10,
			mapping: "BatchSize: 10\nMaximumRetryAttempts: 1\nFunctionResponseTypes: [ReportBatchItemFailures]",
			respond: func(w http.ResponseWriter, n int, c call) (int, string) {
				return 200, `{"batchItemFailures":[{"itemIdentifier":"49999999999999999999999999999999999999999999999999999999"}]}`
			},
			check: func(t *testing.T, s *sink, l *ledger, failures []failureLine, log string) {
				calls := s.snapshot()
				if len(calls) != 2 || len(failures) != 1 || failures[0].KinesisBatchInfo.BatchSize != 10 ||
					failures[0].RequestContext.ApproximateInvokeCount != 2 {
					t.Fatalf("%d invocations, failure records %+v; want 2 whole-batch invocations, then the 10 records given up", len(calls), failures)
				}
			},
		},
		{
			// Very slow under load: every lane stays busy, nothing stalls.
			name: "slow under load", records: size(3_000, 20_000),
			mapping: "BatchSize: 10\nParallelizationFactor: 10",
			respond: func(w http.ResponseWriter, n int, c call) (int, string) {
				peakMu.Lock()
				active++
				peak = max(peak, active)
				peakMu.Unlock()
				slowCalls.Add(1)
				time.Sleep(100 * time.Millisecond)
				peakMu.Lock()
				active--
				peakMu.Unlock()
				return 200, ""
			},
			check: func(t *testing.T, s *sink, l *ledger, failures []failureLine, log string) {
				peakMu.Lock()
				defer peakMu.Unlock()
				if peak < 5 || peak > 10 {
					t.Fatalf("peak concurrency %d, want the 10 lanes busy (at least 5, at most 10)", peak)
				}
			},
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			name := servers.UniqueName("fn")
			arn := servers.CreateStream(t, ep, name, 1)
			recs := keyedRecords(20, sc.records)
			putRecords(t, ep, name, recs)
			l := newLedger()
			var n atomic.Int64
			var okMu sync.Mutex
			ok := map[string]bool{}
			s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
				status, body := sc.respond(w, int(n.Add(1)-1), c)
				l.observe(0, c.Recs)
				if status == 200 && !strings.Contains(body, "itemIdentifier") {
					okMu.Lock()
					for _, d := range dataOf(c) {
						ok[d] = true
					}
					okMu.Unlock()
				}
				return status, body
			})
			dir := t.TempDir()
			dest := filepath.Join(dir, "failures.jsonl")
			p := startESMD(t, dir, baseYAML("    kinesis: "+ep+"\n", dir, s.srv.URL, sc.fn)+mappingYAML(arn, sc.mapping+fmt.Sprintf(`
StartingPosition: TRIM_HORIZON
DestinationConfig: {OnFailure: {Destination: "file://%s"}}
esmd: {pollInterval: 50ms, retryBackoff: {initial: 50ms, max: 500ms}}`, dest)))
			stop := watchdog(t, s, 60*time.Second)
			start := time.Now()
			// Done when every record either succeeded or was given up.
			waitFor(t, 3*time.Minute, "every record succeeded or given up", func() bool {
				if p.exited() {
					t.Fatal("esmd exited")
				}
				okMu.Lock()
				done := len(ok)
				okMu.Unlock()
				for _, f := range readFailures(t, dest) {
					done += f.KinesisBatchInfo.BatchSize
				}
				return done >= sc.records
			})
			took := time.Since(start)
			time.Sleep(300 * time.Millisecond) // nothing more may come
			stop()
			if code := p.term(30 * time.Second); code != 0 {
				t.Errorf("drain exited %d", code)
			}
			failures := readFailures(t, dest)
			given := 0
			for _, f := range failures {
				given += f.KinesisBatchInfo.BatchSize
			}
			lost := sc.records - len(ok) - given
			if lost != 0 {
				t.Errorf("%d records neither succeeded nor reached the destination", lost)
			}
			sc.check(t, s, l, failures, p.log())
			result(t, "function: "+sc.name, s.ncalls(), sc.records, max(lost, 0), l.snap().dups, fmt.Sprintf("%s to finish; %d given up with a failure record", took.Round(100*time.Millisecond), given))
		})
	}
}

func containsData(c call, d string) bool {
	for _, r := range c.Recs {
		if r.Data == d {
			return true
		}
	}
	return false
}
