package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/invoke/httpfunc"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
	"github.com/esmd-dev/esmd/test/fakes"
)

// engineRecords is how many records one engine run moves: 4 shards of
// 100-byte records in batches of 100.
const (
	engineRecords = 400_000
	engineShards  = 4
)

func engineSpec() generator.Spec {
	return generator.Spec{Name: "engine", Shards: engineShards, Keys: 1000, Size: 100, Count: engineRecords, Seed: 1}
}

// answerAtOnce is a function that answers every event with {} in process,
// and counts the events it was sent.
type answerAtOnce struct{ events atomic.Int64 }

func (f *answerAtOnce) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	if !bytes.HasPrefix(req.Payload, []byte(`{"Records":[{"kinesis":`)) || !bytes.HasSuffix(req.Payload, []byte("}]}")) {
		return nil, fmt.Errorf("not a Kinesis event: %.80s", req.Payload)
	}
	f.events.Add(1)
	return &mapping.Response{Body: []byte("{}"), StatusCode: 200}, nil
}

// BenchmarkEngineOwn is the engine target's engine without HTTP: the same
// generated records, batches and checkpoints as BenchmarkEngine, invoking a
// function that answers in process. It is the engine's own CPU per record
// (generating, batching, building events, tracking checkpoints), with no
// sockets or sink to add noise, so it also runs under valgrind's callgrind
// (GODEBUG=asyncpreemptoff=1) for instruction counts that a busy host
// does not move.
func BenchmarkEngineOwn(b *testing.B) {
	fn := &answerAtOnce{}
	var records int64
	run := func() {
		src, err := generator.New(generator.Config{Spec: engineSpec()})
		if err != nil {
			b.Fatal(err)
		}
		r := newEngineRunner(b, src, fn)
		runToEnd(b, r, src)
		records += r.Stats().InvokedEvents.Load()
	}
	run() // warm up
	records = 0
	fn.events.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := selfCPU()
	for i := 0; i < b.N; i++ {
		run()
	}
	b.StopTimer()
	if want := int64(b.N) * engineRecords; records != want || fn.events.Load() != want/100 {
		b.Fatalf("the function got %d records in %d events, want %d in %d", records, fn.events.Load(), want, want/100)
	}
	n := float64(b.N) * engineRecords
	b.ReportMetric(float64((selfCPU()-cpu0).Nanoseconds())/n, "cpu-ns/record")
	b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// newEngineRunner is the engine of the engine benchmarks: one Kinesis
// mapping over src, batches of 100, no retry limit and no progress lines.
func newEngineRunner(tb testing.TB, src *generator.Source, inv mapping.Invoker) *mapping.Runner {
	tb.Helper()
	r, err := mapping.NewRunner(mapping.Config{
		Name: "engine", Kind: event.Kinesis, SourceARN: src.Spec().StreamARN(),
		BatchSize: 100, ParallelizationFactor: 1, MaxRecordAge: -1, MaxRetryAttempts: -1, ProgressInterval: -1,
	}, mapping.Deps{Source: src, Invoker: inv, Checkpointer: fakes.NewCheckpoints()})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// runToEnd runs r until src has given every record, then drains what the
// lanes hold.
func runToEnd(tb testing.TB, r *mapping.Runner, src *generator.Source) {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-src.Done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Drain(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
}

// engineRun is what one run measured.
type engineRun struct {
	elapsed       time.Duration
	mallocs       uint64
	maxGoroutines int
}

// runEngine moves engineRecords generated records through a Runner into
// the sink, and returns once the last batch was answered.
func runEngine(tb testing.TB, sinkURL string) engineRun {
	tb.Helper()
	src, err := generator.New(generator.Config{Spec: engineSpec()})
	if err != nil {
		tb.Fatal(err)
	}
	inv, err := httpfunc.New(httpfunc.Config{URL: sinkURL})
	if err != nil {
		tb.Fatal(err)
	}
	r := newEngineRunner(tb, src, inv)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	var maxG atomic.Int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if n := int64(runtime.NumGoroutine()); n > maxG.Load() {
				maxG.Store(n)
			}
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	start := time.Now()
	runToEnd(tb, r, src)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	close(stop)
	sampler.Wait()
	if got := r.Stats().InvokedEvents.Load(); got != engineRecords {
		tb.Fatalf("invoked %d records, want %d", got, engineRecords)
	}
	return engineRun{elapsed: elapsed, mallocs: after.Mallocs - before.Mallocs, maxGoroutines: int(maxG.Load())}
}

// BenchmarkEngine is the engine target: generator → engine → HTTP no-op
// sink on loopback, 100-byte records, BatchSize 100. Each iteration moves
// 400,000 records; run it with -benchtime=1x -count=5.
func BenchmarkEngine(b *testing.B) {
	s := startSink(b)
	runEngine(b, s.URL) // warm up connections and the sink
	recs0, _ := s.count(b)
	b.ResetTimer()
	var total time.Duration
	var mallocs uint64
	maxG := 0
	reportCPU := startCPU(b, s)
	for i := 0; i < b.N; i++ {
		r := runEngine(b, s.URL)
		total += r.elapsed
		mallocs += r.mallocs
		maxG = max(maxG, r.maxGoroutines)
	}
	b.StopTimer()
	recs1, _ := s.count(b)
	if recs1-recs0 != int64(b.N)*engineRecords {
		b.Fatalf("the sink got %d records, want %d", recs1-recs0, int64(b.N)*engineRecords)
	}
	n := float64(b.N) * engineRecords
	b.ReportMetric(n/total.Seconds(), "records/s")
	b.ReportMetric(float64(mallocs)/n, "allocs/record")
	b.ReportMetric(float64(maxG), "goroutines")
	reportCPU(n)
	b.ReportMetric(0, "ns/op")
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU notes the CPU time of this process (the engine, or the bare
// loop) and of the sink, and returns a func that reports both per record
// since then: on 2 cores the two together set the rate.
func startCPU(b *testing.B, s *sink) func(records float64) {
	cpu0, sink0 := selfCPU(), readProc(b, s.cmd.Process.Pid).CPU
	return func(records float64) {
		b.ReportMetric(float64((selfCPU()-cpu0).Microseconds())/records, "cpu-us/record")
		b.ReportMetric(float64((readProc(b, s.cmd.Process.Pid).CPU-sink0).Microseconds())/records, "sink-cpu-us/record")
	}
}

// BenchmarkBarePOST is the engine target's baseline: one goroutine per shard
// POSTing the same pre-built payloads (100 records of 100 bytes, as the
// engine sends them) to the same sink, as fast as it answers.
func BenchmarkBarePOST(b *testing.B) {
	s := startSink(b)
	payloads := preBuilt(b)
	client := bareClient()
	barePOST(b, client, s.URL, payloads) // warm up
	b.ResetTimer()
	var total time.Duration
	reportCPU := startCPU(b, s)
	for i := 0; i < b.N; i++ {
		total += barePOST(b, client, s.URL, payloads)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*engineRecords/total.Seconds(), "records/s")
	reportCPU(float64(b.N) * engineRecords)
	b.ReportMetric(0, "ns/op")
}

// bareClient is the bare loop's client: Go's default transport, with room
// for one idle connection per POSTing goroutine.
func bareClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// barePOST POSTs every payload once, from one goroutine per shard taking
// the next payload in turn, and returns how long that took.
func barePOST(tb testing.TB, client *http.Client, url string, payloads [][]byte) time.Duration {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < engineShards; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(payloads)) {
					return
				}
				resp, err := client.Post(url, "application/json", bytes.NewReader(payloads[i]))
				if err != nil {
					tb.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkEngineRatio measures the engine target's ratio: each iteration
// runs the engine and the bare POST loop once each against one sink, in
// turns that rotate which goes first, and the ratio reported is the median
// of the iterations' ratios. Pairing runs that are seconds apart cancels
// most of the drift of a shared host, which moves throughput by more than
// 10% within minutes. Run it with -benchtime=Nx, N pairs.
//
// The bare loop is the target's baseline: Go's default HTTP client. Each
// iteration also runs it with esmd's own client (httpfunc.Client, whose
// larger write buffer sends an event in one write), and reports the
// engine's ratio to that as strict-ratio: the engine's cost besides HTTP.
func BenchmarkEngineRatio(b *testing.B) {
	s := startSink(b)
	payloads := preBuilt(b)
	client := bareClient()
	runEngine(b, s.URL) // warm up all three
	barePOST(b, client, s.URL, payloads)
	barePOST(b, httpfunc.Client(), s.URL, payloads)
	b.ResetTimer()
	var ratios, strict, engRate, bareRate, strictRate, engCPU, bareCPU, strictCPU, engSink, bareSink, strictSink, allocs []float64
	maxG := 0
	pid := s.cmd.Process.Pid
	for i := 0; i < b.N; i++ {
		for k := 0; k < 3; k++ {
			cpu0, sink0 := selfCPU(), readProc(b, pid).CPU
			switch (i + k) % 3 {
			case 0:
				r := runEngine(b, s.URL)
				engRate = append(engRate, engineRecords/r.elapsed.Seconds())
				engCPU = append(engCPU, perRecord(selfCPU()-cpu0))
				engSink = append(engSink, perRecord(readProc(b, pid).CPU-sink0))
				allocs = append(allocs, float64(r.mallocs)/engineRecords)
				maxG = max(maxG, r.maxGoroutines)
			case 1:
				d := barePOST(b, client, s.URL, payloads)
				bareRate = append(bareRate, engineRecords/d.Seconds())
				bareCPU = append(bareCPU, perRecord(selfCPU()-cpu0))
				bareSink = append(bareSink, perRecord(readProc(b, pid).CPU-sink0))
			default:
				d := barePOST(b, httpfunc.Client(), s.URL, payloads)
				strictRate = append(strictRate, engineRecords/d.Seconds())
				strictCPU = append(strictCPU, perRecord(selfCPU()-cpu0))
				strictSink = append(strictSink, perRecord(readProc(b, pid).CPU-sink0))
			}
		}
		ratios = append(ratios, engRate[i]/bareRate[i])
		strict = append(strict, engRate[i]/strictRate[i])
	}
	b.StopTimer()
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(strict), "strict-ratio")
	b.ReportMetric(median(engRate), "records/s")
	b.ReportMetric(median(bareRate), "bare-records/s")
	b.ReportMetric(median(strictRate), "strict-bare-records/s")
	b.ReportMetric(median(engCPU), "cpu-us/record")
	b.ReportMetric(median(bareCPU), "bare-cpu-us/record")
	b.ReportMetric(median(engSink), "sink-cpu-us/record")
	b.ReportMetric(median(bareSink), "bare-sink-cpu-us/record")
	b.ReportMetric(median(strictCPU), "strict-bare-cpu-us/record")
	b.ReportMetric(median(strictSink), "strict-bare-sink-cpu-us/record")
	b.ReportMetric(median(allocs), "allocs/record")
	b.ReportMetric(float64(maxG), "goroutines")
	b.ReportMetric(0, "ns/op")
}

// perRecord is d in microseconds per record of one engine run.
func perRecord(d time.Duration) float64 { return float64(d.Microseconds()) / engineRecords }

// preBuilt returns the events the engine sends for engineSpec: each shard's
// records in batches of 100.
func preBuilt(tb testing.TB) [][]byte {
	src, err := generator.New(generator.Config{Spec: engineSpec()})
	if err != nil {
		tb.Fatal(err)
	}
	shards, _ := src.Shards(context.Background())
	var out [][]byte
	for _, sh := range shards {
		r, _ := src.Open(context.Background(), sh, event.Start{Type: event.TrimHorizon})
		var recs []event.Record
		for {
			res, err := r.Read(context.Background())
			if errors.Is(err, mapping.ErrShardClosed) {
				break
			}
			if err != nil {
				tb.Fatal(err)
			}
			recs = append(recs, res.Records...)
		}
		for len(recs) > 0 {
			n := min(100, len(recs))
			out = append(out, event.AppendEvent(nil, recs[:n]))
			recs = recs[n:]
		}
	}
	return offHeap(tb, out)
}

// offHeap moves payloads into memory mapped outside the Go heap and returns
// them there. Held on the heap, the 190 MB of a run's payloads would make
// the garbage collector of the process holding them run about a hundred
// times less often than the engine's, whose heap holds a few megabytes.
func offHeap(tb testing.TB, payloads [][]byte) [][]byte {
	total := 0
	for _, p := range payloads {
		total += len(p)
	}
	mem, err := syscall.Mmap(-1, 0, total, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = syscall.Munmap(mem) })
	out := make([][]byte, len(payloads))
	for i, p := range payloads {
		out[i] = mem[:len(p):len(p)]
		copy(out[i], p)
		mem = mem[len(p):]
	}
	return out
}

// BenchmarkGenerate is the generator's own per-record cost.
func BenchmarkGenerate(b *testing.B) {
	src, err := generator.New(generator.Config{Spec: generator.Spec{Name: "g", Shards: 1, Keys: 1000, Size: 100, ReadSize: 1000}})
	if err != nil {
		b.Fatal(err)
	}
	r, _ := src.Open(context.Background(), event.Shard{ID: "shardId-000000000000"}, event.Start{Type: event.TrimHorizon})
	b.ReportAllocs()
	n := 0
	for n < b.N {
		res, err := r.Read(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n += len(res.Records)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
}
