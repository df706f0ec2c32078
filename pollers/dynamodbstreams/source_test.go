package dynamodbstreams

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

const fakeARN = "arn:aws:dynamodb:eu-west-1:000000000000:table/orders/stream/2026-11-25T00:00:00.000"

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) count(level, msg string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, "level="+level) && strings.Contains(line, msg) {
			n++
		}
	}
	return n
}

func newSource(t *testing.T, api API, cfg Config) (*Source, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	cfg.StreamARN = fakeARN
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

func seqs(recs []event.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

func seqRange(s, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, seqOf(s, i))
	}
	return out
}

func TestNewValidates(t *testing.T) {
	api := newFake(fakeARN)
	cases := []struct {
		name string
		api  API
		cfg  Config
		want string
	}{
		{"nil client", nil, Config{StreamARN: fakeARN}, "nil client"},
		{"no arn", api, Config{}, "empty stream ARN"},
		{"negative interval", api, Config{StreamARN: fakeARN, PollInterval: -time.Second}, "negative poll interval"},
		{"limit too big", api, Config{StreamARN: fakeARN, Limit: 1001}, "outside 1-1000"},
		{"limit negative", api, Config{StreamARN: fakeARN, Limit: -1}, "outside 1-1000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.api, c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
	s, err := New(api, Config{StreamARN: fakeARN})
	if err != nil {
		t.Fatal(err)
	}
	if s.pollInterval != 250*time.Millisecond || s.limit != 1000 {
		t.Fatalf("defaults: interval %s limit %d", s.pollInterval, s.limit)
	}
}

// lineage is a stream of four generations: a root whose parent is past
// retention, its closed child, that child's split into two, and a child of
// one half, open.
func lineage() *fakeAPI {
	f := newFake(fakeARN,
		fakeShard{id: "shardId-0", parent: "shardId-trimmed", closed: true, records: fakeRecords(0, 3)},
		fakeShard{id: "shardId-1", parent: "shardId-0", closed: true, records: fakeRecords(1, 4)},
		fakeShard{id: "shardId-2", parent: "shardId-1", closed: true, records: fakeRecords(2, 2)},
		fakeShard{id: "shardId-3", parent: "shardId-1", records: fakeRecords(3, 5)},
		fakeShard{id: "shardId-4", parent: "shardId-2", records: fakeRecords(4, 1)},
	)
	f.pageSize = 2
	return f
}

func TestShardsPaginatesAndKeepsLineage(t *testing.T) {
	f := lineage()
	s, _ := newSource(t, f, Config{})
	got, err := s.Shards(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []event.Shard{
		{ID: "shardId-0", Closed: true},
		{ID: "shardId-1", Parents: []string{"shardId-0"}, Closed: true},
		{ID: "shardId-2", Parents: []string{"shardId-1"}, Closed: true},
		{ID: "shardId-3", Parents: []string{"shardId-1"}},
		{ID: "shardId-4", Parents: []string{"shardId-2"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("shards (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"", "shardId-1", "shardId-3"}, f.describeStarts); d != "" {
		t.Fatalf("ExclusiveStartShardId per page (-want +got):\n%s", d)
	}
}

// TestLineageReadsParentsFirst reads the stream the way the engine does:
// a shard only once its parents are read to their end. Every record of every
// shard arrives once, parents' records before their children's.
func TestLineageReadsParentsFirst(t *testing.T) {
	f := lineage()
	s, _ := newSource(t, f, Config{PollInterval: time.Millisecond, Limit: 2})
	ctx := context.Background()
	shards, err := s.Shards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]bool{}
	var order []string
	pending := shards
	for round := 0; len(pending) > 0 && round < 10; round++ {
		var next []event.Shard
		for _, sh := range pending {
			ready := true
			for _, p := range sh.Parents {
				ready = ready && done[p]
			}
			if !ready {
				next = append(next, sh)
				continue
			}
			r, err := s.Open(ctx, sh, event.Start{Type: event.TrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			for {
				res, err := r.Read(ctx)
				order = append(order, seqs(res.Records)...)
				if res.MillisBehind != -1 {
					t.Fatalf("MillisBehind %d", res.MillisBehind)
				}
				if errors.Is(err, mapping.ErrShardClosed) {
					done[sh.ID] = true
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !sh.Closed && len(res.Records) == 0 {
					break // an open shard read to its tip
				}
			}
			_ = r.Close()
		}
		pending = next
	}
	var want []string
	for _, g := range [][]int{{0, 3}, {1, 4}, {2, 2}, {3, 5}, {4, 1}} {
		want = append(want, seqRange(g[0], 0, g[1])...)
	}
	if d := cmp.Diff(want, order); d != "" {
		t.Fatalf("order (-want +got):\n%s", d)
	}
	if !done["shardId-0"] || !done["shardId-1"] || !done["shardId-2"] || done["shardId-3"] || done["shardId-4"] {
		t.Fatalf("finished shards %v", done)
	}
}

func TestShardsStatus(t *testing.T) {
	cases := []struct {
		name     string
		status   types.StreamStatus
		closeAll bool
		missing  bool
		wantGone bool
		wantMsg  string
		wantList int
	}{
		{name: "enabled", status: types.StreamStatusEnabled, wantList: 2},
		{name: "enabled all closed", status: types.StreamStatusEnabled, closeAll: true, wantList: 2},
		{name: "disabled with an open shard", status: types.StreamStatusDisabled, wantList: 2},
		{name: "disabled all closed, not read", status: types.StreamStatusDisabled, closeAll: true, wantList: 2},
		{name: "missing", missing: true, wantGone: true, wantMsg: "stream ARN " + fakeARN + " does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(fakeARN,
				fakeShard{id: "a", closed: true},
				fakeShard{id: "b", parent: "a", closed: c.closeAll},
			)
			f.status, f.missing = c.status, c.missing
			s, _ := newSource(t, f, Config{})
			got, err := s.Shards(context.Background())
			if errors.Is(err, mapping.ErrSourceGone) != c.wantGone {
				t.Fatalf("err %v, want gone=%v", err, c.wantGone)
			}
			if c.wantGone && !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("err %q, want %q", err, c.wantMsg)
			}
			if !c.wantGone && err != nil {
				t.Fatal(err)
			}
			if len(got) != c.wantList {
				t.Fatalf("%d shards, want %d", len(got), c.wantList)
			}
		})
	}
}

// TestShardsDisabledAfterReadingEverything: a disabled stream is gone for
// the engine only once its remaining records were read.
func TestShardsDisabledAfterReadingEverything(t *testing.T) {
	for _, status := range []types.StreamStatus{types.StreamStatusDisabled, types.StreamStatusDisabling} {
		t.Run(string(status), func(t *testing.T) {
			f := newFake(fakeARN,
				fakeShard{id: "a", closed: true, records: fakeRecords(0, 2)},
				fakeShard{id: "b", parent: "a", closed: true, records: fakeRecords(1, 1)},
			)
			f.status = status
			s, logs := newSource(t, f, Config{})
			ctx := context.Background()
			for i, sh := range []string{"a", "b"} {
				got, err := s.Shards(ctx)
				if err != nil || len(got) != 2 {
					t.Fatalf("listing %d before shard %s was read: %d shards, %v", i, sh, len(got), err)
				}
				r, err := s.Open(ctx, event.Shard{ID: sh, Closed: true}, event.Start{Type: event.TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				for {
					_, err := r.Read(ctx)
					if errors.Is(err, mapping.ErrShardClosed) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			got, err := s.Shards(ctx)
			var de *DisabledError
			if !errors.Is(err, mapping.ErrSourceGone) || !errors.As(err, &de) || de.Status != string(status) || len(got) != 2 {
				t.Fatalf("after reading everything: %d shards, %v", len(got), err)
			}
			if want := "stream is " + string(status) + " and every shard is closed"; !strings.Contains(err.Error(), want) {
				t.Fatalf("err %q, want %q", err, want)
			}
			if n := logs.count("WARN", "stream is disabled; reading the records it still holds"); n != 1 {
				t.Fatalf("%d disabled warnings, want 1:\n%s", n, logs)
			}
		})
	}
}

func TestShardsOtherErrorIsNotGone(t *testing.T) {
	f := newFake(fakeARN, fakeShard{id: "a"})
	f.describeErrs = []error{&smithy.GenericAPIError{Code: "AccessDeniedException", Message: "no"}}
	s, _ := newSource(t, f, Config{})
	_, err := s.Shards(context.Background())
	if err == nil || errors.Is(err, mapping.ErrSourceGone) || !strings.Contains(err.Error(), "describe stream") {
		t.Fatalf("err %v", err)
	}
}

// TestAtTimestampWithoutCreationTime: a record without a creation time is
// not taken for one created before an AT_TIMESTAMP start; skipping it would
// skip every record after it too.
func TestAtTimestampWithoutCreationTime(t *testing.T) {
	recs := fakeRecords(0, 5)
	for i := range recs {
		recs[i].Dynamodb.ApproximateCreationDateTime = nil
	}
	f := newFake(fakeARN, fakeShard{id: "a", records: recs})
	s, _ := newSource(t, f, Config{})
	r, err := s.Open(context.Background(), event.Shard{ID: "a"}, event.Start{Type: event.AtTimestamp, Timestamp: time.Unix(1600000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Read(context.Background())
	if err != nil || len(res.Records) != 5 {
		t.Fatalf("read %d of 5 records, %v", len(res.Records), err)
	}
}

func TestOpenStartingPositions(t *testing.T) {
	cases := []struct {
		name     string
		start    event.Start
		wantType types.ShardIteratorType
		want     []string
		wantErr  string
	}{
		{name: "trim horizon", start: event.Start{Type: event.TrimHorizon}, wantType: "TRIM_HORIZON", want: seqRange(0, 0, 5)},
		{name: "latest", start: event.Start{Type: event.Latest}, wantType: "LATEST", want: nil},
		{name: "after", start: event.Start{Type: event.AfterSequence, Seq: seqOf(0, 1)}, wantType: "AFTER_SEQUENCE_NUMBER", want: seqRange(0, 2, 5)},
		{name: "at", start: event.Start{Type: event.AtSequence, Seq: seqOf(0, 1)}, wantType: "AT_SEQUENCE_NUMBER", want: seqRange(0, 1, 5)},
		// No AT_TIMESTAMP in DynamoDB Streams: TRIM_HORIZON, skipping the
		// records created before the timestamp's second.
		{name: "at timestamp", start: event.Start{Type: event.AtTimestamp, Timestamp: time.Unix(1700000002, 600e6)}, wantType: "TRIM_HORIZON", want: seqRange(0, 2, 5)},
		{name: "at timestamp before all", start: event.Start{Type: event.AtTimestamp, Timestamp: time.Unix(1600000000, 0)}, wantType: "TRIM_HORIZON", want: seqRange(0, 0, 5)},
		{name: "at timestamp after all", start: event.Start{Type: event.AtTimestamp, Timestamp: time.Now()}, wantType: "TRIM_HORIZON", want: nil},
		{name: "at timestamp without time", start: event.Start{Type: event.AtTimestamp}, wantErr: "AT_TIMESTAMP without a timestamp"},
		{name: "after without seq", start: event.Start{Type: event.AfterSequence}, wantErr: "needs a sequence number"},
		{name: "unknown", start: event.Start{Type: "SOMEWHERE"}, wantErr: "unknown starting position"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 5)})
			s, _ := newSource(t, f, Config{})
			r, err := s.Open(context.Background(), event.Shard{ID: "a"}, c.start)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				if len(f.iterCalls) != 0 {
					t.Fatalf("GetShardIterator called %d times", len(f.iterCalls))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.iterCalls[0]; got.ShardIteratorType != c.wantType || aws.ToString(got.ShardId) != "a" ||
				aws.ToString(got.StreamArn) != fakeARN || aws.ToString(got.SequenceNumber) != c.start.Seq {
				t.Fatalf("GetShardIterator %+v", got)
			}
			res, err := r.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, seqs(res.Records)); d != "" {
				t.Fatalf("records (-want +got):\n%s", d)
			}
		})
	}
}

// TestReadPacing checks Lambda's pacing: a poll that returned records is
// followed at once by the next, an empty poll waits PollInterval.
func TestReadPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 4)})
		s, _ := newSource(t, f, Config{Limit: 2})
		ctx := context.Background()
		r, err := s.Open(ctx, event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var got []string
		for range 3 { // 2 records, 2 records, none
			res, err := r.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, seqs(res.Records)...)
		}
		if el := time.Since(start); el != 0 {
			t.Fatalf("three polls after records took %s, want no wait", el)
		}
		if d := cmp.Diff(seqRange(0, 0, 4), got); d != "" {
			t.Fatalf("records (-want +got):\n%s", d)
		}
		// Idle: each further poll waits the default 250 ms.
		for i := range 2 {
			if _, err := r.Read(ctx); err != nil {
				t.Fatal(err)
			}
			if el, want := time.Since(start), time.Duration(i+1)*250*time.Millisecond; el != want {
				t.Fatalf("idle poll %d at %s, want %s", i, el, want)
			}
		}
		// A write arrives: the next poll (after the idle wait) returns it, and
		// the one after comes at once.
		f.appendRecords("a", fakeRecords(0, 5)[4])
		res, err := r.Read(ctx)
		if err != nil || len(res.Records) != 1 {
			t.Fatalf("read %v, %v", seqs(res.Records), err)
		}
		at := time.Now()
		if _, err := r.Read(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Since(at) != 0 {
			t.Fatalf("poll after records waited %s", time.Since(at))
		}
		// Cancelling ctx ends a wait at once.
		cctx, cancel := context.WithCancel(ctx)
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		at = time.Now()
		if _, err := r.Read(cctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if time.Since(at) != 10*time.Millisecond {
			t.Fatalf("cancel took %s", time.Since(at))
		}
	})
}

func TestReadClosedShardEnds(t *testing.T) {
	cases := []struct {
		name  string
		n     int
		limit int32
		want  [][]string
	}{
		{"records then end", 3, 2, [][]string{seqRange(0, 0, 2), seqRange(0, 2, 3)}},
		{"exact page then end", 2, 2, [][]string{seqRange(0, 0, 2)}},
		{"empty closed shard", 0, 2, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(fakeARN, fakeShard{id: "a", closed: true, records: fakeRecords(0, c.n)})
			s, _ := newSource(t, f, Config{Limit: c.limit, PollInterval: time.Millisecond})
			ctx := context.Background()
			r, err := s.Open(ctx, event.Shard{ID: "a", Closed: true}, event.Start{Type: event.TrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for i := 0; ; i++ {
				res, err := r.Read(ctx)
				if errors.Is(err, mapping.ErrShardClosed) {
					if len(res.Records) != 0 {
						t.Fatalf("ErrShardClosed with %d records", len(res.Records))
					}
					break
				}
				if err != nil || i > 5 {
					t.Fatalf("read %d: %v", i, err)
				}
				if len(res.Records) > 0 {
					got = append(got, seqs(res.Records))
				}
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Fatalf("batches (-want +got):\n%s", d)
			}
			if _, err := r.Read(ctx); !errors.Is(err, mapping.ErrShardClosed) {
				t.Fatalf("read after end: %v", err)
			}
			calls := f.recordCalls
			if _, err := r.Read(ctx); !errors.Is(err, mapping.ErrShardClosed) || f.recordCalls != calls {
				t.Fatalf("read after end polled again: %v", err)
			}
		})
	}
}

func TestReadRenewsExpiredIterator(t *testing.T) {
	expired := &types.ExpiredIteratorException{Message: aws.String("Iterator expired")}
	t.Run("after records", func(t *testing.T) {
		f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 6)})
		s, _ := newSource(t, f, Config{Limit: 2})
		ctx := context.Background()
		r, err := s.Open(ctx, event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		first, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.recordErrs = []error{expired}
		second, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(seqRange(0, 0, 4), append(seqs(first.Records), seqs(second.Records)...)); d != "" {
			t.Fatalf("records (-want +got):\n%s", d)
		}
		last := f.iterCalls[len(f.iterCalls)-1]
		if len(f.iterCalls) != 2 || last.ShardIteratorType != types.ShardIteratorTypeAfterSequenceNumber || aws.ToString(last.SequenceNumber) != seqOf(0, 1) {
			t.Fatalf("renewal %d calls, last %+v", len(f.iterCalls), last)
		}
	})
	t.Run("before any record", func(t *testing.T) {
		f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 3)})
		f.recordErrs = []error{expired}
		s, _ := newSource(t, f, Config{})
		ctx := context.Background()
		r, err := s.Open(ctx, event.Shard{ID: "a"}, event.Start{Type: event.AfterSequence, Seq: seqOf(0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(seqRange(0, 1, 3), seqs(res.Records)); d != "" {
			t.Fatalf("records (-want +got):\n%s", d)
		}
		if len(f.iterCalls) != 2 || f.iterCalls[1].ShardIteratorType != types.ShardIteratorTypeAfterSequenceNumber ||
			aws.ToString(f.iterCalls[1].SequenceNumber) != seqOf(0, 0) {
			t.Fatalf("renewal %+v", f.iterCalls)
		}
	})
}

func TestReadDropsRecordsAlreadyReturned(t *testing.T) {
	f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 4)})
	f.afterIsAt = true
	s, _ := newSource(t, f, Config{})
	ctx := context.Background()
	r, err := s.Open(ctx, event.Shard{ID: "a"}, event.Start{Type: event.AfterSequence, Seq: seqOf(0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(seqRange(0, 2, 4), seqs(res.Records)); d != "" {
		t.Fatalf("records (-want +got):\n%s", d)
	}
}

func TestReadTrimmedFallsBackToTrimHorizon(t *testing.T) {
	f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 10)})
	s, logs := newSource(t, f, Config{Limit: 3})
	ctx := context.Background()
	r, err := s.Open(ctx, event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Retention removes records 0-5 while the reader is stalled.
	f.mu.Lock()
	f.trimmed["a"] = 6
	f.mu.Unlock()
	second, err := r.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(seqRange(0, 0, 3), seqs(first.Records)); d != "" {
		t.Fatalf("first (-want +got):\n%s", d)
	}
	if d := cmp.Diff(seqRange(0, 6, 9), seqs(second.Records)); d != "" {
		t.Fatalf("after trim (-want +got):\n%s", d)
	}
	var types_ []types.ShardIteratorType
	for _, c := range f.iterCalls {
		types_ = append(types_, c.ShardIteratorType)
	}
	if d := cmp.Diff([]types.ShardIteratorType{"TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON"}, types_); d != "" {
		t.Fatalf("iterators (-want +got):\n%s", d)
	}
	if n := logs.count("WARN", "records were lost"); n != 1 {
		t.Fatalf("%d loss warnings, want 1:\n%s", n, logs)
	}
}

func TestReadTrimmedTwiceAfterRenewal(t *testing.T) {
	// GetShardIterator grants AFTER_SEQUENCE_NUMBER, but GetRecords still
	// answers trimmed: the reader falls back to TRIM_HORIZON.
	f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 5)})
	s, logs := newSource(t, f, Config{Limit: 2})
	ctx := context.Background()
	r, _ := s.Open(ctx, event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
	if _, err := r.Read(ctx); err != nil {
		t.Fatal(err)
	}
	trimmed := &types.TrimmedDataAccessException{Message: aws.String("trimmed")}
	f.recordErrs = []error{trimmed, trimmed}
	res, err := r.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(seqRange(0, 0, 2), seqs(res.Records)); d != "" {
		t.Fatalf("records (-want +got):\n%s", d)
	}
	if n := logs.count("WARN", "records were lost"); n != 1 {
		t.Fatalf("%d loss warnings:\n%s", n, logs)
	}
}

func TestOpenTrimmedStartFallsBack(t *testing.T) {
	f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 5)})
	f.trimmed["a"] = 3
	s, logs := newSource(t, f, Config{})
	ctx := context.Background()
	r, err := s.Open(ctx, event.Shard{ID: "a"}, event.Start{Type: event.AfterSequence, Seq: seqOf(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(seqRange(0, 3, 5), seqs(res.Records)); d != "" {
		t.Fatalf("records (-want +got):\n%s", d)
	}
	if logs.count("WARN", "records were lost") != 1 {
		t.Fatalf("no loss warning:\n%s", logs)
	}
}

func TestReadBacksOffOnThrottling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 2)})
		s, logs := newSource(t, f, Config{})
		ctx := context.Background()
		r, err := s.Open(ctx, event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		f.recordErrs = []error{
			&types.LimitExceededException{Message: aws.String("slow down")},
			&types.InternalServerError{Message: aws.String("oops")},
			&smithy.GenericAPIError{Code: "ThrottlingException"},
			errors.New("dial tcp 127.0.0.1:1: connect: connection refused"),
		}
		start := time.Now()
		res, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(seqRange(0, 0, 2), seqs(res.Records)); d != "" {
			t.Fatalf("records (-want +got):\n%s", d)
		}
		if f.recordCalls != 5 {
			t.Fatalf("%d GetRecords calls, want 5", f.recordCalls)
		}
		// Exponential: each wait is at least half the previous base (the
		// jitter is ±50%), and they grow.
		var gaps []time.Duration
		for i := 1; i < len(f.recordTimes); i++ {
			gaps = append(gaps, f.recordTimes[i].Sub(f.recordTimes[i-1]))
		}
		base := retryInitial
		for i, g := range gaps {
			if g < base/2 || g > base*3/2 {
				t.Fatalf("wait %d = %s, want within %s±50%% (waits %v)", i, g, base, gaps)
			}
			base = time.Duration(float64(base) * 1.5)
		}
		if time.Since(start) == 0 {
			t.Fatal("no backoff")
		}
		if n := logs.count("WARN", "failing; retrying with backoff"); n != 1 {
			t.Fatalf("%d outage warnings, want 1:\n%s", n, logs)
		}
		if n := logs.count("INFO", "calls succeed again"); n != 1 {
			t.Fatalf("%d recovery logs, want 1:\n%s", n, logs)
		}
		// A new outage logs again.
		f.recordErrs = []error{&types.LimitExceededException{}}
		if _, err := r.Read(ctx); err != nil {
			t.Fatal(err)
		}
		if n := logs.count("WARN", "failing; retrying with backoff"); n != 2 {
			t.Fatalf("%d outage warnings, want 2", n)
		}
		// ctx ends a backoff wait.
		f.recordErrs = []error{&types.LimitExceededException{}, &types.LimitExceededException{}, &types.LimitExceededException{}}
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := r.Read(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want deadline", err)
		}
	})
}

func TestOpenRetriesThrottledIterator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 1)})
		f.iterErrs = []error{&types.LimitExceededException{}, &types.LimitExceededException{}}
		s, _ := newSource(t, f, Config{})
		r, err := s.Open(context.Background(), event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.iterCalls) != 3 {
			t.Fatalf("%d GetShardIterator calls", len(f.iterCalls))
		}
		if res, err := r.Read(context.Background()); err != nil || len(res.Records) != 1 {
			t.Fatalf("read %d, %v", len(res.Records), err)
		}
	})
}

func TestReadPermanentError(t *testing.T) {
	f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 1)})
	s, _ := newSource(t, f, Config{})
	r, _ := s.Open(context.Background(), event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
	f.recordErrs = []error{&smithy.GenericAPIError{Code: "ValidationException", Message: "Invalid ShardIterator"}}
	_, err := r.Read(context.Background())
	if err == nil || !strings.Contains(err.Error(), "shard a: get records") || !strings.Contains(err.Error(), "Invalid ShardIterator") {
		t.Fatalf("err %v", err)
	}
	if f.recordCalls != 1 {
		t.Fatalf("%d calls: a permanent error was retried", f.recordCalls)
	}
}

func TestResourceNotFound(t *testing.T) {
	t.Run("shard gone, stream there", func(t *testing.T) {
		f := newFake(fakeARN, fakeShard{id: "a"})
		s, logs := newSource(t, f, Config{})
		r, err := s.Open(context.Background(), event.Shard{ID: "expired-shard"}, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(context.Background()); !errors.Is(err, mapping.ErrShardClosed) {
			t.Fatalf("err %v, want ErrShardClosed", err)
		}
		if logs.count("WARN", "shard no longer exists") != 1 {
			t.Fatalf("logs:\n%s", logs)
		}
	})
	t.Run("stream gone while reading", func(t *testing.T) {
		f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 1)})
		s, _ := newSource(t, f, Config{})
		r, err := s.Open(context.Background(), event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.missing = true
		f.mu.Unlock()
		_, err = r.Read(context.Background())
		if !errors.Is(err, mapping.ErrSourceGone) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("err %v, want ErrSourceGone", err)
		}
	})
}

func TestRecordsEncodedForLambda(t *testing.T) {
	f := newFake(fakeARN, fakeShard{id: "a", records: fakeRecords(0, 2)})
	f.shards[0].records[1].UserIdentity = &types.Identity{Type: aws.String("Service"), PrincipalId: aws.String("dynamodb.amazonaws.com")}
	f.shards[0].records[1].AwsRegion = nil
	s, _ := newSource(t, f, Config{})
	r, _ := s.Open(context.Background(), event.Shard{ID: "a"}, event.Start{Type: event.TrimHorizon})
	res, err := r.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(event.AppendEvent(nil, res.Records), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 2 {
		t.Fatalf("%d records", len(ev.Records))
	}
	a, b := ev.Records[0], ev.Records[1]
	if a.AWSRegion != "us-east-1" || b.AWSRegion != "eu-west-1" {
		t.Fatalf("regions %q %q: want the record's, else the ARN's", a.AWSRegion, b.AWSRegion)
	}
	if a.UserIdentity != nil || b.UserIdentity == nil || b.UserIdentity.PrincipalID != "dynamodb.amazonaws.com" {
		t.Fatalf("userIdentity %+v %+v", a.UserIdentity, b.UserIdentity)
	}
	if a.EventSourceArn != fakeARN || a.EventName != "INSERT" || a.Change.Keys["pk"].String() != "k0" ||
		a.Change.NewImage["n"].Number() != "0" || a.Change.OldImage != nil || a.Change.SequenceNumber != seqOf(0, 0) {
		t.Fatalf("record %+v", a)
	}
	if res.Records[0].Key != `{"pk":{"S":"k0"}}` || res.Records[1].Key != `{"pk":{"S":"k1"}}` {
		t.Fatalf("keys %q %q", res.Records[0].Key, res.Records[1].Key)
	}
	if !res.Records[1].Arrival.Equal(time.Unix(1700000001, 0)) {
		t.Fatalf("arrival %v", res.Records[1].Arrival)
	}
}

func TestReadAfterClose(t *testing.T) {
	f := newFake(fakeARN, fakeShard{id: "a"})
	s, _ := newSource(t, f, Config{})
	r, _ := s.Open(context.Background(), event.Shard{ID: "a"}, event.Start{Type: event.Latest})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "read after close") {
		t.Fatalf("err %v", err)
	}
}
