package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/invoke/httpfunc"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/kinesis"
	"github.com/esmd-dev/esmd/test/fakes"
	"github.com/esmd-dev/esmd/test/servers"
)

// TestKinesisProfile runs the Kinesis target's pipeline in process and
// writes CPU and peak-heap profiles to ESMD_BENCH_PROFILE (a folder), to
// show where the time and memory of TestKinesisThroughput go. The Limit of
// GetRecords can be set with ESMD_BENCH_LIMIT.
func TestKinesisProfile(t *testing.T) {
	dir := os.Getenv("ESMD_BENCH_PROFILE")
	if dir == "" {
		t.Skip("set ESMD_BENCH_PROFILE=DIR to profile the Kinesis pipeline")
	}
	ep := servers.Kinesalite(t)
	c := servers.KinesisClient(ep)
	name := servers.UniqueName("profile")
	arn := servers.CreateStream(t, ep, name, kinesisShards)
	fill(t, c, name, kinesisRecords, 100)
	s := startSink(t)

	limit, _ := strconv.Atoi(os.Getenv("ESMD_BENCH_LIMIT"))
	src, err := kinesis.New(c, kinesis.Config{StreamARN: arn, PollInterval: 200 * time.Millisecond, Limit: int32(limit),
		Encoder: event.NewKinesisEncoder("us-east-1", arn, "arn:aws:iam::000000000000:role/esmd")})
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := httpfunc.New(httpfunc.Config{URL: s.URL})
	r, err := mapping.NewRunner(mapping.Config{Name: "p", Kind: event.Kinesis, SourceARN: arn, BatchSize: 100, ParallelizationFactor: 1,
		MaxRecordAge: -1, MaxRetryAttempts: -1, ProgressInterval: -1, StartingPosition: event.Start{Type: event.TrimHorizon}},
		mapping.Deps{Source: src, Invoker: inv, Checkpointer: fakes.NewCheckpoints()})
	if err != nil {
		t.Fatal(err)
	}
	cpu, _ := os.Create(filepath.Join(dir, "kinesis-cpu.prof"))
	defer cpu.Close()
	_ = pprof.StartCPUProfile(cpu)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var peak uint64
	before, _ := s.count(t)
	start := time.Now()
	for {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > peak {
			peak = ms.HeapInuse
			f, _ := os.Create(filepath.Join(dir, "kinesis-heap.prof"))
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
		if n, _ := s.count(t); n-before >= kinesisRecords {
			break
		}
		if time.Since(start) > 3*time.Minute {
			t.Fatal("not every record was delivered within 3 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	pprof.StopCPUProfile()
	cancel()
	<-done
	t.Logf("%d records in %s (%.0f records/s); peak heap in use %.1f MiB", kinesisRecords, elapsed, kinesisRecords/elapsed.Seconds(), float64(peak)/(1<<20))
}
