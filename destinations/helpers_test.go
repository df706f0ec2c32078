package destinations

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testFailure is a Kinesis failure with fixed inputs: its JSON is the golden
// file testdata/kinesis_failure.golden.json.
func testFailure() *event.Failure {
	const (
		stream = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
		shard  = "shardId-000000000001"
		seq1   = "49590338271490256608559692538361571095921575989136588898"
		seq2   = "49590338271490256608559692540925702759324208523137515618"
	)
	first := time.Date(2026, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	last := first.Add(1500 * time.Millisecond)
	enc := event.NewKinesisEncoder("us-east-1", stream, "arn:aws:iam::123456789012:role/esmd")
	return &event.Failure{
		Source:                 event.Kinesis,
		RequestID:              "c9b8fa9f-5a7f-4b2c-8b5c-1a2b3c4d5e6f",
		FunctionARN:            "arn:aws:lambda:us-east-1:123456789012:function:orders",
		Condition:              event.RetryAttemptsExhausted,
		ApproximateInvokeCount: 3,
		StatusCode:             200,
		ExecutedVersion:        "$LATEST",
		FunctionError:          "Unhandled",
		Timestamp:              time.Date(2026, 3, 4, 5, 7, 8, 123_000_000, time.UTC),
		ShardID:                shard,
		StreamARN:              stream,
		StartSeq:               seq1,
		EndSeq:                 seq2,
		FirstArrival:           first,
		LastArrival:            last,
		BatchSize:              2,
		MappingUUID:            "a1b2c3d4-0000-4000-8000-0123456789ab",
		Records: []event.Record{
			enc.Encode(shard, "customer-1", seq1, []byte(`{"order":1}`), first),
			enc.Encode(shard, "customer-2", seq2, []byte("poison \x00\xff"), last),
		},
	}
}

// golden compares got with testdata/name, or rewrites the file under
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

// goldenBytes returns the content of a golden file.
func goldenBytes(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenKinesisFailure(t *testing.T) {
	got, err := testFailure().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "kinesis_failure.golden.json", got)
}

func TestGoldenS3Object(t *testing.T) {
	got, err := S3Object(testFailure())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "kinesis_failure_s3.golden.json", got)
}
