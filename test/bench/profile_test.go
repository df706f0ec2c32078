package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
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

// processProfiler records profiles of an esmd process through its admin
// server's /debug/pprof/ (server.pprof): a CPU profile of the first
// seconds and the heap profile taken at the highest heap in use.
type processProfiler struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// profileProcess starts profiling the esmd at base into dir; Close ends it.
func profileProcess(t testing.TB, base, dir string, cpuSeconds int) *processProfiler {
	ctx, cancel := context.WithCancel(context.Background())
	p := &processProfiler{stop: cancel}
	p.wg.Go(func() {
		if b := fetch(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, cpuSeconds)); b != nil {
			_ = os.WriteFile(filepath.Join(dir, "esmd-cpu.prof"), b, 0o644)
		}
	})
	p.wg.Go(func() {
		var peak uint64
		defer func() {
			t.Logf("esmd heap profile at %.1f MiB heap in use: %s", float64(peak)/(1<<20), filepath.Join(dir, "esmd-heap.prof"))
		}()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			b := fetch(ctx, base+"/debug/pprof/heap?debug=1")
			_, v, ok := strings.Cut(string(b), "# HeapInuse = ")
			if !ok {
				continue
			}
			v, _, _ = strings.Cut(v, "\n")
			if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > peak {
				peak = n
				_ = os.WriteFile(filepath.Join(dir, "esmd-heap.prof"), b, 0o644)
			}
		}
	})
	return p
}

func (p *processProfiler) Close() { p.stop(); p.wg.Wait() }

func fetch(ctx context.Context, url string) []byte {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return b
}
