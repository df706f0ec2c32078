package destinations

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/test/failuretest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testFailure is a Kinesis failure with fixed inputs: its JSON is the golden
// file testdata/kinesis_failure.golden.json.
func testFailure() *event.Failure { return failuretest.Kinesis() }

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
