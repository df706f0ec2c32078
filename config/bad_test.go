package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testEnv is the environment of the testdata files.
func testEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"SQS_ENDPOINT": "http://127.0.0.1:5000",
		"FN_PORT":      "8080",
		"API_KEY":      "api-key-secret",
		"EMPTY":        "",
	}[name]
	return v, ok
}

// badConfigs holds the exact problems each testdata/NAME.bad.yaml must
// produce, in order.
var badConfigs = map[string][]string{
	"recursive-alias": {
		"mappings[0] (line 4): an alias refers to a node that contains it",
	},
	"at-timestamp": {
		"mappings[0].StartingPosition (line 6): AT_TIMESTAMP is supported for Kinesis only; use TRIM_HORIZON or LATEST",
		"mappings[1].StartingPositionTimestamp (line 8): is required with StartingPosition AT_TIMESTAMP",
		"mappings[2].StartingPositionTimestamp (line 14): applies only with StartingPosition AT_TIMESTAMP",
		"mappings[3].StartingPositionTimestamp (line 18): \"yesterday\" is not a valid time: expected Unix seconds or an RFC 3339 time",
		"mappings[4].StartingPositionTimestamp (line 22): \"2024-01-01\" is not a valid time: expected Unix seconds or an RFC 3339 time",
	},
	"aws": {
		"aws.region (line 4): \"us east 1\" is not a region name",
		"aws.endpoints.kinesis (line 5): \"127.0.0.1:4567\" is not an http:// or https:// URL",
		"aws.endpoints.sqs (line 5): \"ftp://x\" is not an http:// or https:// URL",
		"aws.credentials.secretAccessKey (line 6): is required with static credentials",
	},
	"batching-window": {
		"mappings[0].MaximumBatchingWindowInSeconds (line 7): 301 is above the maximum 300",
		"mappings[1].MaximumBatchingWindowInSeconds (line 10): -1 is below the minimum 0",
	},
	"checkpoints": {
		"checkpoints.file.path (line 4): \"./state/\" names a folder; give the path of a file in it",
		"checkpoints.dynamodb (line 5): DynamoDB checkpoints are not supported yet; use checkpoints.file",
		"checkpoints.interval (line 6): -5s must not be negative (0 saves after every batch)",
	},
	"credentials": {
		"aws.credentials.accessKeyId (line 4): is required with static credentials",
	},
	"destinations": {
		"mappings[0].DestinationConfig.OnFailure.Destination (line 7): \"ftp://example.com/x\" is not a supported destination: expected an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:QUEUE), an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC), an S3 bucket ARN (arn:aws:s3:::BUCKET), kafka://HOST:PORT[,HOST:PORT]/TOPIC, nats://HOST:PORT/SUBJECT, file:///PATH.jsonl or an http(s):// URL",
		"mappings[1].DestinationConfig.OnFailure.Destination (line 11): \"arn:aws:lambda:us-east-1:123456789012:function:f\": lambda cannot be a destination: expected an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:QUEUE), an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC), an S3 bucket ARN (arn:aws:s3:::BUCKET), kafka://HOST:PORT[,HOST:PORT]/TOPIC, nats://HOST:PORT/SUBJECT, file:///PATH.jsonl or an http(s):// URL",
		"mappings[2].DestinationConfig.OnFailure.Destination (line 15): \"kafka://127.0.0.1:9092\": expected kafka://HOST:PORT[,HOST:PORT]/TOPIC",
		"mappings[3].DestinationConfig.OnFailure.Destination (line 19): \"nats://127.0.0.1:4222/esmd.>\": expected nats://HOST:PORT/SUBJECT with a subject free of spaces and wildcards",
		"mappings[4].DestinationConfig.OnFailure.Destination (line 23): \"arn:aws:s3:us-east-1:123456789012:bucket\": expected an S3 bucket ARN arn:aws:s3:::BUCKET",
		"mappings[5].DestinationConfig.OnFailure.Destination (line 27): \"failures.jsonl\" is not a supported destination: expected an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:QUEUE), an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC), an S3 bucket ARN (arn:aws:s3:::BUCKET), kafka://HOST:PORT[,HOST:PORT]/TOPIC, nats://HOST:PORT/SUBJECT, file:///PATH.jsonl or an http(s):// URL",
		"mappings[6].DestinationConfig.OnFailure.Destination (line 31): \"kafka://broker/topic\": broker \"broker\": expected HOST:PORT",
	},
	"empty-values": {
		"checkpoints.file.path (line 4): is empty; give the path of the checkpoint file, or leave the key out for the default ./esmd-state/checkpoints.db",
		"mappings[0].DestinationConfig.OnFailure.Destination (line 9): is empty; give the destination's ARN or URL, or leave OnFailure out to drop given-up batches with an error log",
		"mappings[1].DestinationConfig.OnFailure.Destination (line 13): is empty; give the destination's ARN or URL, or leave OnFailure out to drop given-up batches with an error log",
	},
	"two-documents": {
		"line 7: two-documents.bad.yaml holds more than one YAML document (a --- line starts another); esmd reads one: put every section and mapping in a single document",
	},
	"duplicate-keys": {
		"mappings[0].BatchSize (line 8): key \"BatchSize\" appears twice",
	},
	"dynamodb-batch-size": {
		"mappings[0].BatchSize (line 7): 20000 is above the DynamoDB Streams maximum 10000",
	},
	"efo": {
		"mappings[0].MaximumBatchingWindowInSeconds (line 7): does not apply to a Kinesis enhanced fan-out consumer",
		"mappings[0].esmd.pollInterval (line 8): does not apply to a Kinesis enhanced fan-out consumer: records are pushed",
		"mappings[1].EventSourceArn (line 9): \"arn:aws:kinesis:us-east-1:123456789012:stream/a/consumer/c2\": a Kinesis consumer ARN ends in /consumer/NAME:CREATION_TIMESTAMP",
	},
	"empty": {
		"mappings: at least one mapping is required",
	},
	"esmd-block": {
		"mappings[0].esmd.pollInterval (line 8): -1s must not be negative",
		"mappings[0].esmd.invokeIdentityArn (line 9): \"role/esmd\" is not an ARN",
		"mappings[0].esmd.retryBackoff.initial (line 10): 0s must be positive",
		"mappings[1].esmd.retryBackoff.max (line 15): 1s is below retryBackoff.initial 2s",
	},
	"event-source-arn": {
		"mappings[0].EventSourceArn (line 4): is required",
		"mappings[1].EventSourceArn (line 5): \"not-an-arn\" is not an ARN: expected arn:aws:kinesis:REGION:ACCOUNT:stream/NAME[/consumer/NAME:TIMESTAMP], arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL or arn:aws:sqs:REGION:ACCOUNT:QUEUE",
		"mappings[2].EventSourceArn (line 7): \"arn:aws:dynamodb:us-east-1:123456789012:table/T\" is not a DynamoDB stream ARN (a table ARN is not enough: add /stream/LABEL): expected arn:aws:kinesis:REGION:ACCOUNT:stream/NAME[/consumer/NAME:TIMESTAMP], arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL or arn:aws:sqs:REGION:ACCOUNT:QUEUE",
		"mappings[3].EventSourceArn (line 9): \"arn:aws:sns:us-east-1:123456789012:topic\": service \"sns\" cannot be an event source: expected arn:aws:kinesis:REGION:ACCOUNT:stream/NAME[/consumer/NAME:TIMESTAMP], arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL or arn:aws:sqs:REGION:ACCOUNT:QUEUE",
		"mappings[4].EventSourceArn (line 11): \"arn:aws:kinesis:us-east-1:12345:stream/s\": account \"12345\" is not 12 digits",
		"mappings[5].EventSourceArn (line 13): \"arn:aws:kinesis:us-east-1:123456789012:table/s\" is not a Kinesis stream or consumer ARN: expected arn:aws:kinesis:REGION:ACCOUNT:stream/NAME[/consumer/NAME:TIMESTAMP], arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL or arn:aws:sqs:REGION:ACCOUNT:QUEUE",
	},
	"function-name": {
		"mappings[0].FunctionName (line 5): is required",
		"mappings[1].FunctionName (line 8): \"orders\" is not defined under functions (defined: fn, other)",
	},
	"functions": {
		"functions.none (line 2): needs exactly one of http, lambda, runtime, nats or exec",
		"functions.both (line 3): has http and exec: choose exactly one",
		"functions.badurl.http.url (line 6): \"ftp://a/\" is not an http:// or https:// URL",
		"functions.badurl.http.timeout (line 6): -1s must be positive",
		"functions.nourl.http.url (line 7): is required",
		"functions.nourl.http.headers.Bad Header (line 7): \"Bad Header\" is not a valid HTTP header name",
		"functions.lam.lambda.functionName (line 8): is required",
		"functions.lam.lambda.timeout (line 8): 16m0s is above the maximum 15m0s",
		"functions.rt.runtime.command (line 9): is required: the program and its arguments, as a list",
		"functions.rt.runtime.concurrency (line 9): 0 is below the minimum 1",
		"functions.rt.runtime.memorySize (line 9): 64 is below the Lambda minimum 128",
		"functions.rt.runtime.environment.1BAD (line 9): \"1BAD\" is not a valid environment variable name",
		"functions.rt2.runtime.concurrency (line 10): 1001 is above the maximum 1000",
		"functions.rt2.runtime.memorySize (line 10): 10241 is above the Lambda maximum 10240",
		"functions.rt2.runtime.timeout (line 10): 0s must be positive",
		"functions.bus.nats.url (line 11): \"http://x:4222\" is not a nats:// (or tls://, ws://, wss://) URL",
		"functions.bus.nats.subject (line 11): \"fn.*\" is not a valid NATS subject (no spaces or wildcards)",
		"functions.bus2.nats.url (line 12): is required",
		"functions.bus2.nats.subject (line 12): is required",
		"functions.ex.exec.command (line 13): is required: the program and its arguments, as a list",
		"functions.bad name! (line 14): function name \"bad name!\" must be 1 to 64 letters, digits, - or _",
	},
	"interpolation-syntax": {
		"mappings[0].EventSourceArn (line 4): unterminated ${ at offset 46",
		"mappings[0].StartingPosition (line 6): invalid variable reference ${1POSITION}: a name is letters, digits and _, not starting with a digit",
	},
	"kinesis-batch-size": {
		"mappings[0].BatchSize (line 7): 10001 is above the Kinesis maximum 10000",
		"mappings[1].BatchSize (line 11): 0 is below the Kinesis minimum 1",
	},
	"missing-env": {
		"aws.region (line 2): environment variable REGION is not set (write ${REGION:-default} to give a default)",
		"aws.endpoints.kinesis (line 4): environment variable HOST is not set (write ${HOST:-default} to give a default)",
		"aws.endpoints.kinesis (line 4): environment variable PORT is not set (write ${PORT:-default} to give a default)",
		"functions.fn.http.url (line 6): environment variable FN_URL is not set (write ${FN_URL:-default} to give a default)",
	},
	"names": {
		"mappings[1] (line 7): name \"fn-a\" is already used by mappings[0]; give each mapping a unique esmd.name",
		"mappings[2].esmd.name (line 13): name \"fn-a\" is already used by mappings[0]; give each mapping a unique esmd.name",
		"mappings[3].esmd.name (line 17): \"-bad name\" must start with a letter or digit and hold at most 128 letters, digits, _ . or -",
	},
	"no-functions": {
		"mappings[0].FunctionName (line 3): \"fn\" is not defined: the functions section is empty",
	},
	"no-mappings": {
		"mappings (line 3): at least one mapping is required",
	},
	"not-supported": {
		"mappings[0].FilterCriteria (line 7): FilterCriteria is not supported yet",
		"mappings[0].TumblingWindowInSeconds (line 10): TumblingWindowInSeconds is not supported yet",
		"mappings[0].DestinationConfig.OnSuccess (line 12): on-success destinations are not supported; only OnFailure is",
	},
	"parallelization": {
		"mappings[0].ParallelizationFactor (line 7): 0 is below the minimum 1",
		"mappings[1].ParallelizationFactor (line 11): 11 is above the maximum 10",
		"mappings[2].ParallelizationFactor (line 14): does not apply to an SQS queue (SQS concurrency is set by ScalingConfig.MaximumConcurrency)",
	},
	"record-age": {
		"mappings[0].MaximumRecordAgeInSeconds (line 7): 59 is below the minimum 60 (or -1 for infinite)",
		"mappings[1].MaximumRecordAgeInSeconds (line 11): 604801 is above the maximum 604800 (or -1 for infinite)",
		"mappings[2].MaximumRecordAgeInSeconds (line 15): -2 is below the minimum 60 (or -1 for infinite)",
		"mappings[3].MaximumRecordAgeInSeconds (line 18): does not apply to an SQS queue (use the queue's message retention period)",
	},
	"response-types": {
		"mappings[0].FunctionResponseTypes[1] (line 7): \"ReportItemFailures\" is not a response type (the only one is ReportBatchItemFailures)",
	},
	"retry-attempts": {
		"mappings[0].MaximumRetryAttempts (line 7): -2 is below the minimum 0 (or -1 for infinite)",
		"mappings[1].MaximumRetryAttempts (line 11): 10001 is above the maximum 10000 (or -1 for infinite)",
		"mappings[2].MaximumRetryAttempts (line 14): does not apply to an SQS queue (use the queue's redrive policy maxReceiveCount)",
	},
	"scaling": {
		"mappings[0].ScalingConfig.MaximumConcurrency (line 6): 1 is below the minimum 2",
		"mappings[1].ScalingConfig.MaximumConcurrency (line 9): 1001 is above the maximum 1000",
		"mappings[2].ScalingConfig (line 13): does not apply to a Kinesis stream (it bounds SQS pollers)",
		"mappings[3].ScalingConfig (line 17): does not apply to a DynamoDB stream (it bounds SQS pollers)",
	},
	"server-logging": {
		"server.listen (line 3): \"localhost\" is not HOST:PORT (or \"off\" to disable the server)",
		"logging.level (line 4): \"verbose\" is not one of debug, info, warn, error",
		"logging.format (line 4): \"yaml\" is not one of text, json",
	},
	"server-port": {
		"server.listen (line 3): \"127.0.0.1:99999\" is not HOST:PORT (or \"off\" to disable the server)",
	},
	"shutdown-timeout": {
		"shutdownTimeout (line 3): 0s must be positive",
	},
	"sqs-batch-size": {
		"mappings[0].BatchSize (line 6): 11 is above 10, which requires MaximumBatchingWindowInSeconds of at least 1",
		"mappings[1].BatchSize (line 9): 10001 is above the SQS maximum 10000",
		"mappings[2].BatchSize (line 13): 100 is above 10, which requires MaximumBatchingWindowInSeconds of at least 1",
	},
	"sqs-fifo": {
		"mappings[0].BatchSize (line 6): 11 is above the SQS FIFO maximum 10",
		"mappings[0].MaximumBatchingWindowInSeconds (line 7): does not apply to an SQS FIFO queue",
	},
	"sqs-settings-on-streams": {
		"mappings[0].esmd.visibilityOnError (line 7): applies only to SQS queues",
		"mappings[0].esmd.visibilityHeartbeat (line 7): applies only to SQS queues",
		"mappings[0].esmd.waitTime (line 7): applies only to SQS queues",
		"mappings[0].esmd.initialPollers (line 7): applies only to SQS queues",
		"mappings[0].esmd.minPollers (line 7): applies only to SQS queues",
		"mappings[0].esmd.scaleInterval (line 7): applies only to SQS queues",
		"mappings[0].esmd.shardDiscoveryInterval (line 7): 0s must be positive",
		"mappings[1].esmd.visibilityOnError (line 10): 13h0m0s is above the SQS maximum 12h0m0s",
		"mappings[2].esmd.visibilityOnError (line 13): 1.5s is not a whole number of seconds",
		"mappings[3].esmd.visibilityOnError (line 16): -1s must not be negative",
		"mappings[4].esmd.waitTime (line 20): 21s is not between 1s and 20s (the SQS long poll)",
		"mappings[4].esmd.initialPollers (line 20): 5 is not between 1 and MaximumConcurrency (4)",
		"mappings[4].esmd.scaleInterval (line 20): 10ms is not between 100ms and 1m0s",
		"mappings[5].esmd.waitTime (line 23): 1.5s is not a whole number of seconds",
		"mappings[5].esmd.minPollers (line 23): 0 is not between 1 and initialPollers (3)",
		"mappings[5].esmd.scaleInterval (line 23): 2m0s is not between 100ms and 1m0s",
	},
	"sqs-stream-only": {
		"mappings[0].StartingPosition (line 6): does not apply to an SQS queue",
		"mappings[0].StartingPositionTimestamp (line 7): does not apply to an SQS queue",
		"mappings[0].BisectBatchOnFunctionError (line 8): does not apply to an SQS queue",
		"mappings[0].DestinationConfig.OnFailure (line 10): does not apply to an SQS queue (use the queue's redrive policy and a dead-letter queue)",
		"mappings[0].esmd.shardDiscoveryInterval (line 11): applies only to streams",
	},
	"starting-position": {
		"mappings[0].StartingPosition (line 4): is required for a Kinesis stream: TRIM_HORIZON, LATEST or AT_TIMESTAMP",
		"mappings[1].StartingPosition (line 6): is required for a DynamoDB stream: TRIM_HORIZON, LATEST or AT_TIMESTAMP",
		"mappings[2].StartingPosition (line 10): \"EARLIEST\" is not one of TRIM_HORIZON, LATEST, AT_TIMESTAMP",
	},
	"top-level-list": {
		"line 1: the top level of top-level-list.bad.yaml must be a mapping of sections (aws, functions, mappings, ...)",
	},
	"types": {
		"shutdownTimeout (line 3): \"30\" is not a duration (use a Go duration like 30s or 500ms)",
		"mappings[0].BatchSize (line 8): expected an integer, got \"ten\"",
		"mappings[0].Enabled (line 9): expected true or false, got \"maybe\"",
		"mappings[0].FunctionResponseTypes (line 10): expected a list, got \"ReportBatchItemFailures\"",
		"mappings[0].DestinationConfig (line 11): expected a mapping, got a list",
		"mappings[0].esmd.pollInterval (line 12): \"soon\" is not a duration (use a Go duration like 30s or 500ms)",
	},
	"unknown-keys": {
		"mapings (line 3): unknown key \"mapings\" (did you mean \"mappings\"?)",
		"logging.colour (line 4): unknown key \"colour\"; expected one of: level, format, payloads",
		"mappings[0].batchSize (line 9): unknown key \"batchSize\" (did you mean \"BatchSize\"?)",
		"mappings[0].Retries (line 10): unknown key \"Retries\"; expected one of: EventSourceArn, FunctionName, Enabled, BatchSize, MaximumBatchingWindowInSeconds, StartingPosition, StartingPositionTimestamp, ParallelizationFactor, MaximumRecordAgeInSeconds, MaximumRetryAttempts, BisectBatchOnFunctionError, FunctionResponseTypes, DestinationConfig, ScalingConfig, FilterCriteria, TumblingWindowInSeconds, esmd",
		"mappings[0].esmd.PollInterval (line 11): unknown key \"PollInterval\" (did you mean \"pollInterval\"?)",
	},
	"uuids": {
		"mappings[0].esmd.uuid (line 7): \"not-a-uuid\" is not a UUID like 6f1d2c3b-0a4e-4c2f-9b8d-1e2f3a4b5c6d",
		"mappings[2].esmd.uuid (line 15): 0b7e2c4a-2e3f-4d5c-8b9a-1c2d3e4f5a6b is already used by mappings[1]",
	},
	"generator": {
		"mappings[0].EventSourceArn (line 5): \"generator://load?shards=0&colour=red\": colour: unknown key (known: shards, rate, keys, size, count, duration, seed, shape, poison, payload, template, readsize); shards: 0 is not between 1 and its maximum",
		"mappings[1].StartingPosition (line 9): AT_TIMESTAMP does not apply to a generator source; use TRIM_HORIZON",
		"mappings[2].BatchSize (line 13): 10001 is above the Kinesis maximum 10000",
		"mappings[2].ScalingConfig (line 14): does not apply to a generator source (it bounds SQS pollers)",
	},
	"yaml-syntax": {
		"line 5: yaml-syntax.bad.yaml is not valid YAML: mapping values are not allowed in this context",
	},
}

func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("only %d bad configs", len(files))
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bad.yaml")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			want, ok := badConfigs[name]
			if !ok {
				t.Fatalf("no expected errors for %s", f)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data, filepath.Base(f), testEnv)
			if cfg != nil {
				t.Errorf("Parse returned a config with errors")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not Errors", err)
			}
			var got []string
			for _, e := range errs {
				if !errors.Is(e, ErrInvalid) {
					t.Errorf("%v does not wrap ErrInvalid", e)
				}
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if err.Error() != strings.Join(want, "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
	for name := range badConfigs {
		if !seen[name] {
			t.Errorf("badConfigs has %q but there is no testdata/%s.bad.yaml", name, name)
		}
	}
}

// TestSecondDocument: a file is one YAML document, with or without the
// markers around it; a second document is reported at its --- line.
func TestSecondDocument(t *testing.T) {
	tests := []struct {
		yaml string
		line int
	}{
		{"a: 1\n", 0},
		{"---\na: 1\n", 0},
		{"a: 1\n---\n", 0},
		{"a: 1\n---\n# only a comment\n", 0},
		{"---\na: 1\n...\n", 0},
		{"a: 1\n---\n~\n", 0},
		{"a: 1\n---\nb: 2\n", 2},
		{"---\na: 1\n---\n- b\n", 3},
		// A second document that does not parse is lost all the same.
		{"a: 1\n---\nb: [c\n", 2},
		{"---\na: 1\n---\nb:\n\t- c\n", 3},
	}
	for _, tc := range tests {
		if got := secondDocument([]byte(tc.yaml)); got != tc.line {
			t.Errorf("secondDocument(%q) = %d, want %d", tc.yaml, got, tc.line)
		}
	}
}
