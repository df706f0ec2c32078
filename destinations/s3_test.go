package destinations

import (
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// s3KeyPattern is AWS's layout for the test failure.
var s3KeyPattern = regexp.MustCompile(`^aws/lambda/a1b2c3d4-0000-4000-8000-0123456789ab/shardId-000000000001/2026/03/04/2026-03-04T05\.07\.08-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestS3Send(t *testing.T) {
	fake := &fakeS3{}
	d, err := NewS3("arn:aws:s3:::failure-bucket", fake, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatal(err)
		}
	}
	if !s3KeyPattern.MatchString(fake.keys[0]) {
		t.Errorf("key %q does not follow aws/lambda/<uuid>/<shard>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>", fake.keys[0])
	}
	if fake.keys[0] != fake.keys[1] {
		t.Errorf("one failure sent twice got keys %q and %q; want one object", fake.keys[0], fake.keys[1])
	}
	if diff := cmp.Diff(string(goldenBytes(t, "kinesis_failure_s3.golden.json")), string(fake.bodies[0])); diff != "" {
		t.Errorf("object differs from the golden file (-want +got):\n%s", diff)
	}

	other := testFailure()
	other.RequestID = "another"
	if err := d.Send(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	if fake.keys[2] == fake.keys[0] {
		t.Errorf("two failures share the key %q", fake.keys[0])
	}
}

func TestS3KeyUsesUTC(t *testing.T) {
	f := testFailure()
	f.Timestamp = time.Date(2026, 12, 31, 23, 59, 58, 0, time.FixedZone("UTC-5", -5*3600))
	got := S3Key(f, nil)
	want := "aws/lambda/a1b2c3d4-0000-4000-8000-0123456789ab/shardId-000000000001/2027/01/01/2027-01-01T04.59.58-"
	if len(got) != len(want)+36 || got[:len(want)] != want {
		t.Errorf("S3Key = %q, want prefix %q and a UUID", got, want)
	}
}

func TestS3Errors(t *testing.T) {
	t.Run("put failure is transient", func(t *testing.T) {
		boom := errors.New("slow down")
		d, _ := NewS3("arn:aws:s3:::b", &fakeS3{err: boom}, nil)
		err := d.Send(t.Context(), testFailure())
		if !errors.Is(err, boom) || isPermanent(err) {
			t.Fatalf("Send = %v; want a transient wrap of %v", err, boom)
		}
	})
	t.Run("no mapping uuid is permanent", func(t *testing.T) {
		fake := &fakeS3{}
		d, _ := NewS3("arn:aws:s3:::b", fake, nil)
		f := testFailure()
		f.MappingUUID = ""
		if err := d.Send(t.Context(), f); !isPermanent(err) || len(fake.keys) != 0 {
			t.Fatalf("Send = %v with %d puts; want a permanent error and none", err, len(fake.keys))
		}
	})
}
