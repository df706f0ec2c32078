package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/esmd-dev/esmd/test/faultproxy"
	"github.com/esmd-dev/esmd/test/servers"
)

// adminToken guards the admin server of these tests.
const adminToken = "e2e-admin-token"

// withAdmin turns on the admin server of a configuration rendered by
// kinesisYAML, streamYAML or adminSQSYAML, on a free loopback port with
// adminToken, and returns the configuration and the server's base URL.
func withAdmin(t *testing.T, yaml string) (string, string) {
	t.Helper()
	const off = `server: {listen: "off"}`
	if !strings.Contains(yaml, off) {
		t.Fatalf("configuration has no %s line", off)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", servers.FreePort(t))
	yaml = strings.Replace(yaml, off, fmt.Sprintf("server: {listen: %q, authToken: %s}", listen, adminToken), 1)
	return yaml, "http://" + listen
}

// waitAdmin waits until the admin server of p answers /healthz.
func waitAdmin(t *testing.T, p *proc, base string) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		if code, _ := adminGet(t, base, "/healthz"); code == 200 {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("esmd exited before its admin server answered")
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the admin server at %s did not answer /healthz within 30s", base)
}

// adminGet GETs path from the admin server with the token and returns the
// status code and body; code 0 means no answer.
func adminGet(t *testing.T, base, path string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	return resp.StatusCode, b
}

// metrics is one scrape: value by family name and label set.
type metrics map[string][]sample

type sample struct {
	labels map[string]string
	value  float64
}

// adminScrape reads /metrics; it returns nil while the server does not
// answer.
func adminScrape(t *testing.T, base string) metrics {
	t.Helper()
	code, body := adminGet(t, base, "/metrics")
	if code == 0 {
		return nil
	}
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := metrics{}
	for name, f := range fams {
		for _, m := range f.Metric {
			s := sample{labels: map[string]string{}}
			for _, l := range m.Label {
				s.labels[l.GetName()] = l.GetValue()
			}
			s.value = metricValue(m)
			out[name] = append(out[name], s)
		}
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// get returns the value of the one series of name whose labels include
// kv (pairs), or -1 when there is none and -2 when there are several.
func (m metrics) get(name string, kv ...string) float64 {
	v, n := 0.0, 0
	for _, s := range m[name] {
		match := true
		for i := 0; i+1 < len(kv); i += 2 {
			if s.labels[kv[i]] != kv[i+1] {
				match = false
			}
		}
		if match {
			v, n = s.value, n+1
		}
	}
	switch n {
	case 0:
		return -1
	case 1:
		return v
	}
	return -2
}

// diff compares the scrape with want (name or name{outcome} → value) and
// describes every difference.
func (m metrics) diff(want map[string]float64) string {
	var out []string
	for k, w := range want {
		name, outcome, _ := strings.Cut(strings.TrimSuffix(k, "}"), "{")
		var got float64
		if outcome != "" {
			got = m.get(name, "outcome", outcome)
		} else {
			got = m.get(name)
		}
		if got != w {
			out = append(out, fmt.Sprintf("%s = %v, want %v", k, got, w))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func TestAdminMetricsKinesisPoisonRecord(t *testing.T) {
	t.Parallel()
	ep := servers.KinesisMock(t)
	moto := servers.Moto(t)
	name := servers.UniqueName("adminpoison")
	arn := servers.CreateStream(t, ep, name, 1)
	qurl, qarn := servers.CreateQueue(t, moto, servers.UniqueName("failures"), nil)
	var recs []put
	for i := range 8 {
		data := fmt.Sprintf("r%d", i)
		if i == 5 {
			data = "poison"
		}
		recs = append(recs, put{Key: fmt.Sprintf("k%d", i), Data: []byte(data)})
	}
	putRecords(t, ep, name, recs)
	// Let the records age, so that the iterator age of every batch is at
	// least this old.
	const lag = 1500 * time.Millisecond
	time.Sleep(lag)

	poisoned := func(c call) bool {
		for _, r := range c.Recs {
			if r.Data == "poison" {
				return true
			}
		}
		return false
	}
	s := newSink(t, func(c call) (int, string) {
		if poisoned(c) {
			return 500, ""
		}
		return 200, ""
	})
	dir := t.TempDir()
	yaml, base := withAdmin(t, kinesisYAML(ep, moto, dir, arn, s.srv.URL, fmt.Sprintf(`BatchSize: 10
MaximumBatchingWindowInSeconds: 1
BisectBatchOnFunctionError: true
MaximumRetryAttempts: 0
DestinationConfig: {OnFailure: {Destination: %s}}
esmd: {pollInterval: 100ms, retryBackoff: {initial: 50ms, max: 200ms}}`, qarn)))
	waitAdmin(t, startESMD(t, dir, yaml), base)

	bodies := receiveAll(t, moto, qurl, 1, 60*time.Second)
	if len(bodies) != 1 {
		t.Fatalf("%d failure records, want 1", len(bodies))
	}
	if f := decodeFailure(t, bodies[0]); f.info().BatchSize != 1 || f.RequestContext.Condition != "RetryAttemptsExhausted" {
		t.Fatalf("failure record = %+v", f)
	}

	// What the function saw defines the exact counts: every record once
	// per invocation that carried it, failures for the poisoned ones.
	expect := func(calls []call) (map[string]float64, int) {
		var invoked, failed, fnErrs, bisects, ok, okRecs int
		for _, c := range calls {
			invoked += len(c.Recs)
			if poisoned(c) {
				failed += len(c.Recs)
				fnErrs++
				if len(c.Recs) > 1 {
					bisects++
				}
			} else {
				ok++
				okRecs += len(c.Recs)
			}
		}
		return map[string]float64{
			"esmd_polled_events_total":                           8,
			"esmd_filtered_out_events_total":                     0,
			"esmd_invoked_events_total":                          float64(invoked),
			"esmd_failed_invoke_events_total":                    float64(failed),
			"esmd_dropped_events_total":                          0,
			"esmd_on_failure_destination_delivered_events_total": 1,
			"esmd_destination_delivery_failures_total":           0,
			"esmd_invocations_total{success}":                    float64(ok),
			"esmd_invocations_total{function_error}":             float64(fnErrs),
			"esmd_invocations_total{timeout}":                    0,
			"esmd_invocations_total{throttle}":                   0,
			"esmd_invocations_total{invoke_error}":               0,
			"esmd_retries_total":                                 0,
			"esmd_bisects_total":                                 float64(bisects),
			"esmd_lanes_busy":                                    0,
			"esmd_shards_running":                                1,
			"esmd_checkpoint_lag_records":                        0,
			"esmd_mapping_healthy":                               1,
		}, okRecs
	}
	var last metrics
	var want map[string]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		calls := s.snapshot()
		var okRecs int
		want, okRecs = expect(calls)
		last = adminScrape(t, base)
		if okRecs == 7 && last != nil && last.diff(want) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never matched the %d invocations the function saw:\n%s", len(calls), last.diff(want))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// With all 8 records in the first batch, bisecting isolates the poison
	// in exactly this sequence of invocations.
	var sizes []int
	for _, c := range s.snapshot() {
		sizes = append(sizes, len(c.Recs))
	}
	if fmt.Sprint(sizes) != "[8 4 4 2 1 1 2]" {
		t.Errorf("invocation sizes = %v, want [8 4 4 2 1 1 2]", sizes)
	}
	if got := fmt.Sprint(want["esmd_invoked_events_total"], want["esmd_failed_invoke_events_total"], want["esmd_bisects_total"]); got != "22 15 3" {
		t.Errorf("invoked, failed, bisects = %s, want 22 15 3", got)
	}
	age := last.get("esmd_iterator_age_milliseconds")
	if age < float64(lag.Milliseconds()) || age > 60000 {
		t.Errorf("iterator age = %v ms, want at least %d while the records lagged", age, lag.Milliseconds())
	}
	for _, s := range last["esmd_polled_events_total"] {
		if s.labels["source"] != "kinesis" || !strings.Contains(s.labels["mapping"], name) || s.labels["uuid"] == "" {
			t.Errorf("labels = %v", s.labels)
		}
	}

	// The same mapping through /mappings and `esmd status`.
	code, body := adminGet(t, base, "/mappings")
	var list struct {
		EventSourceMappings []struct {
			UUID, EventSourceArn, State, LastProcessingResult string
			MaximumRetryAttempts                              int
			BisectBatchOnFunctionError                        bool
			DestinationConfig                                 struct{ OnFailure struct{ Destination string } }
		}
	}
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list.EventSourceMappings) != 1 {
		t.Fatalf("/mappings: %d %v %s", code, err, body)
	}
	m := list.EventSourceMappings[0]
	if m.EventSourceArn != arn || m.State != "Enabled" || m.LastProcessingResult != "OK" || m.MaximumRetryAttempts != 0 ||
		!m.BisectBatchOnFunctionError || m.DestinationConfig.OnFailure.Destination != qarn {
		t.Errorf("/mappings = %s", body)
	}
	out, err := exec.Command(esmdBinary(t), "status", "-c", filepath.Join(dir, "esmd.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("esmd status: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("esmd status:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 7 || f[1] != m.UUID || f[2] != "kinesis" || f[3] != "Enabled" || f[4] != "OK" || f[5] != "1" {
		t.Errorf("esmd status row = %q", lines[1])
	}
}

// adminSQSYAML renders an esmd configuration with one SQS mapping to the
// sink; extra is indented into the mapping.
func adminSQSYAML(motoEP, dir, queueARN, sinkURL, extra string) string {
	y := fmt.Sprintf(`aws:
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
		y += "    " + line + "\n"
	}
	return y
}

func TestAdminMetricsSQSDeletedEvents(t *testing.T) {
	t.Parallel()
	moto := servers.Moto(t)
	qurl, qarn := servers.CreateQueue(t, moto, servers.UniqueName("adminsqs"), nil)
	const n = 25
	c := servers.SQSClient(moto)
	for i := 0; i < n; i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			body := fmt.Sprintf("m%02d", j)
			if j == 7 {
				body = "poison"
			}
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(body)})
		}
		out, err := c.SendMessageBatch(t.Context(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(qurl), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("send: %v %+v", err, out)
		}
	}
	// The function reports the poison as failed twice, then takes it.
	var mu sync.Mutex
	poisonSeen := 0
	failedCalls := map[int]int{} // call index → batch size
	calls := 0
	s := newSink(t, func(cl call) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		idx := calls
		calls++
		for _, r := range cl.Recs {
			if r.Data == "poison" {
				poisonSeen++
				if poisonSeen <= 2 {
					failedCalls[idx] = len(cl.Recs)
					return 200, fmt.Sprintf(`{"batchItemFailures":[{"itemIdentifier":%q}]}`, r.Seq)
				}
			}
		}
		return 200, "{}"
	})
	dir := t.TempDir()
	yaml, base := withAdmin(t, adminSQSYAML(moto, dir, qarn, s.srv.URL, `BatchSize: 5
FunctionResponseTypes: [ReportBatchItemFailures]
esmd: {visibilityOnError: 0s}`))
	waitAdmin(t, startESMD(t, dir, yaml), base)

	var last metrics
	var want map[string]float64
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		invoked, failed := 0, 0
		bodies := map[string]bool{}
		calls := s.snapshot()
		for _, cl := range calls {
			invoked += len(cl.Recs)
			for _, r := range cl.Recs {
				bodies[r.Data] = true
			}
		}
		for _, size := range failedCalls {
			failed += size
		}
		seen, nCalls := poisonSeen, len(calls)
		mu.Unlock()
		// Every message received is invoked, and every one invoked is
		// deleted but the poison's two failed deliveries. Standard queues
		// deliver at least once, and moto does deliver a message twice
		// now and then (one CI run here; the 20,000-message test counts
		// such duplicates), so the counts follow what the function saw
		// (n + 2 when nothing came twice), and every message must come.
		want = map[string]float64{
			"esmd_polled_events_total":               float64(invoked),
			"esmd_invoked_events_total":              float64(invoked),
			"esmd_failed_invoke_events_total":        float64(failed),
			"esmd_deleted_events_total":              float64(invoked - 2),
			"esmd_sqs_returned_events_total":         2,
			"esmd_sqs_delete_failures_total":         0,
			"esmd_invocations_total{success}":        float64(nCalls),
			"esmd_invocations_total{function_error}": 0,
			"esmd_lanes_busy":                        0,
			"esmd_mapping_healthy":                   1,
		}
		last = adminScrape(t, base)
		if seen == 3 && len(bodies) == n && last != nil && last.diff(want) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never matched what the function saw (poison seen %d times, %d of %d messages):\n%s", seen, len(bodies), n, last.diff(want))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p := last.get("esmd_sqs_pollers"); p < 1 {
		t.Errorf("esmd_sqs_pollers = %v, want at least 1 while running", p)
	}
	if code, body := adminGet(t, base, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if v, d := queueDepthOf(t, moto, qurl); v+d != 0 {
		t.Errorf("queue holds %d visible and %d in flight, want none", v, d)
	}
}

// queueDepthOf returns the visible and in-flight message counts of a queue.
func queueDepthOf(t *testing.T, ep, qurl string) (int, int) {
	t.Helper()
	out, err := servers.SQSClient(ep).GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(qurl),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		t.Fatal(err)
	}
	var v, d int
	fmt.Sscan(out.Attributes["ApproximateNumberOfMessages"], &v)
	fmt.Sscan(out.Attributes["ApproximateNumberOfMessagesNotVisible"], &d)
	return v, d
}

func TestAdminReadyzFollowsSource(t *testing.T) {
	t.Parallel()
	ep := servers.KinesisMock(t)
	name := servers.UniqueName("adminready")
	arn := servers.CreateStream(t, ep, name, 2)
	u, err := url.Parse(ep)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	proxied := u.Scheme + "://" + proxy.Addr()

	s := newSink(t, nil)
	dir := t.TempDir()
	yaml, base := withAdmin(t, kinesisYAML(proxied, "", dir, arn, s.srv.URL,
		"esmd: {pollInterval: 100ms, shardDiscoveryInterval: 1s, retryBackoff: {initial: 50ms, max: 500ms}}"))
	waitAdmin(t, startESMD(t, dir, yaml), base)

	readyz := func() (int, string) {
		code, body := adminGet(t, base, "/readyz")
		return code, string(body)
	}
	waitReady := func(what string, want int) string {
		t.Helper()
		var body string
		waitFor(t, 60*time.Second, what, func() bool {
			var code int
			code, body = readyz()
			return code == want
		})
		return body
	}
	waitReady("ready with the source up", 200)
	putOne(t, ep, name, "k", []byte("before"))
	waitFor(t, 30*time.Second, "the first record", func() bool { return s.count() == 1 })

	proxy.Stop()
	body := waitReady("not ready with the source down", 503)
	var nr struct {
		Ready    bool
		NotReady []struct {
			Name    string
			Healthy bool
		}
	}
	if err := json.Unmarshal([]byte(body), &nr); err != nil || nr.Ready || len(nr.NotReady) != 1 ||
		!strings.Contains(nr.NotReady[0].Name, name) || nr.NotReady[0].Healthy {
		t.Fatalf("/readyz body = %s (%v)", body, err)
	}
	if code, hb := adminGet(t, base, "/healthz"); code != 200 || string(hb) != "ok\n" {
		t.Errorf("/healthz with the source down = %d %q, want 200 ok", code, hb)
	}
	if m := adminScrape(t, base); m.get("esmd_mapping_healthy") != 0 {
		t.Errorf("esmd_mapping_healthy = %v with the source down, want 0", m.get("esmd_mapping_healthy"))
	}

	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady("ready again with the source back", 200)
	putOne(t, ep, name, "k", []byte("after"))
	waitFor(t, 30*time.Second, "the record written after the outage", func() bool { return s.count() >= 2 })
	if m := adminScrape(t, base); m.get("esmd_mapping_healthy") != 1 {
		t.Errorf("esmd_mapping_healthy = %v with the source back, want 1", m.get("esmd_mapping_healthy"))
	}
}
