package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/esmd-dev/esmd/test/functions"
	"github.com/esmd-dev/esmd/test/servers"
)

// invokerKind is one kind of function esmd can invoke. Each runs the test
// function of package functions, which forwards every event to the
// recording sink and answers with the sink's answer, so that one scenario
// and its assertions hold for every kind.
type invokerKind struct {
	name string
	// function returns the YAML of the function (indented under its name)
	// and extra lines for aws.endpoints.
	function func(t *testing.T, sinkURL string) (yaml, endpoints string)
}

var invokerKinds = []invokerKind{
	{"http", func(t *testing.T, sinkURL string) (string, string) {
		return fmt.Sprintf("    http: {url: %q, timeout: 30s}\n", sinkURL), ""
	}},
	{"lambda-rie", func(t *testing.T, sinkURL string) (string, string) {
		// RIE passes its environment to the handler: env sets the sink.
		ep := servers.RIE(t, []string{"env", functions.ForwardEnv + "=" + sinkURL, functions.GoHandler(t)}, 30*time.Second)
		return "    lambda: {functionName: sink, rieCompat: true, timeout: 40s}\n", "    lambda: " + ep + "\n"
	}},
	{"runtime-go", func(t *testing.T, sinkURL string) (string, string) {
		return fmt.Sprintf("    runtime:\n      command: [%q]\n      concurrency: 2\n      timeout: 30s\n      environment: {%s: %q}\n",
			functions.GoHandler(t), functions.ForwardEnv, sinkURL), ""
	}},
	{"runtime-python", func(t *testing.T, sinkURL string) (string, string) {
		return fmt.Sprintf("    runtime:\n      command: [%q, -m, awslambdaric, handler.handle]\n      concurrency: 2\n      timeout: 30s\n      environment: {%s: %q, PYTHONPATH: %q}\n",
			functions.Python(t), functions.ForwardEnv, sinkURL, functions.PyHandlerDir()), ""
	}},
	{"nats", func(t *testing.T, sinkURL string) (string, string) {
		url := servers.NATS(t)
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		subject := "fn." + servers.UniqueName("sink")
		svc, err := functions.NATSService(nc, subject, sinkURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
		return fmt.Sprintf("    nats: {url: %q, subject: %q, timeout: 30s}\n", url, subject), ""
	}},
	{"exec", func(t *testing.T, sinkURL string) (string, string) {
		return fmt.Sprintf("    exec: {command: [env, %q, python3, %q], timeout: 30s}\n",
			functions.ForwardEnv+"="+sinkURL, filepath.Join(functions.PyHandlerDir(), "handler.py")), ""
	}},
}

// withFunction swaps the sink's http function in a streamYAML configuration
// for fn, and adds endpoint lines.
func withFunction(t *testing.T, cfg, sinkURL, fn, endpoints string) string {
	t.Helper()
	old := fmt.Sprintf("    http: {url: %q, timeout: 30s}\n", sinkURL)
	if !strings.Contains(cfg, old) {
		t.Fatalf("configuration has no %q:\n%s", old, cfg)
	}
	cfg = strings.Replace(cfg, old, fn, 1)
	return strings.Replace(cfg, "  endpoints:\n", "  endpoints:\n"+endpoints, 1)
}

// TestKinesisThroughEachInvoker runs the poison-record scenario through each
// kind of function: a Kinesis batch whose function fails on one record is
// bisected down to that record, whose failure record reaches the on-failure
// queue, while every other record succeeds exactly once; partial batch
// responses pass back through the invoker.
func TestKinesisThroughEachInvoker(t *testing.T) {
	for _, k := range invokerKinds {
		t.Run(k.name, func(t *testing.T) {
			ep := servers.Kinesalite(t)
			moto := servers.Moto(t)
			name := servers.UniqueName("inv")
			arn := servers.CreateStream(t, ep, name, 1)
			qurl, qarn := servers.CreateQueue(t, moto, servers.UniqueName("failures"), nil)
			var recs []put
			for i := range 40 {
				recs = append(recs, put{Key: fmt.Sprintf("k%d", i), Data: []byte(fmt.Sprintf("r%03d", i))})
			}
			putRecords(t, ep, name, recs)
			poisoned := func(c call) bool {
				for _, r := range c.Recs {
					if r.Data == "r017" {
						return true
					}
				}
				return false
			}
			s := newSink(t, func(c call) (int, string) {
				if poisoned(c) {
					return 500, ""
				}
				return 200, `{"batchItemFailures":[]}`
			})
			fn, eps := k.function(t, s.srv.URL)
			dir := t.TempDir()
			cfg := streamYAML(fmt.Sprintf("    kinesis: %s\n    sqs: %s\n", ep, moto), dir, arn, s.srv.URL, fmt.Sprintf(`BatchSize: 40
MaximumBatchingWindowInSeconds: 1
BisectBatchOnFunctionError: true
MaximumRetryAttempts: 0
FunctionResponseTypes: [ReportBatchItemFailures]
DestinationConfig: {OnFailure: {Destination: %s}}
esmd: {pollInterval: 100ms, retryBackoff: {initial: 10ms, max: 50ms}}`, qarn))
			cfg = withFunction(t, cfg, s.srv.URL, fn, eps)
			p := startESMD(t, dir, cfg)

			bodies := receiveAll(t, moto, qurl, 1, 60*time.Second)
			if len(bodies) != 1 {
				t.Fatalf("%d failure records, want 1", len(bodies))
			}
			poisonSeq := seqOf(s, "r017")
			f := decodeFailure(t, bodies[0])
			bi := f.info()
			if bi.BatchSize != 1 || bi.StartSeq != poisonSeq || bi.EndSeq != poisonSeq || bi.StreamARN != arn ||
				f.RequestContext.Condition != "RetryAttemptsExhausted" || f.ResponseContext.FunctionError != "Unhandled" ||
				f.RequestContext.FunctionARN != "arn:aws:lambda:us-east-1:000000000000:function:sink" {
				t.Fatalf("failure record = %+v %+v (poison seq %s)", f, bi, poisonSeq)
			}
			ok := map[string]int{}
			waitFor(t, 30*time.Second, "every good record", func() bool {
				ok = map[string]int{}
				for _, c := range s.snapshot() {
					if !poisoned(c) {
						for _, r := range c.Recs {
							ok[r.Data]++
						}
					}
				}
				return len(ok) == 39
			})
			for i := range 40 {
				d := fmt.Sprintf("r%03d", i)
				if n := ok[d]; (i == 17 && n != 0) || (i != 17 && n != 1) {
					t.Errorf("%s succeeded %d times", d, n)
				}
			}
			if code := p.term(30 * time.Second); code != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0", code)
			}
		})
	}
}
