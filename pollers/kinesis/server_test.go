package kinesis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	sdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/kinesis"
	"github.com/esmd-dev/esmd/test/efoshim"
	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

const invokeRole = "arn:aws:iam::000000000000:role/esmd-test"

// kinesisServers are the servers every basic test runs against.
var kinesisServers = []struct {
	name  string
	start func(testing.TB) string
}{
	{"kinesis-mock", servers.KinesisMock},
	{"kinesalite", servers.Kinesalite},
}

// put is one record put, as the server acknowledged it.
type put struct {
	Key, Seq, Shard string
	Data            []byte
}

// putRecords puts n records (keys key-0…, data of i's bytes) in batches of
// 500 and returns them in put order.
func putRecords(t testing.TB, c *sdk.Client, stream string, from, n, size int) []put {
	t.Helper()
	var out []put
	for start := from; start < from+n; start += 500 {
		var entries []types.PutRecordsRequestEntry
		for i := start; i < min(start+500, from+n); i++ {
			data := []byte(fmt.Sprintf("rec-%d-\x00\xff\"<&>", i))
			for len(data) < size {
				data = append(data, byte('a'+len(data)%26))
			}
			entries = append(entries, types.PutRecordsRequestEntry{
				PartitionKey: aws.String(fmt.Sprintf("key-%d", i)),
				Data:         data,
			})
		}
		res, err := c.PutRecords(t.Context(), &sdk.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatalf("put records: %v", err)
		}
		if n := aws.ToInt32(res.FailedRecordCount); n != 0 {
			t.Fatalf("put records: %d failed", n)
		}
		for i, r := range res.Records {
			out = append(out, put{Key: *entries[i].PartitionKey, Data: entries[i].Data,
				Seq: aws.ToString(r.SequenceNumber), Shard: aws.ToString(r.ShardId)})
		}
	}
	return out
}

func byShard(puts []put) map[string][]put {
	m := map[string][]put{}
	for _, p := range puts {
		m[p.Shard] = append(m[p.Shard], p)
	}
	return m
}

// testStream is a new stream on a server, with a client and a Source.
type testStream struct {
	ep, name, arn string
	c             *sdk.Client
	src           *kinesis.Source
}

// newStream creates a stream of shards shards, named from prefix, on the
// server start starts, and a Source of it configured with cfg.
func newStream(t testing.TB, start func(testing.TB) string, prefix string, shards int, cfg kinesis.Config) testStream {
	t.Helper()
	ep := start(t)
	name := servers.UniqueName(prefix)
	arn := servers.CreateStream(t, ep, name, shards)
	return testStream{ep: ep, name: name, arn: arn, c: servers.KinesisClient(ep), src: newSource(t, ep, arn, cfg)}
}

func newSource(t testing.TB, endpoint, streamARN string, cfg kinesis.Config) *kinesis.Source {
	t.Helper()
	cfg.StreamARN = streamARN
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.MinPollGap == 0 {
		cfg.MinPollGap = -1 // the emulators do not limit reads
	}
	cfg.Encoder = event.NewKinesisEncoder("us-east-1", streamARN, invokeRole)
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	src, err := kinesis.New(servers.KinesisClient(endpoint), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// readN reads r until it has n records, or until the shard ends when n < 0.
// It fails t after 60 s.
func readN(t testing.TB, r mapping.ShardReader, n int) (recs []event.Record, closed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for n < 0 || len(recs) < n {
		res, err := r.Read(ctx)
		if errors.Is(err, mapping.ErrShardClosed) {
			return recs, true
		}
		if err != nil {
			t.Fatalf("read after %d records: %v", len(recs), err)
		}
		recs = append(recs, res.Records...)
	}
	return recs, false
}

// checkRecords decodes every record as Lambda's handler would and compares
// every field with what was put.
func checkRecords(t testing.TB, streamARN, shard string, got []event.Record, want []put) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("shard %s: %d records, want %d", shard, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		var rec events.KinesisEventRecord
		if err := json.Unmarshal(got[i].AppendJSON(nil), &rec); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, got[i].AppendJSON(nil))
		}
		arrival := rec.Kinesis.ApproximateArrivalTimestamp.Round(time.Millisecond) // float seconds
		if time.Since(arrival).Abs() > 10*time.Minute || !arrival.Equal(got[i].Arrival.Truncate(time.Millisecond)) {
			t.Errorf("record %d: arrival %v (record says %v)", i, arrival, got[i].Arrival)
		}
		rec.Kinesis.ApproximateArrivalTimestamp = events.SecondsEpochTime{}
		w := want[i]
		wantRec := events.KinesisEventRecord{
			AwsRegion:         "us-east-1",
			EventID:           shard + ":" + w.Seq,
			EventName:         "aws:kinesis:record",
			EventSource:       "aws:kinesis",
			EventSourceArn:    streamARN,
			EventVersion:      "1.0",
			InvokeIdentityArn: invokeRole,
			Kinesis: events.KinesisRecord{
				Data:                 w.Data,
				PartitionKey:         w.Key,
				SequenceNumber:       w.Seq,
				KinesisSchemaVersion: "1.0",
			},
		}
		if diff := cmp.Diff(wantRec, rec); diff != "" {
			t.Errorf("shard %s record %d (-want +got):\n%s", shard, i, diff)
		}
		if got[i].Key != w.Key || got[i].Seq != w.Seq || got[i].ID != w.Seq {
			t.Errorf("record %d: key %q seq %q id %q, want %q %q", i, got[i].Key, got[i].Seq, got[i].ID, w.Key, w.Seq)
		}
	}
}

func TestTrimHorizonReadsEveryRecordInOrder(t *testing.T) {
	for _, srv := range kinesisServers {
		t.Run(srv.name, func(t *testing.T) {
			ep := srv.start(t)
			name := servers.UniqueName("trim")
			arn := servers.CreateStream(t, ep, name, 3)
			puts := putRecords(t, servers.KinesisClient(ep), name, 0, 90, 0)
			src := newSource(t, ep, arn, kinesis.Config{Limit: 7})
			shards, err := src.Shards(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(shards) != 3 {
				t.Fatalf("%d shards, want 3: %+v", len(shards), shards)
			}
			want := byShard(puts)
			total := 0
			for _, sh := range shards {
				if sh.Closed || len(sh.Parents) != 0 {
					t.Errorf("shard %+v: want open and without parents", sh)
				}
				r, err := src.Open(t.Context(), sh, event.Start{Type: event.TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				got, _ := readN(t, r, len(want[sh.ID]))
				checkRecords(t, arn, sh.ID, got, want[sh.ID])
				total += len(got)
				// Nothing more: the next poll is empty.
				res, err := r.Read(t.Context())
				if err != nil || len(res.Records) != 0 {
					t.Errorf("shard %s: read past the end = %d records, %v", sh.ID, len(res.Records), err)
				}
				r.Close()
			}
			if total != len(puts) {
				t.Errorf("read %d records, put %d", total, len(puts))
			}
		})
	}
}

func TestStartingPositions(t *testing.T) {
	for _, srv := range kinesisServers {
		t.Run(srv.name, func(t *testing.T) {
			st := newStream(t, srv.start, "start", 1, kinesis.Config{Limit: 4})
			c, name, arn, src := st.c, st.name, st.arn, st.src
			shard := event.Shard{ID: "shardId-000000000000"}

			before := putRecords(t, c, name, 0, 10, 0)
			latest, err := src.Open(t.Context(), shard, event.Start{Type: event.Latest})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // arrival times have millisecond precision
			ts := time.Now()
			time.Sleep(300 * time.Millisecond)
			after := putRecords(t, c, name, 10, 5, 0)

			t.Run("LATEST", func(t *testing.T) {
				got, _ := readN(t, latest, len(after))
				checkRecords(t, arn, shard.ID, got, after)
			})
			t.Run("AT_TIMESTAMP", func(t *testing.T) {
				r, err := src.Open(t.Context(), shard, event.Start{Type: event.AtTimestamp, Timestamp: ts})
				if err != nil {
					t.Fatal(err)
				}
				got, _ := readN(t, r, len(after))
				checkRecords(t, arn, shard.ID, got, after)
			})
			all := append(slices.Clone(before), after...)
			t.Run("AFTER_SEQUENCE_NUMBER resume", func(t *testing.T) {
				r, err := src.Open(t.Context(), shard, event.Start{Type: event.TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				res, err := r.Read(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				checkRecords(t, arn, shard.ID, res.Records, all[:4]) // Limit 4
				r.Close()
				r, err = src.Open(t.Context(), shard, event.Start{Type: event.AfterSequence, Seq: res.Records[3].Seq})
				if err != nil {
					t.Fatal(err)
				}
				got, _ := readN(t, r, len(all)-4)
				checkRecords(t, arn, shard.ID, got, all[4:])
			})
			t.Run("AT_SEQUENCE_NUMBER", func(t *testing.T) {
				r, err := src.Open(t.Context(), shard, event.Start{Type: event.AtSequence, Seq: all[6].Seq})
				if err != nil {
					t.Fatal(err)
				}
				got, _ := readN(t, r, len(all)-6)
				checkRecords(t, arn, shard.ID, got, all[6:])
			})
		})
	}
}

// TestReshardingLineage splits a shard and merges its children on
// kinesis-mock, checks the lineage Shards reports, and reads each closed
// shard to its end.
func TestReshardingLineage(t *testing.T) {
	ep := servers.KinesisMock(t)
	c := servers.KinesisClient(ep)
	name := servers.UniqueName("reshard")
	arn := servers.CreateStream(t, ep, name, 1)
	src := newSource(t, ep, arn, kinesis.Config{})
	parent := "shardId-000000000000"
	first := putRecords(t, c, name, 0, 10, 0)

	half := new(big.Int).Lsh(big.NewInt(1), 127)
	if _, err := c.SplitShard(t.Context(), &sdk.SplitShardInput{StreamName: aws.String(name),
		ShardToSplit: aws.String(parent), NewStartingHashKey: aws.String(half.String())}); err != nil {
		t.Fatal(err)
	}
	shards := waitShards(t, src, 3)
	if shards[0].ID != parent || !shards[0].Closed || len(shards[0].Parents) != 0 {
		t.Errorf("parent after split: %+v", shards[0])
	}
	kids := []string{shards[1].ID, shards[2].ID}
	for _, sh := range shards[1:] {
		if sh.Closed || !slices.Equal(sh.Parents, []string{parent}) {
			t.Errorf("child after split: %+v, want open with parent %s", sh, parent)
		}
	}
	second := putRecords(t, c, name, 10, 20, 0)

	// The closed parent holds exactly the first records, then ends.
	r, err := src.Open(t.Context(), shards[0], event.Start{Type: event.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	got, closed := readN(t, r, -1)
	if !closed {
		t.Fatal("parent did not end")
	}
	checkRecords(t, arn, parent, got, first)
	if _, err := r.Read(t.Context()); !errors.Is(err, mapping.ErrShardClosed) {
		t.Errorf("read after the end = %v, want ErrShardClosed", err)
	}

	waitActive(t, c, name)
	if _, err := c.MergeShards(t.Context(), &sdk.MergeShardsInput{StreamName: aws.String(name),
		ShardToMerge: aws.String(kids[0]), AdjacentShardToMerge: aws.String(kids[1])}); err != nil {
		t.Fatal(err)
	}
	shards = waitShards(t, src, 4)
	merged := shards[3]
	if merged.Closed || !slices.Equal(merged.Parents, kids) {
		t.Errorf("merged shard %+v, want open with parents %v", merged, kids)
	}
	want := byShard(second)
	for _, sh := range shards[1:3] {
		if !sh.Closed {
			t.Errorf("child %s not closed after the merge", sh.ID)
		}
		r, err := src.Open(t.Context(), sh, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		got, closed := readN(t, r, -1)
		if !closed {
			t.Errorf("child %s did not end", sh.ID)
		}
		checkRecords(t, arn, sh.ID, got, want[sh.ID])
	}
}

// waitShards polls Shards until it lists n shards, and returns them sorted
// by ID.
func waitShards(t testing.TB, src *kinesis.Source, n int) []event.Shard {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		shards, err := src.Shards(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(shards) == n {
			slices.SortFunc(shards, func(a, b event.Shard) int { return strings.Compare(a.ID, b.ID) })
			return shards
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shards, want %d: %+v", len(shards), n, shards)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDeletedStreamIsGone(t *testing.T) {
	for _, srv := range kinesisServers {
		t.Run(srv.name, func(t *testing.T) {
			st := newStream(t, srv.start, "gone", 1, kinesis.Config{})
			c, name, src := st.c, st.name, st.src
			r, err := src.Open(t.Context(), event.Shard{ID: "shardId-000000000000"}, event.Start{Type: event.TrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.DeleteStream(t.Context(), &sdk.DeleteStreamInput{StreamName: aws.String(name)}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err := src.Shards(t.Context())
				if errors.Is(err, mapping.ErrSourceGone) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Shards = %v after the delete, want ErrSourceGone", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if _, err := r.Read(ctx); !errors.Is(err, mapping.ErrSourceGone) {
				t.Errorf("Read = %v, want ErrSourceGone", err)
			}
		})
	}
}

// TestLatestReopened reopens a LATEST reader that has returned nothing yet,
// as the engine does after a read error: the new reader starts where the
// first one did, so the records put in between are read, not skipped.
func TestLatestReopened(t *testing.T) {
	for _, srv := range kinesisServers {
		t.Run(srv.name, func(t *testing.T) {
			st := newStream(t, srv.start, "relatest", 1, kinesis.Config{})
			c, name, arn, src := st.c, st.name, st.arn, st.src
			shard := event.Shard{ID: "shardId-000000000000"}
			putRecords(t, c, name, 0, 3, 0)
			// More than the second a pinned LATEST reaches back.
			time.Sleep(1300 * time.Millisecond)
			first, err := src.Open(t.Context(), shard, event.Start{Type: event.Latest})
			if err != nil {
				t.Fatal(err)
			}
			first.Close()
			between := putRecords(t, c, name, 3, 5, 0)
			again, err := src.Open(t.Context(), shard, event.Start{Type: event.Latest})
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			got, _ := readN(t, again, len(between))
			checkRecords(t, arn, shard.ID, got, between)
		})
	}
}

// TestRetention reads the stream's retention period, the engine's bound on
// retrying a failing batch, before and after it is raised.
func TestRetention(t *testing.T) {
	for _, srv := range kinesisServers {
		t.Run(srv.name, func(t *testing.T) {
			st := newStream(t, srv.start, "retention", 1, kinesis.Config{})
			c, name, src := st.c, st.name, st.src
			if d, err := src.Retention(t.Context()); err != nil || d != 24*time.Hour {
				t.Fatalf("Retention of a new stream = %v, %v; want 24h", d, err)
			}
			if _, err := c.IncreaseStreamRetentionPeriod(t.Context(), &sdk.IncreaseStreamRetentionPeriodInput{
				StreamName: aws.String(name), RetentionPeriodHours: aws.Int32(168)}); err != nil {
				t.Fatal(err)
			}
			// The servers apply the change at once or within moments.
			deadline := time.Now().Add(30 * time.Second)
			for {
				d, err := src.Retention(t.Context())
				if err == nil && d == 168*time.Hour {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Retention after raising it to 168 h = %v, %v", d, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestEnhancedFanOut reads through SubscribeToShard on kinesis-mock, by way
// of the initial-response shim.
func TestEnhancedFanOut(t *testing.T) {
	ep := servers.KinesisMock(t)
	c := servers.KinesisClient(ep)
	name := servers.UniqueName("efo")
	arn := servers.CreateStream(t, ep, name, 2)
	consumerARN := registerConsumer(t, c, arn, "esmd")
	before := putRecords(t, c, name, 0, 30, 0)

	src, err := kinesis.New(servers.KinesisClient(efoshim.Start(t, ep)), kinesis.Config{
		ConsumerARN: consumerARN,
		Encoder:     event.NewKinesisEncoder("us-east-1", arn, invokeRole),
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	shards, err := src.Shards(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 2 {
		t.Fatalf("%d shards, want 2", len(shards))
	}
	readers := map[string]mapping.ShardReader{}
	for _, sh := range shards {
		r, err := src.Open(t.Context(), sh, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		readers[sh.ID] = r
	}
	want := byShard(before)
	for id, r := range readers {
		got, _ := readN(t, r, len(want[id]))
		checkRecords(t, arn, id, got, want[id])
	}
	// Records put while subscribed are pushed too.
	after := byShard(putRecords(t, c, name, 30, 20, 0))
	for id, r := range readers {
		got, _ := readN(t, r, len(after[id]))
		checkRecords(t, arn, id, got, after[id])
	}

	// A second consumer resumes after a checkpoint.
	src2, err := kinesis.New(servers.KinesisClient(efoshim.Start(t, ep)), kinesis.Config{
		ConsumerARN: registerConsumer(t, c, arn, "esmd-resume"),
		Encoder:     event.NewKinesisEncoder("us-east-1", arn, invokeRole),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		all := append(slices.Clone(want[sh.ID]), after[sh.ID]...)
		if len(all) < 2 {
			continue
		}
		r, err := src2.Open(t.Context(), sh, event.Start{Type: event.AfterSequence, Seq: all[0].Seq})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readN(t, r, len(all)-1)
		checkRecords(t, arn, sh.ID, got, all[1:])
		r.Close()
	}

	// After a split, the closed parent is read to its end. (kinesis-mock
	// never ends a live subscription to a shard that gets closed, so the
	// parent is opened again, now known closed.)
	parent := "shardId-000000000000"
	quarter := new(big.Int).Lsh(big.NewInt(1), 126)
	if _, err := c.SplitShard(t.Context(), &sdk.SplitShardInput{StreamName: aws.String(name),
		ShardToSplit: aws.String(parent), NewStartingHashKey: aws.String(quarter.String())}); err != nil {
		t.Fatal(err)
	}
	shards = waitShards(t, src, 4)
	if !shards[0].Closed {
		t.Fatalf("parent %+v not closed", shards[0])
	}
	for _, sh := range shards[2:] {
		if !slices.Equal(sh.Parents, []string{parent}) {
			t.Errorf("child %+v, want parent %s", sh, parent)
		}
	}
	r, err := src.Open(t.Context(), shards[0], event.Start{Type: event.AfterSequence, Seq: want[parent][len(want[parent])-1].Seq})
	if err != nil {
		t.Fatal(err)
	}
	got, closed := readN(t, r, -1)
	checkRecords(t, arn, parent, got, after[parent])
	if !closed {
		t.Error("parent did not end")
	}
}

// waitActive waits until a resharded stream is ACTIVE again.
func waitActive(t testing.TB, c *sdk.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.DescribeStreamSummary(t.Context(), &sdk.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not ACTIVE", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func registerConsumer(t testing.TB, c *sdk.Client, streamARN, name string) string {
	t.Helper()
	out, err := c.RegisterStreamConsumer(t.Context(), &sdk.RegisterStreamConsumerInput{StreamARN: aws.String(streamARN), ConsumerName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	consumerARN := aws.ToString(out.Consumer.ConsumerARN)
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := c.DescribeStreamConsumer(t.Context(), &sdk.DescribeStreamConsumerInput{ConsumerARN: aws.String(consumerARN)})
		if err != nil {
			t.Fatal(err)
		}
		if d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			return consumerARN
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s not ACTIVE", consumerARN)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkReadKinesalite reads 20,000 records of 100 bytes, put before the
// timer starts, from the four shards of a kinesalite stream, one reader
// goroutine per shard, and reports records/s.
func BenchmarkReadKinesalite(b *testing.B) {
	ep := servers.Kinesalite(b)
	name := servers.UniqueName("bench")
	arn := servers.CreateStream(b, ep, name, 4)
	want := byShard(putRecords(b, servers.KinesisClient(ep), name, 0, 20000, 100))
	src, err := kinesis.New(servers.KinesisClient(ep), kinesis.Config{StreamARN: arn, PollInterval: 50 * time.Millisecond, MinPollGap: -1})
	if err != nil {
		b.Fatal(err)
	}
	shards, err := src.Shards(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	read := 0
	for b.Loop() {
		var wg sync.WaitGroup
		counts := make([]int, len(shards))
		for i, sh := range shards {
			wg.Go(func() {
				r, err := src.Open(b.Context(), sh, event.Start{Type: event.TrimHorizon})
				if err != nil {
					b.Error(err)
					return
				}
				defer r.Close()
				for counts[i] < len(want[sh.ID]) {
					res, err := r.Read(b.Context())
					if err != nil {
						b.Error(err)
						return
					}
					counts[i] += len(res.Records)
				}
			})
		}
		wg.Wait()
		for _, c := range counts {
			read += c
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}
