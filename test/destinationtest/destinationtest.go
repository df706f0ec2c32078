// Package destinationtest is the conformance suite every on-failure
// destination must pass, against its real server. Run checks that:
//
//   - the delivered bytes are exactly the failure record's JSON, for a fixed
//     Kinesis failure and a fixed DynamoDB failure (compared with golden files
//     in this package's testdata; for a destination that adds the records'
//     payload, as S3 does, with golden files of its own);
//   - a Send that fails while the server is unreachable is transient, and
//     the engine's retry after the server heals delivers exactly one copy;
//   - a retry loop like the engine's keeps failing, and so blocks, as long as
//     the server stays down, delivers nothing meanwhile, and delivers exactly
//     one copy once it heals: nothing is lost and nothing is doubled.
//
// A Target breaks and heals its server itself: Proxy is a TCP proxy for
// that, or the target stops and restarts an in-process server. Golden files
// are rewritten with go test -update.
package destinationtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/esmd-dev/esmd/destinations"
	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/failuretest"
)

var update = flag.Bool("update", false, "rewrite the golden files of test/destinationtest/testdata")

// Target is one destination under test, with its server.
type Target struct {
	// Name names the target in test output.
	Name string
	// WithPayload is set for destinations that store the records' payload
	// with the failure record (S3): what arrives is then compared with
	// destinations.S3Object of the failure.
	WithPayload bool
	// New makes a fresh destination, on a resource (queue, topic, stream,
	// file…) of its own, and returns it with the target string it was made
	// from. Read and Break then apply to that resource. Run closes the
	// destination when it has a Close() error method.
	New func(t *testing.T) (d mapping.Destination, target string)
	// Read returns every message that reached the resource of the last New,
	// oldest first, waiting until there are at least n or timeout passes.
	// It reads the server directly, not through what Break breaks.
	Read func(t *testing.T, n int, timeout time.Duration) [][]byte
	// Break makes the server unreachable for the destination, until Heal.
	Break func(t *testing.T)
	// Heal makes the server reachable again.
	Heal func(t *testing.T)
}

// Timeouts of the suite.
const (
	// deliverTimeout bounds a retry loop after the server healed, and the
	// wait for a record to arrive.
	deliverTimeout = 30 * time.Second
	// settle is how long the suite waits for a second copy that must not
	// come.
	settle = 750 * time.Millisecond
	// outage is how long the server stays down while a retry loop runs.
	outage = 1500 * time.Millisecond
)

// Run runs the conformance checks against d, each in a subtest with a
// destination of its own.
func Run(t *testing.T, d Target) {
	t.Helper()
	for _, src := range []struct {
		name string
		f    func() *event.Failure
	}{{"kinesis", KinesisFailure}, {"dynamodb", DynamoDBFailure}} {
		t.Run("record/"+src.name, func(t *testing.T) {
			want := expected(t, d, src.name, src.f())
			dest := newDest(t, d)
			if err := dest.Send(t.Context(), src.f()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			exactlyOne(t, d, want)
		})
	}

	t.Run("retry after a transient failure", func(t *testing.T) {
		want := expected(t, d, "kinesis", KinesisFailure())
		dest := newDest(t, d)
		d.Break(t)
		err := dest.Send(t.Context(), KinesisFailure())
		if err == nil {
			d.Heal(t)
			t.Fatal("Send succeeded while the server was down")
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			d.Heal(t)
			t.Fatalf("Send while down = %v: a permanent error, want a transient one", err)
		}
		d.Heal(t)
		ctx, cancel := context.WithTimeout(t.Context(), deliverTimeout)
		defer cancel()
		if _, err := retry(ctx, dest, KinesisFailure); err != nil {
			t.Fatalf("retries after the server healed: %v", err)
		}
		exactlyOne(t, d, want)
	})

	t.Run("blocks without loss while the server is down", func(t *testing.T) {
		want := expected(t, d, "kinesis", KinesisFailure())
		dest := newDest(t, d)
		d.Break(t)
		healed := false
		defer func() {
			if !healed {
				d.Heal(t)
			}
		}()
		var attempts atomic.Int64
		var failed atomic.Int64
		done := make(chan error, 1)
		ctx, cancel := context.WithTimeout(t.Context(), outage+deliverTimeout)
		defer cancel()
		go func() {
			n, err := retry(ctx, dest, func() *event.Failure {
				attempts.Add(1)
				return KinesisFailure()
			})
			failed.Store(int64(n))
			done <- err
		}()
		timer := time.NewTimer(outage)
		select {
		case err := <-done:
			timer.Stop()
			t.Fatalf("the retry loop ended while the server was down (err %v, %d attempts): it must block", err, attempts.Load())
		case <-timer.C:
		}
		if n := attempts.Load(); n < 2 {
			t.Fatalf("%d attempts during the outage, want the loop to keep retrying", n)
		}
		d.Heal(t)
		healed = true
		healedAt := time.Now()
		if err := <-done; err != nil {
			t.Fatalf("retry loop after the server healed: %v", err)
		}
		t.Logf("delivered %s after the server healed, after %d attempts", time.Since(healedAt).Round(time.Millisecond), attempts.Load())
		if f := failed.Load(); f < 2 {
			t.Errorf("%d failed attempts before delivery, want at least 2", f)
		}
		exactlyOne(t, d, want)
	})
}

// newDest makes a destination of d and closes it at the end of the test.
func newDest(t *testing.T, d Target) mapping.Destination {
	t.Helper()
	dest, target := d.New(t)
	t.Logf("destination %s", target)
	if c, ok := dest.(interface{ Close() error }); ok {
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	return dest
}

// exactlyOne checks that the resource holds want, once.
func exactlyOne(t *testing.T, d Target, want []byte) {
	t.Helper()
	got := d.Read(t, 1, deliverTimeout)
	if len(got) == 0 {
		t.Fatalf("nothing arrived within %s", deliverTimeout)
	}
	if len(got) == 1 {
		got = d.Read(t, 2, settle)
	}
	if len(got) != 1 {
		t.Fatalf("%d copies arrived, want exactly one:\n%s", len(got), bytes.Join(got, []byte("\n")))
	}
	if !bytes.Equal(got[0], want) {
		t.Fatalf("delivered bytes differ from the failure record\n got: %s\nwant: %s", got[0], want)
	}
}

// expected returns what d must deliver for f, checked against the golden
// file of src (with the payload for a WithPayload target).
func expected(t *testing.T, d Target, src string, f *event.Failure) []byte {
	t.Helper()
	var got []byte
	var err error
	name := src + "_failure.golden.json"
	if d.WithPayload {
		got, err = destinations.S3Object(f)
		name = src + "_failure_with_payload.golden.json"
	} else {
		got, err = f.MarshalJSON()
	}
	if err != nil {
		t.Fatal(err)
	}
	Golden(t, name, got)
	return got
}

// Golden compares got with the file name in this package's testdata, or
// rewrites the file under -update.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join(testdata(), name)
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
		t.Fatalf("%s differs from the golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

// testdata returns this package's testdata directory, wherever the test
// that calls Run lives.
func testdata() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "testdata"
	}
	return filepath.Join(filepath.Dir(file), "testdata")
}

// retry sends next() until a Send succeeds or ctx ends, with exponential
// backoff between attempts as the engine does, and returns how many attempts
// failed.
func retry(ctx context.Context, d mapping.Destination, next func() *event.Failure) (int, error) {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(20*time.Millisecond),
		backoff.WithMaxInterval(250*time.Millisecond),
		backoff.WithMaxElapsedTime(0))
	failed := 0
	err := backoff.Retry(func() error {
		err := d.Send(ctx, next())
		if err != nil {
			failed++
		}
		return err
	}, backoff.WithContext(bo, ctx))
	return failed, err
}

// KinesisFailure returns a Kinesis failure with fixed content: two records,
// one of them poison, given up after three invokes.
func KinesisFailure() *event.Failure { return failuretest.Kinesis() }

// DynamoDBFailure returns a DynamoDB Streams failure with fixed content: one
// MODIFY record whose age passed the mapping's limit.
func DynamoDBFailure() *event.Failure {
	const (
		stream = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-03-04T05:00:00.000"
		shard  = "shardId-00000001772600000000-1a2b3c4d"
		seq    = "4100000000012345678901"
	)
	created := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	enc := event.NewDynamoDBEncoder("us-east-1", stream)
	return &event.Failure{
		Source:                 event.DynamoDB,
		RequestID:              "0e4b1a52-8d3c-4f7e-9a61-2b5c7d9e0f13",
		FunctionARN:            "arn:aws:lambda:us-east-1:123456789012:function:orders:live",
		Condition:              event.RecordAgeExceeded,
		ApproximateInvokeCount: 1,
		StatusCode:             200,
		ExecutedVersion:        "7",
		FunctionError:          "Handled",
		Timestamp:              time.Date(2026, 3, 4, 5, 8, 9, 450_000_000, time.UTC),
		ShardID:                shard,
		StreamARN:              stream,
		StartSeq:               seq,
		EndSeq:                 seq,
		FirstArrival:           created,
		LastArrival:            created,
		BatchSize:              1,
		MappingUUID:            "5f6e7d8c-1111-4222-8333-444455556666",
		Records: []event.Record{enc.Encode(event.DynamoDBRecord{
			EventID:                     "7de3041dd34a6c3c7b4a1f0e2d9c8b7a",
			EventVersion:                "1.1", // as DynamoDB Streams writes it
			EventName:                   "MODIFY",
			ApproximateCreationDateTime: created,
			Keys:                        []byte(`{"pk":{"S":"order-1"}}`),
			NewImage:                    []byte(`{"pk":{"S":"order-1"},"status":{"S":"shipped"},"total":{"N":"42.5"}}`),
			OldImage:                    []byte(`{"pk":{"S":"order-1"},"status":{"S":"paid"},"total":{"N":"42.5"}}`),
			SequenceNumber:              seq,
			SizeBytes:                   112,
			StreamViewType:              "NEW_AND_OLD_IMAGES",
		})},
	}
}
