package mapping_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/fakes"
)

// benchSource serves pre-encoded records from memory, 1,000 per read, and
// closes each shard after its last record, so that a run ends by itself.
type benchSource struct {
	shards [][]event.Record
}

func (s *benchSource) Shards(ctx context.Context) ([]event.Shard, error) {
	out := make([]event.Shard, len(s.shards))
	for i := range s.shards {
		out[i] = event.Shard{ID: fmt.Sprintf("shard-%d", i), Closed: true}
	}
	return out, nil
}

func (s *benchSource) Open(ctx context.Context, sh event.Shard, start event.Start) (mapping.ShardReader, error) {
	var i int
	fmt.Sscanf(sh.ID, "shard-%d", &i)
	return &benchReader{recs: s.shards[i]}, nil
}

type benchReader struct {
	recs []event.Record
	pos  int
}

func (r *benchReader) Read(ctx context.Context) (mapping.ReadResult, error) {
	if r.pos == len(r.recs) {
		return mapping.ReadResult{}, mapping.ErrShardClosed
	}
	end := min(r.pos+1000, len(r.recs))
	out := r.recs[r.pos:end]
	r.pos = end
	return mapping.ReadResult{Records: out, MillisBehind: -1}, nil
}

func (r *benchReader) Close() error { return nil }

type noopInvoker struct{ n atomic.Int64 }

func (f *noopInvoker) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	f.n.Add(1)
	return &mapping.Response{StatusCode: 200}, nil
}

// BenchmarkEngine pushes b.N records of 100 bytes through the engine (4
// shards, BatchSize 100) into a function that does nothing, and reports
// allocations and time per record. Encoding happens before the timer: it
// belongs to the source.
func BenchmarkEngine(b *testing.B) {
	for _, pf := range []int{1, 4} {
		b.Run(fmt.Sprintf("P%d", pf), func(b *testing.B) {
			enc := event.NewKinesisEncoder("us-east-1", "arn:aws:kinesis:us-east-1:000000000000:stream/b", "arn:aws:iam::000000000000:role/r")
			data := make([]byte, 100)
			src := &benchSource{shards: make([][]event.Record, 4)}
			now := time.Now()
			for i := 0; i < b.N; i++ {
				sh := i % 4
				src.shards[sh] = append(src.shards[sh], enc.Encode(fmt.Sprintf("shard-%d", sh), fmt.Sprintf("k%d", i%1000), fmt.Sprintf("%020d", i), data, now))
			}
			inv := &noopInvoker{}
			cfg := baseConfig()
			cfg.BatchSize = 100
			cfg.ParallelizationFactor = pf
			cfg.ProgressInterval = -1
			r, err := mapping.NewRunner(cfg, mapping.Deps{Source: src, Invoker: inv, Checkpointer: fakes.NewCheckpoints()})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			for r.Stats().InvokedEvents.Load() < int64(b.N) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			cancel()
			<-done
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
