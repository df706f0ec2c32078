package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/mapping"
)

// streamMapping is a running Kinesis mapping with the given shards.
func streamMapping(name, uuid string, shards int, healthy bool) Mapping {
	st := mapping.Status{State: "Enabled", StateTransitionReason: "User action", LastProcessingResult: "OK", Healthy: healthy}
	for i := range shards {
		st.Shards = append(st.Shards, mapping.ShardStatus{
			ID: fmt.Sprintf("shardId-%012d", i), Checkpoint: "49590338271490256608559692538361571095921575989136588898",
			Pending: int64(i), IteratorAgeMillis: int64(1000 + i),
		})
	}
	return Mapping{
		Name: name, UUID: uuid, SourceKind: "kinesis", Enabled: true,
		EventSourceArn: "arn:aws:kinesis:us-east-1:123456789012:stream/" + name,
		FunctionArn:    "arn:aws:lambda:us-east-1:123456789012:function:fn",
		Stats:          &mapping.Stats{},
		Status:         func() mapping.Status { return st },
	}
}

func get(t *testing.T, h http.Handler, path string, header ...string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// scrape parses /metrics into families.
func scrape(t *testing.T, h http.Handler) (map[string]*dto.MetricFamily, int) {
	t.Helper()
	code, body := get(t, h, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams, len(body)
}

// value returns the sample of family name whose labels include want, and
// whether there is exactly one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, int) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
	n, v := 0, 0.0
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, w := range want {
			if labels[k] != w {
				match = false
			}
		}
		if !match {
			continue
		}
		n++
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		}
	}
	return v, n
}

func TestMetricsExactValues(t *testing.T) {
	k := streamMapping("orders", "u-1", 2, true)
	s := k.Stats
	s.PolledEvents.Store(100)
	s.Polls.Store(7)
	s.InvokedEvents.Store(130)
	s.Invocations.Store(20)
	s.FailedInvokeEvents.Store(30)
	s.FunctionErrors.Store(5)
	s.Timeouts.Store(2)
	s.Throttles.Store(3)
	s.InvokeErrors.Store(1)
	s.Retries.Store(6)
	s.Bisects.Store(4)
	s.DroppedEvents.Store(0)
	s.DestinationDeliveredEvents.Store(1)
	s.DestinationFailures.Store(2)
	s.LanesBusy.Store(1)
	s.CheckpointSaves.Store(9)

	q := Mapping{Name: "jobs", UUID: "u-2", SourceKind: "sqs", Enabled: true, SQS: &mapping.SQSStats{}}
	q.Stats = &q.SQS.Stats
	q.SQS.PolledEvents.Store(50)
	q.SQS.DeletedEvents.Store(45)
	q.SQS.Concurrency.Store(5)
	q.SQS.PeakConcurrency.Store(8)
	q.SQS.IteratorAgeMillis.Store(250)
	q.Status = func() mapping.Status { return mapping.Status{State: "Enabled", Healthy: true} }

	off := Mapping{Name: "off", UUID: "u-3", SourceKind: "dynamodb"}

	h := New(Config{}, Static{k, q, off}).Handler()
	fams, _ := scrape(t, h)
	kl := func(extra ...string) map[string]string {
		m := map[string]string{"mapping": "orders", "uuid": "u-1", "source": "kinesis"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	ql := map[string]string{"mapping": "jobs", "uuid": "u-2", "source": "sqs"}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"esmd_polled_events_total", kl(), 100},
		{"esmd_polls_total", kl(), 7},
		{"esmd_filtered_out_events_total", kl(), 0},
		{"esmd_invoked_events_total", kl(), 130},
		{"esmd_failed_invoke_events_total", kl(), 30},
		{"esmd_dropped_events_total", kl(), 0},
		{"esmd_on_failure_destination_delivered_events_total", kl(), 1},
		{"esmd_destination_delivery_failures_total", kl(), 2},
		{"esmd_invocations_total", kl("outcome", "function_error"), 3},
		{"esmd_invocations_total", kl("outcome", "timeout"), 2},
		{"esmd_invocations_total", kl("outcome", "throttle"), 3},
		{"esmd_invocations_total", kl("outcome", "invoke_error"), 1},
		// 20 invocations, 1 in flight, 5+3+1 failed.
		{"esmd_invocations_total", kl("outcome", "success"), 10},
		{"esmd_retries_total", kl(), 6},
		{"esmd_bisects_total", kl(), 4},
		{"esmd_checkpoint_saves_total", kl(), 9},
		{"esmd_lanes_busy", kl(), 1},
		{"esmd_shards_running", kl(), 2},
		{"esmd_iterator_age_milliseconds", kl("shard", "shardId-000000000001"), 1001},
		{"esmd_checkpoint_lag_records", kl("shard", "shardId-000000000001"), 1},
		{"esmd_mapping_healthy", kl(), 1},
		{"esmd_mapping_enabled", kl(), 1},
		{"esmd_polled_events_total", ql, 50},
		{"esmd_deleted_events_total", ql, 45},
		{"esmd_sqs_pollers", ql, 5},
		{"esmd_sqs_pollers_peak", ql, 8},
		{"esmd_iterator_age_milliseconds", ql, 250},
		{"esmd_mapping_enabled", map[string]string{"uuid": "u-3"}, 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s%v", tc.name, tc.labels), func(t *testing.T) {
			got, n := value(fams, tc.name, tc.labels)
			if n != 1 || got != tc.want {
				t.Errorf("%d series, value %v; want 1 series of %v", n, got, tc.want)
			}
		})
	}
	// Stream-only and SQS-only families stay off the other source, and a
	// disabled mapping has only its enabled gauge.
	absent := []struct {
		name   string
		labels map[string]string
	}{
		{"esmd_deleted_events_total", kl()},
		{"esmd_sqs_pollers", kl()},
		{"esmd_dropped_events_total", ql},
		{"esmd_checkpoint_lag_records", ql},
		{"esmd_polled_events_total", map[string]string{"uuid": "u-3"}},
	}
	for _, a := range absent {
		if _, n := value(fams, a.name, a.labels); n != 0 {
			t.Errorf("%s%v: %d series, want none", a.name, a.labels, n)
		}
	}
	if _, n := value(fams, "esmd_iterator_age_milliseconds", kl()); n != 2 {
		t.Errorf("%d iterator age series for 2 running shards", n)
	}
}

func TestSuccessCounterNeverGoesDown(t *testing.T) {
	m := streamMapping("m", "u", 0, true)
	c := newCollector(Static{m})
	s := m.Stats
	read := func() float64 {
		t.Helper()
		return c.successes("u", s.Invocations.Load(), s.LanesBusy.Load()+s.FunctionErrors.Load()+s.Throttles.Load()+s.InvokeErrors.Load())
	}
	s.Invocations.Store(3)
	if got := read(); got != 3 {
		t.Fatalf("success = %v, want 3", got)
	}
	// An invocation counted, out of its lane, its error not counted yet.
	s.Invocations.Store(4)
	if got := read(); got != 4 {
		t.Fatalf("success = %v, want 4 (transient)", got)
	}
	s.FunctionErrors.Store(1)
	if got := read(); got != 4 {
		t.Fatalf("success = %v after the error, want it held at 4", got)
	}
	s.Invocations.Store(6)
	if got := read(); got != 5 {
		t.Fatalf("success = %v, want 5", got)
	}
	// A new runner under the same UUID starts again from zero.
	s.Invocations.Store(1)
	s.FunctionErrors.Store(0)
	if got := read(); got != 1 {
		t.Fatalf("success = %v after a reset, want 1", got)
	}
}

func TestMetricsCardinalityBounded(t *testing.T) {
	tests := []struct{ mappings, shards int }{{1, 1000}, {10, 100}, {100, 10}}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%dx%d", tc.mappings, tc.shards), func(t *testing.T) {
			var ms Static
			for i := range tc.mappings {
				ms = append(ms, streamMapping(fmt.Sprintf("function-name-stream-name-%04d", i),
					fmt.Sprintf("0b8f6a52-4c1e-5d2b-9a7e-%012d", i), tc.shards, true))
			}
			fams, size := scrape(t, New(Config{}, ms).Handler())
			if size >= 1<<20 {
				t.Errorf("scrape is %d bytes, want under 1 MB", size)
			}
			if n := len(fams["esmd_iterator_age_milliseconds"].GetMetric()); n != tc.mappings*tc.shards {
				t.Errorf("%d iterator age series, want one per running shard (%d)", n, tc.mappings*tc.shards)
			}
			t.Logf("%d mappings x %d shards: %d bytes", tc.mappings, tc.shards, size)
		})
	}
}

func TestReadyz(t *testing.T) {
	failing := streamMapping("failing", "u-f", 2, false)
	st := failing.Status()
	st.Shards[1].ReadFailing = true
	failing.Status = func() mapping.Status { return st }
	creating := Mapping{Name: "creating", UUID: "u-c", Enabled: true, Stats: &mapping.Stats{},
		Status: func() mapping.Status { return mapping.Status{} }}
	disabled := Mapping{Name: "off", UUID: "u-d"}
	ok := streamMapping("ok", "u-o", 1, true)
	tests := []struct {
		name     string
		mappings Static
		code     int
		want     Readiness
	}{
		{"no mappings", nil, 200, Readiness{Ready: true}},
		{"healthy and disabled", Static{ok, disabled}, 200, Readiness{Ready: true}},
		{"failing", Static{ok, failing, disabled}, 503, Readiness{NotReady: []NotReady{
			{Name: "failing", UUID: "u-f", State: "Enabled", FailingShards: []string{"shardId-000000000001"}}}}},
		{"not started", Static{creating}, 503, Readiness{NotReady: []NotReady{
			{Name: "creating", UUID: "u-c", State: "Creating"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, New(Config{}, tc.mappings).Handler(), "/readyz")
			var got Readiness
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if code != tc.code || !cmp.Equal(got, tc.want) {
				t.Errorf("got %d %+v, want %d %+v", code, got, tc.code, tc.want)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	code, body := get(t, New(Config{}, Static{}).Handler(), "/healthz")
	if code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
}

func TestPprof(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		header []string
		code   int
	}{
		{"off by default", Config{}, nil, 404},
		{"on", Config{Pprof: true}, nil, 200},
		{"on, token missing", Config{Pprof: true, AuthToken: "t0ken"}, nil, 401},
		{"on, token given", Config{Pprof: true, AuthToken: "t0ken"}, []string{"Authorization", "Bearer t0ken"}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, New(tc.cfg, Static{}).Handler(), "/debug/pprof/heap?debug=1", tc.header...)
			if code != tc.code {
				t.Fatalf("/debug/pprof/heap = %d, want %d", code, tc.code)
			}
			if code == 200 && !strings.Contains(body, "heap profile:") {
				t.Fatalf("/debug/pprof/heap is not a heap profile: %.80q", body)
			}
		})
	}
}

// secretYAML is a configuration full of secrets that must never be served.
const secretYAML = `
aws:
  region: us-east-1
  credentials: {accessKeyId: AKIDEXAMPLE, secretAccessKey: s3cr3t-aws-key}
functions:
  fn:
    http:
      url: http://127.0.0.1:8080/
      headers: {Authorization: "Bearer s3cr3t-header"}
server: {listen: "127.0.0.1:0", authToken: s3cr3t-token}
mappings:
  - EventSourceArn: arn:aws:kinesis:us-east-1:123456789012:stream/orders
    FunctionName: fn
    StartingPosition: TRIM_HORIZON
    BatchSize: 50
    MaximumBatchingWindowInSeconds: 2
    ParallelizationFactor: 3
    MaximumRetryAttempts: 0
    BisectBatchOnFunctionError: true
    FunctionResponseTypes: [ReportBatchItemFailures]
    DestinationConfig:
      OnFailure: {Destination: "https://user:s3cr3t-pass@hooks.example.com/fail?token=s3cr3t-query"}
    esmd: {uuid: 9d2e6a4b-0b0c-4e53-8c55-d8bd3c7a1f00}
  - EventSourceArn: arn:aws:sqs:us-east-1:123456789012:jobs
    FunctionName: fn
    Enabled: false
    ScalingConfig: {MaximumConcurrency: 20}
`

func loadSecretConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(secretYAML), "esmd.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestMappingsJSON(t *testing.T) {
	cfg := loadSecretConfig(t)
	s0, s1 := cfg.Mappings[0].Settings(), cfg.Mappings[1].Settings()
	k := ForDisabled(s0, "arn:aws:lambda:us-east-1:123456789012:function:fn")
	k.Enabled = true
	k.Stats = &mapping.Stats{}
	k.Status = func() mapping.Status {
		return mapping.Status{State: "Enabled", StateTransitionReason: "User action", LastProcessingResult: "PROBLEM: Function call failed",
			Healthy: true, Shards: []mapping.ShardStatus{{ID: "shardId-000000000000", Checkpoint: "42", Pending: 3, IteratorAgeMillis: 1500}}}
	}
	k.LastModified = time.UnixMilli(1700000000250)
	q := ForDisabled(s1, "arn:aws:lambda:us-east-1:123456789012:function:fn")
	q.LastModified = time.UnixMilli(1700000001500)
	h := New(Config{}, Static{k, q}).Handler()

	code, body := get(t, h, "/mappings/"+s0.UUID)
	if code != 200 {
		t.Fatalf("get: %d %s", code, body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"LastModified":                   1700000000.25,
		"UUID":                           "9d2e6a4b-0b0c-4e53-8c55-d8bd3c7a1f00",
		"EventSourceMappingArn":          "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:9d2e6a4b-0b0c-4e53-8c55-d8bd3c7a1f00",
		"EventSourceArn":                 "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
		"FunctionArn":                    "arn:aws:lambda:us-east-1:123456789012:function:fn",
		"State":                          "Enabled",
		"StateTransitionReason":          "User action",
		"LastProcessingResult":           "PROBLEM: Function call failed",
		"BatchSize":                      50.0,
		"MaximumBatchingWindowInSeconds": 2.0,
		"ParallelizationFactor":          3.0,
		"MaximumRecordAgeInSeconds":      -1.0,
		"MaximumRetryAttempts":           0.0,
		"BisectBatchOnFunctionError":     true,
		"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
		"StartingPosition":               "TRIM_HORIZON",
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{
			"Destination": "https://user:REDACTED@hooks.example.com/fail?token=REDACTED"}},
		"Esmd": map[string]any{
			"Name": s0.Name, "SourceType": "kinesis", "Healthy": true,
			"Shards": []any{map[string]any{"ShardId": "shardId-000000000000", "Checkpoint": "42", "PendingRecords": 3.0, "IteratorAgeMilliseconds": 1500.0}},
			"Stats":  map[string]any{"PolledEvents": 0.0, "InvokedEvents": 0.0, "FailedInvokeEvents": 0.0},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("/mappings/{uuid} (-want +got):\n%s", d)
	}

	code, body = get(t, h, "/mappings")
	var list struct{ EventSourceMappings []View }
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("list: %d %v %s", code, err, body)
	}
	if len(list.EventSourceMappings) != 2 {
		t.Fatalf("%d mappings listed, want 2", len(list.EventSourceMappings))
	}
	sq := list.EventSourceMappings[1]
	if sq.UUID != s1.UUID || sq.State != "Disabled" || sq.LastProcessingResult != "No records processed" ||
		sq.Esmd.SourceType != "sqs" || sq.LastModified != 1700000001.5 {
		t.Errorf("SQS mapping = %+v", sq)
	}
	wantSQS := map[string]any{"BatchSize": 10.0, "MaximumBatchingWindowInSeconds": 0.0, "FunctionResponseTypes": []any{},
		"ScalingConfig": map[string]any{"MaximumConcurrency": 20.0}}
	if d := cmp.Diff(wantSQS, sq.Settings); d != "" {
		t.Errorf("SQS settings (-want +got):\n%s", d)
	}

	code, body = get(t, h, "/mappings/no-such-uuid")
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); code != 404 || err != nil || e.Type != "ResourceNotFoundException" {
		t.Errorf("unknown uuid: %d %s", code, body)
	}
}

func TestNoSecretInAnyOutput(t *testing.T) {
	cfg := loadSecretConfig(t)
	var ms Static
	for i := range cfg.Mappings {
		s := cfg.Mappings[i].Settings()
		m := ForDisabled(s, "arn:aws:lambda:us-east-1:123456789012:function:fn")
		m.Enabled, m.Stats = true, &mapping.Stats{}
		ms = append(ms, m)
	}
	token := cfg.Server.AuthToken.Value()
	h := New(Config{AuthToken: token}, ms).Handler()
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/mappings", "/mappings/" + ms[0].UUID, "/mappings/x", "/nope"} {
		for _, auth := range []string{"Bearer " + token, "Bearer wrong", ""} {
			_, body := get(t, h, path, "Authorization", auth)
			if strings.Contains(body, "s3cr3t") {
				t.Errorf("%s (with auth: %v) shows a secret:\n%s", path, auth != "", body)
			}
		}
	}
}

func TestAuth(t *testing.T) {
	const token = "t0ken"
	h := New(Config{AuthToken: token}, Static{}).Handler()
	tests := []struct {
		header string
		code   int
	}{
		{"", 401},
		{"Bearer", 401},
		{"Bearer ", 401},
		{"Bearer wrong", 401},
		{"Bearer t0ken2", 401},
		{"Basic dDBrZW4=", 401},
		{"Bearer t0ken", 200},
		{"bearer t0ken", 200},
	}
	for _, tc := range tests {
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/mappings"} {
			t.Run(path+" "+tc.header, func(t *testing.T) {
				code, _ := get(t, h, path, "Authorization", tc.header)
				if code != tc.code {
					t.Errorf("got %d, want %d", code, tc.code)
				}
			})
		}
	}
	if code, _ := get(t, New(Config{}, Static{}).Handler(), "/healthz"); code != 200 {
		t.Errorf("no token: %d, want 200", code)
	}
}

func TestStartRequiresTokenOffLoopback(t *testing.T) {
	tests := []struct {
		listen, token string
		wantErr       error
	}{
		{"127.0.0.1:0", "", nil},
		{"localhost:0", "", nil},
		{"[::1]:0", "", nil},
		{"127.0.0.1:0", "x", nil},
		{"0.0.0.0:0", "", ErrTokenRequired},
		{":0", "", ErrTokenRequired},
		{"example.com:0", "", ErrTokenRequired},
		{"0.0.0.0:0", "x", nil},
	}
	for _, tc := range tests {
		t.Run(tc.listen+"/"+tc.token, func(t *testing.T) {
			s := New(Config{Listen: tc.listen, AuthToken: tc.token}, Static{})
			addr, err := s.Start(t.Context())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Start = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				if strings.Contains(err.Error(), "cannot assign requested address") {
					t.Skip("no IPv6 loopback here")
				}
				t.Fatal(err)
			}
			defer s.Shutdown(context.Background())
			if addr == "" || strings.HasSuffix(addr, ":0") {
				t.Errorf("addr = %q", addr)
			}
		})
	}
}

func TestStartServeShutdownAndList(t *testing.T) {
	m := streamMapping("orders", "u-1", 1, true)
	s := New(Config{Listen: "127.0.0.1:0", AuthToken: "tok"}, Static{m})
	addr, err := s.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	views, err := List(t.Context(), http.DefaultClient, base, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 1 || views[0].UUID != "u-1" || views[0].Esmd.Name != "orders" || len(views[0].Esmd.Shards) != 1 ||
		views[0].Esmd.Shards[0].IteratorAgeMilliseconds != 1000 {
		t.Fatalf("views = %+v", views)
	}
	if _, err := List(t.Context(), http.DefaultClient, base, "bad"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("bad token: err = %v", err)
	}
	if _, err := s.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	_, err = List(t.Context(), http.DefaultClient, base, "tok")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("after Shutdown: err = %v, want ErrUnreachable", err)
	}
	resp, err := http.Get(base + "/healthz")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Fatal("server still answers after Shutdown")
	}
}

func TestHistogramsOnMetrics(t *testing.T) {
	h := NewHistograms()
	obs := h.For("m1", "u1", "kinesis")
	obs.Invoked("shard-0", 3*time.Millisecond, 100, 5000, mapping.OutcomeSuccess)
	obs.Invoked("shard-0", 2*time.Second, 50, 2500, mapping.OutcomeFunctionError)
	srv := New(Config{Histograms: h}, Static{})
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`esmd_invocation_duration_seconds_count{mapping="m1",outcome="success",source="kinesis",uuid="u1"} 1`,
		`esmd_invocation_duration_seconds_count{mapping="m1",outcome="function_error",source="kinesis",uuid="u1"} 1`,
		`esmd_batch_size_records_sum{mapping="m1",source="kinesis",uuid="u1"} 150`,
		`esmd_batch_size_bytes_count{mapping="m1",source="kinesis",uuid="u1"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
