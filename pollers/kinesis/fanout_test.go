package kinesis

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// fakeStream is a scripted subscription: it sends its events, then ends
// with err.
type fakeStream struct {
	ch     chan types.SubscribeToShardEventStream
	err    error
	closed bool
}

func newFakeStream(err error, evs ...types.SubscribeToShardEvent) *fakeStream {
	s := &fakeStream{ch: make(chan types.SubscribeToShardEventStream, len(evs)), err: err}
	for _, ev := range evs {
		s.ch <- &types.SubscribeToShardEventStreamMemberSubscribeToShardEvent{Value: ev}
	}
	close(s.ch)
	return s
}

func (s *fakeStream) Events() <-chan types.SubscribeToShardEventStream { return s.ch }
func (s *fakeStream) Close() error                                     { s.closed = true; return nil }
func (s *fakeStream) Err() error                                       { return s.err }

// pushEvent is an event with records numbered from..to-1 and continuation
// cont ("" for the shard's last event).
func pushEvent(from, to int, cont string) types.SubscribeToShardEvent {
	ev := types.SubscribeToShardEvent{MillisBehindLatest: aws.Int64(0)}
	for i := from; i < to; i++ {
		ev.Records = append(ev.Records, types.Record{
			SequenceNumber:              aws.String(strconv.Itoa(i)),
			PartitionKey:                aws.String("k"),
			Data:                        []byte("x"),
			ApproximateArrivalTimestamp: aws.Time(time.Unix(1700000000, 0)),
		})
	}
	if cont != "" {
		ev.ContinuationSequenceNumber = aws.String(cont)
	} else {
		ev.ChildShards = []types.ChildShard{{ShardId: aws.String("shardId-9"), ParentShards: []string{"shardId-0"}}}
	}
	return ev
}

type subscription struct {
	stream eventStream
	err    error
}

func newFanOutSource(t *testing.T, subs []subscription, h slog.Handler) (*Source, *[]*kinesis.SubscribeToShardInput) {
	t.Helper()
	if h == nil {
		h = slog.DiscardHandler
	}
	s, err := New(&fakeAPI{t: t}, Config{ConsumerARN: testARN + "/consumer/c1:1700000000", Logger: slog.New(h),
		minBackoff: 100 * time.Millisecond, maxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var ins []*kinesis.SubscribeToShardInput
	s.subscribe = func(ctx context.Context, in *kinesis.SubscribeToShardInput) (eventStream, error) {
		ins = append(ins, in)
		if len(subs) == 0 {
			t.Error("unexpected SubscribeToShard")
			return nil, errors.New("unscripted")
		}
		sub := subs[0]
		subs = subs[1:]
		return sub.stream, sub.err
	}
	return s, &ins
}

func TestFanOutResubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s1 := newFakeStream(nil, pushEvent(1, 3, "2"), pushEvent(0, 0, "2"))
		s2 := newFakeStream(&types.InternalFailureException{}, pushEvent(2, 4, "3"))
		s3 := newFakeStream(nil, pushEvent(4, 5, ""))
		h := &levels{}
		src, ins := newFanOutSource(t, []subscription{
			{err: &types.ResourceInUseException{}},
			{stream: s1},
			{stream: s2},
			{stream: s3},
		}, h)
		ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		r, err := src.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.AtTimestamp, Timestamp: ts})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var got [][]string
		for {
			res, err := r.Read(t.Context())
			if errors.Is(err, mapping.ErrShardClosed) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, seqs(res))
		}
		// The duplicate "2" of the second subscription is dropped.
		want := [][]string{{"1", "2"}, nil, {"3"}, {"4"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("reads (-want +got):\n%s", diff)
		}
		if len(*ins) != 4 {
			t.Fatalf("%d subscriptions, want 4", len(*ins))
		}
		type pos struct {
			Type types.ShardIteratorType
			Seq  string
			TS   time.Time
		}
		var positions []pos
		for _, in := range *ins {
			if aws.ToString(in.ConsumerARN) != testARN+"/consumer/c1:1700000000" || aws.ToString(in.ShardId) != "shardId-0" {
				t.Errorf("subscribed %v to %v", aws.ToString(in.ConsumerARN), aws.ToString(in.ShardId))
			}
			p := in.StartingPosition
			positions = append(positions, pos{p.Type, aws.ToString(p.SequenceNumber), aws.ToTime(p.Timestamp)})
		}
		wantPos := []pos{
			{types.ShardIteratorTypeAtTimestamp, "", ts},
			{types.ShardIteratorTypeAtTimestamp, "", ts},
			{types.ShardIteratorTypeAfterSequenceNumber, "2", time.Time{}},
			{types.ShardIteratorTypeAfterSequenceNumber, "3", time.Time{}},
		}
		if diff := cmp.Diff(wantPos, positions); diff != "" {
			t.Errorf("starting positions (-want +got):\n%s", diff)
		}
		for i, s := range []*fakeStream{s1, s2, s3} {
			if !s.closed {
				t.Errorf("subscription %d not closed", i+1)
			}
		}
		// Two outages (ResourceInUse, then the stream error), each warned once.
		if got := h.count(slog.LevelWarn); got != 2 {
			t.Errorf("%d warnings, want 2", got)
		}
		if _, err := r.Read(t.Context()); !errors.Is(err, mapping.ErrShardClosed) {
			t.Errorf("Read after the end = %v, want ErrShardClosed", err)
		}
	})
}

// TestFanOutLatestResubscribes: a subscription at LATEST that fails
// before its first event is taken again at the time the shard was first
// opened (AT_TIMESTAMP), not at a new LATEST that would skip what was put
// in between.
func TestFanOutLatestResubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, ins := newFanOutSource(t, []subscription{
			{stream: newFakeStream(&types.InternalFailureException{})},
			{stream: newFakeStream(nil, pushEvent(1, 2, ""))},
		}, nil)
		r, err := src.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.Latest})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for {
			if _, err := r.Read(t.Context()); errors.Is(err, mapping.ErrShardClosed) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		pinned, _ := src.pinLatest("shardId-0")
		if len(*ins) != 2 {
			t.Fatalf("%d subscriptions, want 2", len(*ins))
		}
		first, second := (*ins)[0].StartingPosition, (*ins)[1].StartingPosition
		if first.Type != types.ShardIteratorTypeLatest {
			t.Errorf("first subscription at %s, want LATEST", first.Type)
		}
		if second.Type != types.ShardIteratorTypeAtTimestamp || !aws.ToTime(second.Timestamp).Equal(pinned) {
			t.Errorf("second subscription at %s %v, want AT_TIMESTAMP %v", second.Type, aws.ToTime(second.Timestamp), pinned)
		}
	})
}

func TestFanOutErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		gone bool
	}{
		{"consumer gone", &types.ResourceNotFoundException{}, true},
		{"invalid argument", &types.InvalidArgumentException{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, _ := newFanOutSource(t, []subscription{{stream: newFakeStream(tt.err)}}, nil)
			r, err := src.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.Latest})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Read(t.Context())
			if !errors.Is(err, tt.err) || errors.Is(err, mapping.ErrSourceGone) != tt.gone {
				t.Errorf("Read = %v; want it to wrap %v, gone %v", err, tt.err, tt.gone)
			}
		})
	}
}

func TestFanOutReadOutlivesContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan types.SubscribeToShardEventStream)
		stream := &chanStream{ch: ch}
		src, ins := newFanOutSource(t, []subscription{{stream: stream}}, nil)
		r, err := src.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := r.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read = %v, want DeadlineExceeded", err)
		}
		go func() {
			ch <- &types.SubscribeToShardEventStreamMemberSubscribeToShardEvent{Value: pushEvent(7, 8, "7")}
		}()
		res, err := r.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"7"}, seqs(res)); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
		if len(*ins) != 1 {
			t.Errorf("%d subscriptions, want the first one kept", len(*ins))
		}
		if err := r.Close(); err != nil || !stream.closed {
			t.Errorf("Close = %v, stream closed %v", err, stream.closed)
		}
	})
}

type chanStream struct {
	ch     chan types.SubscribeToShardEventStream
	closed bool
}

func (s *chanStream) Events() <-chan types.SubscribeToShardEventStream { return s.ch }
func (s *chanStream) Close() error                                     { s.closed = true; return nil }
func (s *chanStream) Err() error                                       { return nil }

func TestFanOutReadsClosedShardWithGetRecords(t *testing.T) {
	f := &fakeAPI{t: t}
	f.iter("i1")
	f.recs(0, 2, 0, "")
	s, err := New(f, Config{ConsumerARN: testARN + "/consumer/c1:1700000000"})
	if err != nil {
		t.Fatal(err)
	}
	s.subscribe = func(context.Context, *kinesis.SubscribeToShardInput) (eventStream, error) {
		t.Error("subscribed to a closed shard")
		return nil, errors.New("unexpected")
	}
	r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0", Closed: true}, event.Start{Type: event.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Read(t.Context())
	if err != nil || !slices.Equal(seqs(res), []string{"0", "1"}) {
		t.Fatalf("Read = %v, %v; want records 0 and 1", seqs(res), err)
	}
	if _, err := r.Read(t.Context()); !errors.Is(err, mapping.ErrShardClosed) {
		t.Errorf("Read = %v, want ErrShardClosed", err)
	}
	if got := aws.ToString(f.iterIn[0].StreamName); got != "s1" {
		t.Errorf("stream name %q, want s1 from the consumer ARN", got)
	}
}
