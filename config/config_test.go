package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func parseFile(t *testing.T, path string, getenv func(string) (string, bool)) *Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data, filepath.Base(path), getenv)
	if err != nil {
		t.Fatalf("%s: unexpected problems:\n%v", path, err)
	}
	return cfg
}

func TestGoodConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg := parseFile(t, f, testEnv)
			// The rendered form parses again to the same configuration.
			again, err := Parse([]byte(cfg.String()), "rendered", testEnv)
			if err != nil {
				t.Fatalf("rendered config does not parse:\n%v\n%s", err, cfg)
			}
			if diff := cmp.Diff(cfg.String(), again.String()); diff != "" {
				t.Errorf("rendered config changed after a round trip (-first +second):\n%s", diff)
			}
		})
	}
}

func TestExampleIsValid(t *testing.T) {
	cfg := parseFile(t, "../examples/esmd.yaml", func(string) (string, bool) { return "", false })
	if len(cfg.Mappings) < 4 {
		t.Errorf("the example has %d mappings; it should show every source type", len(cfg.Mappings))
	}
	kinds := map[string]bool{}
	for _, m := range cfg.Mappings {
		kinds[m.Source.label()] = true
	}
	for _, k := range []string{"Kinesis stream", "Kinesis enhanced fan-out consumer", "DynamoDB stream", "SQS queue", "SQS FIFO queue"} {
		if !kinds[k] {
			t.Errorf("the example has no %s mapping", k)
		}
	}
	fk := map[FunctionKind]bool{}
	for _, f := range cfg.Functions {
		fk[f.Kind()] = true
	}
	for _, k := range []FunctionKind{FunctionHTTP, FunctionLambda, FunctionRuntime, FunctionNATS, FunctionExec} {
		if !fk[k] {
			t.Errorf("the example has no %s function", k)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg := parseFile(t, "testdata/minimal.good.yaml", nil)
	if got := cfg.AWS.Region; got != "eu-west-1" {
		t.Errorf("region = %q, want the region of the first mapping's ARN", got)
	}
	if got := cfg.Checkpoints.File.Path; got != "./esmd-state/checkpoints.db" {
		t.Errorf("checkpoint path = %q", got)
	}
	if got := cfg.Checkpoints.Interval.Std(); got != 0 {
		t.Errorf("checkpoint interval = %v", got)
	}
	if got := cfg.Server.Address(); got != "127.0.0.1:9400" {
		t.Errorf("listen = %q", got)
	}
	if cfg.Logging != (Logging{Level: "info", Format: "text"}) {
		t.Errorf("logging = %+v", cfg.Logging)
	}
	if got := cfg.ShutdownTimeout.Std(); got != 30*time.Second {
		t.Errorf("shutdownTimeout = %v", got)
	}
	fn := cfg.Functions["orders"]
	if fn.Kind() != FunctionHTTP || fn.Timeout() != 30*time.Second {
		t.Errorf("function kind %q timeout %v", fn.Kind(), fn.Timeout())
	}
	want := Settings{
		Name: "orders-orders",
		// Derived from the name; it must never change between releases.
		UUID: "1505be9b-f5eb-597e-acfb-3b3bbb44256e",
		Source: Source{Kind: SourceKinesis, ARN: "arn:aws:kinesis:eu-west-1:123456789012:stream/orders",
			Partition: "aws", Region: "eu-west-1", Account: "123456789012", Resource: "orders"},
		Function:               "orders",
		Enabled:                true,
		BatchSize:              100,
		StartingPosition:       "LATEST",
		ParallelizationFactor:  1,
		MaximumRetryAttempts:   -1,
		PollInterval:           time.Second,
		ShardDiscoveryInterval: 30 * time.Second,
		InvokeIdentityArn:      "arn:aws:iam::123456789012:role/esmd",
		RetryInitial:           100 * time.Millisecond,
		RetryMax:               30 * time.Second,
	}
	if diff := cmp.Diff(want, cfg.Mappings[0].Settings()); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestEffectiveSettings(t *testing.T) {
	cfg := parseFile(t, "testdata/full.good.yaml", nil)
	const acct = "123456789012"
	thirty, zero := 30*time.Second, time.Duration(0)
	want := []Settings{
		{
			Name: "orders-web", UUID: "0b7e2c4a-2e3f-4d5c-8b9a-1c2d3e4f5a6b",
			Source: Source{Kind: SourceKinesis, ARN: "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
				Partition: "aws", Region: "us-east-1", Account: acct, Resource: "orders"},
			Function: "web", Enabled: true, BatchSize: 10000, BatchingWindow: 300 * time.Second,
			StartingPosition: "AT_TIMESTAMP", StartingPositionTimestamp: time.Unix(1541139109, 0).UTC(),
			ParallelizationFactor: 10, MaximumRecordAge: 604800 * time.Second, MaximumRetryAttempts: 10000,
			BisectBatchOnFunctionError: true, ReportBatchItemFailures: true,
			OnFailure: &Destination{Kind: DestinationSQS, ARN: "arn:aws:sqs:us-east-1:123456789012:orders-dlq",
				Region: "us-east-1", Account: acct, Name: "orders-dlq"},
			PollInterval: 200 * time.Millisecond, ShardDiscoveryInterval: 10 * time.Second,
			InvokeIdentityArn: "arn:aws:iam::123456789012:role/reader",
			RetryInitial:      50 * time.Millisecond, RetryMax: 5 * time.Second,
		},
		{
			Name: "remote-orders", UUID: cfg.Mappings[1].UUID,
			Source: Source{Kind: SourceKinesis, ARN: "arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/esmd:1700000000",
				Partition: "aws", Region: "us-east-1", Account: acct, Resource: "orders", Consumer: "esmd"},
			Function: "remote", Enabled: true, BatchSize: 100,
			StartingPosition: "AT_TIMESTAMP", StartingPositionTimestamp: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
			ParallelizationFactor: 1, MaximumRecordAge: time.Minute, MaximumRetryAttempts: 0,
			OnFailure: &Destination{Kind: DestinationSNS, ARN: "arn:aws:sns:us-east-1:123456789012:failures",
				Region: "us-east-1", Account: acct, Name: "failures"},
			ShardDiscoveryInterval: 30 * time.Second, InvokeIdentityArn: "arn:aws:iam::123456789012:role/esmd",
			RetryInitial: 100 * time.Millisecond, RetryMax: 30 * time.Second,
		},
		{
			Name: "local-users", UUID: cfg.Mappings[2].UUID,
			Source: Source{Kind: SourceDynamoDB, ARN: "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2024-05-01T00:00:00.000",
				Partition: "aws", Region: "us-east-1", Account: acct, Resource: "users", StreamLabel: "2024-05-01T00:00:00.000"},
			Function: "local", Enabled: true, BatchSize: 10000, StartingPosition: "TRIM_HORIZON",
			ParallelizationFactor: 1, MaximumRetryAttempts: -1,
			OnFailure:    &Destination{Kind: DestinationS3, ARN: "arn:aws:s3:::esmd-failures", Name: "esmd-failures"},
			PollInterval: 250 * time.Millisecond, ShardDiscoveryInterval: 30 * time.Second,
			InvokeIdentityArn: "arn:aws:iam::123456789012:role/esmd",
			RetryInitial:      100 * time.Millisecond, RetryMax: 30 * time.Second,
		},
		{
			Name: "bus-jobs", UUID: cfg.Mappings[3].UUID,
			Source: Source{Kind: SourceSQS, ARN: "arn:aws:sqs:us-east-1:123456789012:jobs",
				Partition: "aws", Region: "us-east-1", Account: acct, Resource: "jobs"},
			Function: "bus", Enabled: false, BatchSize: 10000, BatchingWindow: time.Second,
			ParallelizationFactor: 1, MaximumRetryAttempts: -1, ReportBatchItemFailures: true,
			MaximumConcurrency: 1000, InvokeIdentityArn: "arn:aws:iam::123456789012:role/esmd",
			VisibilityOnError: &thirty, VisibilityHeartbeat: true,
			WaitTime: 5 * time.Second, InitialPollers: 10, MinPollers: 3, ScaleInterval: 500 * time.Millisecond,
			RetryInitial: 100 * time.Millisecond, RetryMax: 30 * time.Second,
		},
		{
			Name: "script-jobs.fifo", UUID: cfg.Mappings[4].UUID,
			Source: Source{Kind: SourceSQS, ARN: "arn:aws:sqs:us-east-1:123456789012:jobs.fifo",
				Partition: "aws", Region: "us-east-1", Account: acct, Resource: "jobs.fifo", FIFO: true},
			Function: "script", Enabled: true, BatchSize: 10, ParallelizationFactor: 1, MaximumRetryAttempts: -1,
			MaximumConcurrency: 2, InvokeIdentityArn: "arn:aws:iam::123456789012:role/esmd",
			VisibilityOnError: &zero,
			// Defaults, within MaximumConcurrency 2.
			WaitTime: 20 * time.Second, InitialPollers: 2, MinPollers: 2, ScaleInterval: time.Second,
			RetryInitial: 100 * time.Millisecond, RetryMax: 30 * time.Second,
		},
	}
	for i, w := range want {
		if diff := cmp.Diff(w, cfg.Mappings[i].Settings()); diff != "" {
			t.Errorf("mappings[%d] (-want +got):\n%s", i, diff)
		}
	}
	dests := []*Destination{
		{Kind: DestinationKafka, URL: "kafka://127.0.0.1:9092,127.0.0.1:9093/failures", Brokers: []string{"127.0.0.1:9092", "127.0.0.1:9093"}, Topic: "failures"},
		{Kind: DestinationNATS, URL: "nats://127.0.0.1:4222/esmd.failures", Server: "nats://127.0.0.1:4222", Subject: "esmd.failures"},
		{Kind: DestinationFile, URL: "file:///var/log/esmd/failures.jsonl", Path: "/var/log/esmd/failures.jsonl"},
		{Kind: DestinationHTTP, URL: "https://hooks.example.com/esmd"},
		{Kind: DestinationFile, URL: "file://failures/refunds.jsonl", Path: "failures/refunds.jsonl"},
	}
	for i, d := range dests {
		if diff := cmp.Diff(d, cfg.Mappings[5+i].OnFailure); diff != "" {
			t.Errorf("mappings[%d] destination (-want +got):\n%s", 5+i, diff)
		}
	}
	if got := cfg.Mappings[1].Source.StreamARN(); got != "arn:aws:kinesis:us-east-1:123456789012:stream/orders" {
		t.Errorf("StreamARN = %q", got)
	}
	rt := cfg.Functions["local"].Runtime
	if *rt.Concurrency != 4 || *rt.MemorySize != 512 || rt.Timeout.Std() != 15*time.Minute || rt.Environment["DB_PASSWORD"].Value() != "env-secret" {
		t.Errorf("runtime function = %+v", rt)
	}
	if got := cfg.Functions["web"].HTTP.Headers["Authorization"].Value(); got != "Bearer header-secret" {
		t.Errorf("header value = %q", got)
	}
	if cfg.Server.AuthToken.Value() != "server-token-secret" || cfg.AWS.Credentials.SecretAccessKey.Value() != "wJalrXUtnFEMI-very-secret" {
		t.Errorf("secrets are not readable through Value")
	}
}

func TestInterpolatedValues(t *testing.T) {
	cfg := parseFile(t, "testdata/local.good.yaml", testEnv)
	checks := []struct{ name, got, want string }{
		{"dynamodbstreams endpoint default", cfg.AWS.Endpoints.DynamoDBStreams, "http://127.0.0.1:8000"},
		{"sqs endpoint from env", cfg.AWS.Endpoints.SQS, "http://127.0.0.1:5000"},
		{"url with default and env", cfg.Functions["fn"].HTTP.URL, "http://127.0.0.1:8080/"},
		{"secret header from env", cfg.Functions["fn"].HTTP.Headers["X-Api-Key"].Value(), "api-key-secret"},
		{"escaped dollar", cfg.Functions["fn"].HTTP.Headers["X-Price"].Value(), "$5"},
		{"ddblocal region kept", cfg.Mappings[0].Source.Region, "ddblocal"},
		{"region from first mapping", cfg.AWS.Region, "ddblocal"},
		{"server disabled", cfg.Server.Address(), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if got := cfg.Mappings[0].Settings().BatchSize; got != 50 {
		t.Errorf("BatchSize from ${BATCH_SIZE:-50} = %d, want the integer 50", got)
	}
}

func TestAnchorsAndMerges(t *testing.T) {
	cfg := parseFile(t, "testdata/anchors.good.yaml", nil)
	a, b := cfg.Mappings[0].Settings(), cfg.Mappings[1].Settings()
	if a.BatchSize != 500 || b.BatchSize != 50 || b.StartingPosition != "TRIM_HORIZON" || b.Source.Resource != "b" {
		t.Errorf("merged mapping: %+v", b)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	cfg := parseFile(t, "testdata/full.good.yaml", nil)
	secrets := []string{"wJalrXUtnFEMI-very-secret", "session-token-secret", "header-secret", "env-secret", "server-token-secret"}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var textLog, jsonLog bytes.Buffer
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "cfg", cfg, "creds", cfg.AWS.Credentials, "token", cfg.Server.AuthToken)
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "cfg", cfg, "creds", cfg.AWS.Credentials, "token", cfg.Server.AuthToken)
	forms := map[string]string{
		"String":          cfg.String(),
		"json":            string(js),
		"%v":              fmt.Sprintf("%v", cfg),
		"%+v of values":   fmt.Sprintf("%+v %+v %+v %+v", *cfg, *cfg.AWS.Credentials, cfg.Functions["web"].HTTP.Headers, *cfg.Functions["local"].Runtime),
		"%#v of values":   fmt.Sprintf("%#v %#v %#v", *cfg, *cfg.AWS.Credentials, cfg.Functions["web"].HTTP.Headers),
		"%s %q %x":        fmt.Sprintf("%s %q %x", cfg.Server.AuthToken, cfg.Server.AuthToken, cfg.Server.AuthToken),
		"slog text":       textLog.String(),
		"slog json":       jsonLog.String(),
		"Errors of a bad": badCredentialsOutput(t),
	}
	for name, out := range forms {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows secret %q:\n%s", name, s, out)
			}
		}
	}
	if !strings.Contains(cfg.String(), "secretAccessKey: <redacted>") {
		t.Errorf("String does not show the redacted marker:\n%s", cfg)
	}
	if Secret("").String() != "" {
		t.Errorf("an empty secret should render empty")
	}
}

// badCredentialsOutput is the error text of a file whose only problem sits
// next to a secret.
func badCredentialsOutput(t *testing.T) string {
	data, err := os.ReadFile("testdata/credentials.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(bytes.ReplaceAll(data, []byte("very-secret-value"), []byte("server-token-secret")), "x", nil)
	if err == nil {
		t.Fatal("credentials.bad.yaml parsed")
	}
	return err.Error()
}

func TestLoad(t *testing.T) {
	t.Setenv("ESMD_TEST_URL", "http://127.0.0.1:9999/")
	path := filepath.Join(t.TempDir(), "esmd.yaml")
	yaml := "functions: {fn: {http: {url: \"${ESMD_TEST_URL}\"}}}\n" +
		"mappings: [{EventSourceArn: \"arn:aws:sqs:us-east-1:123456789012:q\", FunctionName: fn}]\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Functions["fn"].HTTP.URL; got != "http://127.0.0.1:9999/" {
		t.Errorf("url = %q", got)
	}
	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || errors.Is(err, ErrInvalid) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestInterpolate(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"A": "a", "EMPTY": "", "DOLLAR": "${A}"}[k]
		return v, ok
	}
	tests := []struct {
		in, want string
		missing  []string
		err      string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "a"},
		{in: "x${A}y${A}", want: "xaya"},
		{in: "${B:-dflt}", want: "dflt"},
		{in: "${EMPTY:-dflt}", want: "dflt"},
		{in: "${EMPTY}", want: ""},
		{in: "${A:-dflt}", want: "a"},
		{in: "${B:-}", want: ""},
		{in: "${B:-a:-b}", want: "a:-b"},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "$$${A}", want: "$a"},
		{in: "cost $5 $", want: "cost $5 $"},
		{in: "${DOLLAR}", want: "${A}"},
		{in: "${B}${C}${B}", missing: []string{"B", "C"}},
		{in: "${B", err: "unterminated ${ at offset 0"},
		{in: "${}", err: "invalid variable reference ${}: a name is letters, digits and _, not starting with a digit"},
		{in: "${9X}", err: "invalid variable reference ${9X}: a name is letters, digits and _, not starting with a digit"},
		{in: "${A B}", err: "invalid variable reference ${A B}: a name is letters, digits and _, not starting with a digit"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, missing, err := Interpolate(tt.in, env)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.missing, missing); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
			if tt.missing == nil && got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAliasExpansionIsBounded(t *testing.T) {
	// Each level refers to the previous one ten times: 10^7 nodes once expanded.
	var b strings.Builder
	b.WriteString("functions:\n  l0: &l0 {http: {url: \"http://x/\"}}\n")
	for i := 1; i <= 7; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d {<<: [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]}\n")
	}
	start := time.Now()
	_, err := Parse([]byte(b.String()), "laughs.yaml", nil)
	if err == nil {
		t.Fatal("parsed")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
