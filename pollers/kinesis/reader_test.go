package kinesis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

const testARN = "arn:aws:kinesis:us-east-1:000000000000:stream/s1"

// fakeAPI answers each call from a script: the next function queued for the
// operation. A call with nothing queued fails the test.
type fakeAPI struct {
	t  testing.TB
	mu sync.Mutex

	list    []func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error)
	iters   []func(*kinesis.GetShardIteratorInput) (*kinesis.GetShardIteratorOutput, error)
	records []func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error)

	listIn  []*kinesis.ListShardsInput
	iterIn  []*kinesis.GetShardIteratorInput
	recIn   []*kinesis.GetRecordsInput
	callLog []string
}

func pop[I, O any](f *fakeAPI, q *[]func(I) (O, error), in I, name string) (O, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callLog = append(f.callLog, name)
	if len(*q) == 0 {
		f.t.Errorf("unexpected %s call", name)
		var zero O
		return zero, errors.New("unscripted call")
	}
	fn := (*q)[0]
	*q = (*q)[1:]
	return fn(in)
}

func (f *fakeAPI) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	f.listIn = append(f.listIn, in)
	return pop(f, &f.list, in, "ListShards")
}

func (f *fakeAPI) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.iterIn = append(f.iterIn, in)
	return pop(f, &f.iters, in, "GetShardIterator")
}

func (f *fakeAPI) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.recIn = append(f.recIn, in)
	return pop(f, &f.records, in, "GetRecords")
}

func (f *fakeAPI) SubscribeToShard(context.Context, *kinesis.SubscribeToShardInput, ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	f.t.Error("unexpected SubscribeToShard")
	return nil, errors.New("unscripted call")
}

func (f *fakeAPI) iter(name string) {
	f.iters = append(f.iters, func(*kinesis.GetShardIteratorInput) (*kinesis.GetShardIteratorOutput, error) {
		return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(name)}, nil
	})
}

// recs queues a GetRecords answer with records numbered from..to-1 and the
// next iterator next ("" for none: the shard ended).
func (f *fakeAPI) recs(from, to int, behind int64, next string) {
	f.records = append(f.records, func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) {
		out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(behind)}
		for i := from; i < to; i++ {
			out.Records = append(out.Records, types.Record{
				SequenceNumber:              aws.String(strconv.Itoa(i)),
				PartitionKey:                aws.String("k" + strconv.Itoa(i)),
				Data:                        []byte("d" + strconv.Itoa(i)),
				ApproximateArrivalTimestamp: aws.Time(time.Unix(1700000000, 0)),
			})
		}
		if next != "" {
			out.NextShardIterator = aws.String(next)
		}
		return out, nil
	})
}

func (f *fakeAPI) recErr(err error) {
	f.records = append(f.records, func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) { return nil, err })
}

func (f *fakeAPI) iterErr(err error) {
	f.iters = append(f.iters, func(*kinesis.GetShardIteratorInput) (*kinesis.GetShardIteratorOutput, error) { return nil, err })
}

// levels counts log records by level.
type levels struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[slog.Level]int{}
	}
	l.n[r.Level]++
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }
func (l *levels) count(lv slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[lv]
}

func newTestSource(t *testing.T, api *fakeAPI, h slog.Handler) *Source {
	t.Helper()
	return newTestSourceGap(t, api, h, -1)
}

func newTestSourceGap(t *testing.T, api *fakeAPI, h slog.Handler, gap time.Duration) *Source {
	t.Helper()
	if h == nil {
		h = slog.DiscardHandler
	}
	s, err := New(api, Config{StreamARN: testARN, PollInterval: time.Second, Logger: slog.New(h), MinPollGap: gap,
		minBackoff: 100 * time.Millisecond, maxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seqs(res mapping.ReadResult) []string {
	var out []string
	for _, r := range res.Records {
		out = append(out, r.Seq)
	}
	return out
}

func serverError(code int) error {
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "GetRecords", Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
		Err:      &smithy.GenericAPIError{Code: "UnknownError", Message: "boom"},
	}}
}

func TestReadPacing(t *testing.T) {
	tests := []struct {
		name  string
		gap   time.Duration
		first func(f *fakeAPI)
		wait  time.Duration // before the second GetRecords
	}{
		{"after records at once", -1, func(f *fakeAPI) { f.recs(1, 3, 0, "i2") }, 0},
		{"behind at once", -1, func(f *fakeAPI) { f.recs(0, 0, 500, "i2") }, 0},
		{"idle waits the interval", -1, func(f *fakeAPI) { f.recs(0, 0, 0, "i2") }, time.Second},
		{"after records within the gap", 0, func(f *fakeAPI) { f.recs(1, 3, 0, "i2") }, DefaultMinPollGap},
		{"behind within the gap", 300 * time.Millisecond, func(f *fakeAPI) { f.recs(0, 0, 500, "i2") }, 300 * time.Millisecond},
		{"idle with the gap", 0, func(f *fakeAPI) { f.recs(0, 0, 0, "i2") }, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeAPI{t: t}
				f.iter("i1")
				tt.first(f)
				f.recs(5, 6, 0, "i3")
				s := newTestSourceGap(t, f, nil, tt.gap)
				r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				t0 := time.Now()
				if _, err := r.Read(t.Context()); err != nil {
					t.Fatal(err)
				}
				if d := time.Since(t0); d != 0 {
					t.Errorf("first read waited %v", d)
				}
				t1 := time.Now()
				res, err := r.Read(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if d := time.Since(t1); d != tt.wait {
					t.Errorf("second read waited %v, want %v", d, tt.wait)
				}
				if diff := cmp.Diff([]string{"5"}, seqs(res)); diff != "" {
					t.Errorf("records (-want +got):\n%s", diff)
				}
				if got := aws.ToString(f.recIn[1].ShardIterator); got != "i2" {
					t.Errorf("second GetRecords used iterator %q, want i2", got)
				}
				if got := aws.ToInt32(f.recIn[0].Limit); got != DefaultLimit {
					t.Errorf("Limit %d, want %d", got, DefaultLimit)
				}
			})
		})
	}
}

func TestReadEmptyPollIsAResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{t: t}
		f.iter("i1")
		f.recs(0, 0, 0, "i2")
		s := newTestSource(t, f, nil)
		r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.Latest})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Read(t.Context())
		if err != nil || len(res.Records) != 0 || res.MillisBehind != 0 {
			t.Fatalf("Read = %+v, %v; want an empty result with MillisBehind 0", res, err)
		}
	})
}

func TestReadIdleWaitEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{t: t}
		f.iter("i1")
		f.recs(0, 0, 0, "i2")
		s := newTestSource(t, f, nil)
		r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.Latest})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if _, err := r.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read = %v, want DeadlineExceeded", err)
		}
		if len(f.recIn) != 1 {
			t.Errorf("%d GetRecords calls, want 1", len(f.recIn))
		}
	})
}

func TestReadRetriesWithBackoff(t *testing.T) {
	tests := []struct {
		name string
		err  error
		// renew: the error makes the reader get a new iterator
		renew bool
	}{
		{"provisioned throughput", &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}, false},
		{"limit exceeded", &types.LimitExceededException{}, false},
		{"kms throttling", &types.KMSThrottlingException{}, false},
		{"network", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: io.ErrUnexpectedEOF}}, false},
		{"server 500", serverError(500), true},
		{"server 503", serverError(503), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeAPI{t: t}
				f.iter("i1")
				f.recs(1, 2, 0, "i2")
				for range 4 {
					f.recErr(tt.err)
					if tt.renew {
						f.iter("r")
					}
				}
				f.recs(2, 4, 0, "i3")
				h := &levels{}
				s := newTestSource(t, f, h)
				r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Read(t.Context()); err != nil {
					t.Fatal(err)
				}
				t0 := time.Now()
				res, err := r.Read(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]string{"2", "3"}, seqs(res)); diff != "" {
					t.Errorf("records (-want +got):\n%s", diff)
				}
				// Four waits of 100, 150, 225, 337.5 ms, each ±50%.
				if d := time.Since(t0); d < 400*time.Millisecond || d > 1300*time.Millisecond {
					t.Errorf("retries took %v, want about 800ms of backoff", d)
				}
				if got := h.count(slog.LevelWarn); got != 1 {
					t.Errorf("%d warnings, want 1 per outage", got)
				}
				if got := h.count(slog.LevelInfo); got != 1 {
					t.Errorf("%d infos, want 1 for the recovery", got)
				}
				if tt.renew {
					if len(f.iterIn) != 5 {
						t.Fatalf("%d GetShardIterator calls, want 5", len(f.iterIn))
					}
					last := f.iterIn[4]
					if last.ShardIteratorType != types.ShardIteratorTypeAfterSequenceNumber || aws.ToString(last.StartingSequenceNumber) != "1" {
						t.Errorf("renewed at %s %s, want AFTER_SEQUENCE_NUMBER 1", last.ShardIteratorType, aws.ToString(last.StartingSequenceNumber))
					}
				} else if got := aws.ToString(f.recIn[len(f.recIn)-1].ShardIterator); got != "i2" {
					t.Errorf("retried with iterator %q, want the same i2", got)
				}
			})
		})
	}
}

func TestReadBackoffIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{t: t}
		f.iter("i1")
		for range 30 {
			f.recErr(&types.ProvisionedThroughputExceededException{})
		}
		f.recs(0, 1, 0, "i2")
		s := newTestSource(t, f, nil)
		r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		var gaps []time.Duration
		last := time.Now()
		for i := range 30 {
			f.records[i] = func(*kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) {
				gaps = append(gaps, time.Since(last))
				last = time.Now()
				return nil, &types.ProvisionedThroughputExceededException{}
			}
		}
		if _, err := r.Read(t.Context()); err != nil {
			t.Fatal(err)
		}
		for i, g := range gaps {
			if g > 3*time.Second { // maxBackoff 2s plus 50% jitter
				t.Errorf("gap %d was %v, above the cap", i, g)
			}
		}
		if gaps[len(gaps)-1] < time.Second {
			t.Errorf("last gap %v: backoff did not grow toward its cap", gaps[len(gaps)-1])
		}
	})
}

func TestReadRenewsExpiredIterator(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		start    event.Start
		before   int // records returned before the expiry
		wantType types.ShardIteratorType
		wantSeq  string
		wantTS   *time.Time
	}{
		{"after last record", event.Start{Type: event.TrimHorizon}, 3, types.ShardIteratorTypeAfterSequenceNumber, "2", nil},
		{"from trim horizon", event.Start{Type: event.TrimHorizon}, 0, types.ShardIteratorTypeTrimHorizon, "", nil},
		{"from timestamp", event.Start{Type: event.AtTimestamp, Timestamp: ts}, 0, types.ShardIteratorTypeAtTimestamp, "", &ts},
		{"from sequence", event.Start{Type: event.AtSequence, Seq: "77"}, 0, types.ShardIteratorTypeAtSequenceNumber, "77", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeAPI{t: t}
				f.iter("i1")
				if tt.before > 0 {
					f.recs(0, tt.before, 0, "i2")
				}
				f.recErr(&smithy.OperationError{Err: &types.ExpiredIteratorException{}})
				f.iter("fresh")
				f.recs(10, 11, 0, "i3")
				s := newTestSource(t, f, nil)
				r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, tt.start)
				if err != nil {
					t.Fatal(err)
				}
				if tt.before > 0 {
					if _, err := r.Read(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				t0 := time.Now()
				res, err := r.Read(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if d := time.Since(t0); d != 0 {
					t.Errorf("renewal waited %v, want none", d)
				}
				if diff := cmp.Diff([]string{"10"}, seqs(res)); diff != "" {
					t.Errorf("records (-want +got):\n%s", diff)
				}
				in := f.iterIn[len(f.iterIn)-1]
				if in.ShardIteratorType != tt.wantType || aws.ToString(in.StartingSequenceNumber) != tt.wantSeq {
					t.Errorf("renewed at %s %q, want %s %q", in.ShardIteratorType, aws.ToString(in.StartingSequenceNumber), tt.wantType, tt.wantSeq)
				}
				if tt.wantTS != nil && !aws.ToTime(in.Timestamp).Equal(*tt.wantTS) {
					t.Errorf("renewed at timestamp %v, want %v", in.Timestamp, tt.wantTS)
				}
				if got := aws.ToString(f.recIn[len(f.recIn)-1].ShardIterator); got != "fresh" {
					t.Errorf("read with iterator %q, want fresh", got)
				}
			})
		})
	}
}

func TestReadShardEnd(t *testing.T) {
	tests := []struct {
		name     string
		last     int // records in the final page
		wantRead []string
	}{
		{"last page with records", 2, []string{"0", "1"}},
		{"empty last page", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeAPI{t: t}
				f.iter("i1")
				f.recs(0, tt.last, 0, "")
				s := newTestSource(t, f, nil)
				r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0", Closed: true}, event.Start{Type: event.TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				res, err := r.Read(t.Context())
				if tt.last > 0 {
					if err != nil {
						t.Fatalf("Read = %v; want the last records first", err)
					}
					if diff := cmp.Diff(tt.wantRead, seqs(res)); diff != "" {
						t.Errorf("records (-want +got):\n%s", diff)
					}
					res, err = r.Read(t.Context())
				}
				if !errors.Is(err, mapping.ErrShardClosed) || len(res.Records) != 0 {
					t.Fatalf("Read = %v, %v; want ErrShardClosed", res, err)
				}
				if _, err := r.Read(t.Context()); !errors.Is(err, mapping.ErrShardClosed) {
					t.Errorf("Read after the end = %v; want ErrShardClosed again", err)
				}
				if len(f.recIn) != 1 {
					t.Errorf("%d GetRecords calls, want 1", len(f.recIn))
				}
			})
		})
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		gone bool
	}{
		{"stream deleted", &smithy.OperationError{Err: &types.ResourceNotFoundException{}}, true},
		{"access denied", &smithy.OperationError{Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 400}},
			Err:      &smithy.GenericAPIError{Code: "AccessDeniedException"}}}, false},
		{"kms disabled", &types.KMSDisabledException{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAPI{t: t}
			f.iter("i1")
			f.recErr(tt.err)
			s := newTestSource(t, f, nil)
			r, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.TrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Read(t.Context())
			if !errors.Is(err, tt.err) {
				t.Errorf("Read = %v; want it to wrap %v", err, tt.err)
			}
			if errors.Is(err, mapping.ErrSourceGone) != tt.gone {
				t.Errorf("Read = %v; ErrSourceGone %v, want %v", err, !tt.gone, tt.gone)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		start    event.Start
		wantType types.ShardIteratorType
		wantSeq  string
		wantTS   bool
	}{
		{event.Start{Type: event.TrimHorizon}, types.ShardIteratorTypeTrimHorizon, "", false},
		{event.Start{Type: event.Latest}, types.ShardIteratorTypeLatest, "", false},
		{event.Start{Type: event.AtTimestamp, Timestamp: ts}, types.ShardIteratorTypeAtTimestamp, "", true},
		{event.Start{Type: event.AfterSequence, Seq: "42"}, types.ShardIteratorTypeAfterSequenceNumber, "42", false},
		{event.Start{Type: event.AtSequence, Seq: "42"}, types.ShardIteratorTypeAtSequenceNumber, "42", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.start.Type), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeAPI{t: t}
				f.iterErr(&types.ProvisionedThroughputExceededException{})
				f.iter("i1")
				s := newTestSource(t, f, nil)
				if _, err := s.Open(t.Context(), event.Shard{ID: "shardId-7"}, tt.start); err != nil {
					t.Fatal(err)
				}
				in := f.iterIn[1]
				if aws.ToString(in.StreamName) != "s1" || in.StreamARN != nil || aws.ToString(in.ShardId) != "shardId-7" {
					t.Errorf("addressed stream %q / ARN %v / shard %q", aws.ToString(in.StreamName), in.StreamARN, aws.ToString(in.ShardId))
				}
				if in.ShardIteratorType != tt.wantType || aws.ToString(in.StartingSequenceNumber) != tt.wantSeq {
					t.Errorf("got %s %q, want %s %q", in.ShardIteratorType, aws.ToString(in.StartingSequenceNumber), tt.wantType, tt.wantSeq)
				}
				if tt.wantTS != (in.Timestamp != nil) || (tt.wantTS && !in.Timestamp.Equal(ts)) {
					t.Errorf("timestamp %v", in.Timestamp)
				}
			})
		})
	}
	t.Run("bad starts", func(t *testing.T) {
		s := newTestSource(t, &fakeAPI{t: t}, nil)
		for _, st := range []event.Start{{}, {Type: "SOMEWHERE"}, {Type: event.AtTimestamp}, {Type: event.AfterSequence}} {
			if _, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, st); err == nil {
				t.Errorf("Open(%+v) succeeded", st)
			}
		}
	})
	t.Run("stream gone", func(t *testing.T) {
		f := &fakeAPI{t: t}
		f.iterErr(&types.ResourceNotFoundException{})
		s := newTestSource(t, f, nil)
		if _, err := s.Open(t.Context(), event.Shard{ID: "shardId-0"}, event.Start{Type: event.Latest}); !errors.Is(err, mapping.ErrSourceGone) {
			t.Errorf("Open = %v, want ErrSourceGone", err)
		}
	})
}

func TestShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAPI{t: t}
		f.list = append(f.list,
			func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
				return nil, &types.LimitExceededException{}
			},
			func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
				return &kinesis.ListShardsOutput{NextToken: aws.String("page2"), Shards: []types.Shard{
					{ShardId: aws.String("shardId-0"), SequenceNumberRange: &types.SequenceNumberRange{
						StartingSequenceNumber: aws.String("1"), EndingSequenceNumber: aws.String("9223372036854775807")}},
					{ShardId: aws.String("shardId-1"), SequenceNumberRange: &types.SequenceNumberRange{
						StartingSequenceNumber: aws.String("1"), EndingSequenceNumber: aws.String("99")}},
				}}, nil
			},
			func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
				return &kinesis.ListShardsOutput{Shards: []types.Shard{
					{ShardId: aws.String("shardId-2"), ParentShardId: aws.String("shardId-0"),
						SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("100")}},
					{ShardId: aws.String("shardId-3"), ParentShardId: aws.String("shardId-0"), AdjacentParentShardId: aws.String("shardId-1"),
						SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("100")}},
				}}, nil
			})
		s := newTestSource(t, f, nil)
		got, err := s.Shards(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := []event.Shard{
			{ID: "shardId-0", Closed: true},
			{ID: "shardId-1", Closed: true},
			{ID: "shardId-2", Parents: []string{"shardId-0"}},
			{ID: "shardId-3", Parents: []string{"shardId-0", "shardId-1"}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("shards (-want +got):\n%s", diff)
		}
		if aws.ToString(f.listIn[1].StreamName) != "s1" || f.listIn[1].NextToken != nil {
			t.Errorf("first page asked %+v", f.listIn[1])
		}
		if f.listIn[2].StreamName != nil || aws.ToString(f.listIn[2].NextToken) != "page2" {
			t.Errorf("second page asked %+v", f.listIn[2])
		}
	})
	t.Run("gone", func(t *testing.T) {
		f := &fakeAPI{t: t}
		f.list = append(f.list, func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
			return nil, &types.ResourceNotFoundException{}
		})
		if _, err := newTestSource(t, f, nil).Shards(t.Context()); !errors.Is(err, mapping.ErrSourceGone) {
			t.Errorf("Shards = %v, want ErrSourceGone", err)
		}
	})
}

func TestNew(t *testing.T) {
	tests := []struct {
		cfg     Config
		stream  string
		wantErr bool
	}{
		{Config{StreamARN: testARN}, "s1", false},
		{Config{ConsumerARN: testARN + "/consumer/c1:1700000000"}, "s1", false},
		{Config{StreamARN: testARN, ConsumerARN: testARN + "/consumer/c1:1700000000"}, "s1", false},
		{Config{StreamARN: "arn:aws:kinesis:us-east-1:1:stream/other", ConsumerARN: testARN + "/consumer/c1:1"}, "", true},
		{Config{StreamARN: "arn:aws:sqs:us-east-1:1:q"}, "", true},
		{Config{StreamARN: "s1"}, "", true},
		{Config{ConsumerARN: "arn:aws:kinesis:us-east-1:1:stream/s1"}, "", true},
		{Config{StreamARN: testARN, Limit: 10001}, "", true},
		{Config{}, "", true},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			s, err := New(&fakeAPI{t: t}, tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && s.stream != tt.stream {
				t.Errorf("stream %q, want %q", s.stream, tt.stream)
			}
		})
	}
}

// TestReaderAdaptsLimit drives a reader through GetRecords calls that take
// a given time, each followed by a consumer that comes back after a given
// time, and checks the Limit of each call.
func TestReaderAdaptsLimit(t *testing.T) {
	const ms = time.Millisecond
	type step struct {
		want  int32         // the call's Limit
		took  time.Duration // how long the call takes
		short bool          // it returns fewer records than its Limit
		away  time.Duration // then the consumer comes back after this
		// why the next Limit is what it is
		why string
	}
	tests := []struct {
		name            string
		minLimit, limit int32
		steps           []step
	}{
		{"grows while it pays, shrinks for a slow consumer", 3000, 10000, []step{
			{want: 3000, took: 100 * ms, why: "full, consumer back at once: grow by half"},
			{want: 4500, took: 150 * ms, why: "within a turn: 50% more records a second, grow"},
			{want: 6750, took: 200 * ms, why: "grow, up to Limit"},
			{want: 10000, took: 300 * ms, why: "33,333 records/s against 33,750: growing stopped paying"},
			{want: 10000, took: 10 * ms, why: "settled: hold"},
			{want: 10000, away: 300 * ms, why: "the consumer kept the reader waiting: shrink"},
			{want: 7500, took: 10 * ms, away: 100 * ms, why: "consumer neither slow nor at once: hold"},
			{want: 7500, away: time.Second, why: "slow consumer"},
			{want: 5625, away: time.Second, why: "slow consumer"},
			{want: 4218, away: time.Second, why: "slow consumer"},
			{want: 3163, away: time.Second, why: "slow consumer, down to MinLimit"},
			{want: 3000, short: true, why: "not full: no growth"},
			{want: 3000},
		}},
		{"a distant server: calls take 450 ms whatever their size", 100, 10000, []step{
			{want: 1000, took: 450 * ms},
			{want: 1500, took: 450 * ms},
			{want: 2250, took: 450 * ms},
			{want: 3375, took: 450 * ms},
			{want: 5062, took: 450 * ms},
			{want: 7593, took: 450 * ms},
			{want: 10000, took: 450 * ms},
			{want: 10000},
		}},
		{"grows again from a Limit of 1", 1, 4, []step{
			{want: 4, away: time.Second},
			{want: 3, away: time.Second},
			{want: 2, away: time.Second},
			{want: 1, took: 10 * ms},
			{want: 2, took: 10 * ms},
			{want: 3, took: 10 * ms},
			{want: 4},
		}},
		{"fixed without MinLimit", 0, 0, []step{
			{want: 10000, took: 10 * ms},
			{want: 10000, took: time.Second, away: time.Second},
			{want: 10000},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := &fakeAPI{t: t}
				api.iter("it")
				next := 0
				for _, st := range tc.steps {
					api.records = append(api.records, func(in *kinesis.GetRecordsInput) (*kinesis.GetRecordsOutput, error) {
						time.Sleep(st.took)
						n := int(aws.ToInt32(in.Limit))
						if st.short {
							n /= 2
						}
						out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0), NextShardIterator: aws.String("it")}
						for range n {
							next++
							out.Records = append(out.Records, types.Record{SequenceNumber: aws.String(strconv.Itoa(next)),
								PartitionKey: aws.String("k"), Data: []byte("d"), ApproximateArrivalTimestamp: aws.Time(time.Unix(1700000000, 0))})
						}
						return out, nil
					})
				}
				s, err := New(api, Config{StreamARN: testARN, PollInterval: time.Second, MinPollGap: -1, MinLimit: tc.minLimit, Limit: tc.limit})
				if err != nil {
					t.Fatal(err)
				}
				r, err := s.Open(t.Context(), event.Shard{ID: "shardId-000000000000"}, event.Start{Type: event.TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				for i, st := range tc.steps {
					if _, err := r.Read(t.Context()); err != nil {
						t.Fatalf("read %d: %v", i, err)
					}
					if got := aws.ToInt32(api.recIn[i].Limit); got != st.want {
						t.Errorf("read %d: Limit %d, want %d (after: %s)", i, got, st.want, tc.steps[max(i-1, 0)].why)
					}
					time.Sleep(st.away)
				}
			})
		})
	}
}
