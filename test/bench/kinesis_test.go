package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/esmd-dev/esmd/test/servers"
)

const (
	kinesisRecords = 200_000
	kinesisShards  = 4
	kinesisReps    = 5
)

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// fill puts n records of size bytes with random partition keys into the
// stream, 500 a call, and returns how many went to each shard.
func fill(t *testing.T, c *kinesis.Client, name string, n, size int) map[string]int {
	t.Helper()
	ctx := context.Background()
	perShard := map[string]int{}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, size)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	var batches [][]ktypes.PutRecordsRequestEntry
	for i := 0; i < n; i += 500 {
		var b []ktypes.PutRecordsRequestEntry
		for j := i; j < min(i+500, n); j++ {
			b = append(b, ktypes.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(strconv.FormatUint(rng.Uint64(), 36))})
		}
		batches = append(batches, b)
	}
	work := make(chan []ktypes.PutRecordsRequestEntry)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				for len(b) > 0 {
					out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: b})
					if err != nil {
						t.Error(err)
						return
					}
					var retry []ktypes.PutRecordsRequestEntry
					mu.Lock()
					for i, r := range out.Records {
						if r.ErrorCode != nil {
							retry = append(retry, b[i])
							continue
						}
						perShard[aws.ToString(r.ShardId)]++
					}
					mu.Unlock()
					b = retry
				}
			}
		}()
	}
	for _, b := range batches {
		work <- b
	}
	close(work)
	wg.Wait()
	return perShard
}

// rawRead is the Kinesis target's baseline: one goroutine per shard doing
// GetRecords with Limit 10000 from TRIM_HORIZON, only counting, until it
// has the shard's records.
func rawRead(t *testing.T, c *kinesis.Client, name string, perShard map[string]int) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	for shard, want := range perShard {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(shard), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Error(err)
				return
			}
			iter := it.ShardIterator
			got := 0
			for got < want {
				out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
				if err != nil {
					t.Error(err)
					return
				}
				got += len(out.Records)
				iter = out.NextShardIterator
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// TestKinesisThroughput is the Kinesis target: kinesalite, 4 shards
// pre-filled with 200,000 records of 100 bytes, consumed by esmd into the
// loopback sink in batches of 100, against the raw reader on the same data,
// in five pairs of runs. The ratio is the median of the pairs' ratios, as
// for the engine: kinesalite's own pace drifts by 10% and more within a
// minute on a shared host, which a ratio of two runs seconds apart mostly
// cancels and a ratio of medians taken apart does not. The ratio of the
// medians is reported too.
func TestKinesisThroughput(t *testing.T) {
	enabled(t)
	ep := servers.Kinesalite(t)
	c := servers.KinesisClient(ep)
	name := servers.UniqueName("bench")
	arn := servers.CreateStream(t, ep, name, kinesisShards)
	fillStart := time.Now()
	perShard := fill(t, c, name, kinesisRecords, 100)
	t.Logf("filled %d records in %s: %v", kinesisRecords, time.Since(fillStart).Round(time.Millisecond), perShard)
	s := startSink(t)

	var raw, esmdRate, ratios, cpu, rss []float64
	runRaw := func() {
		d := rawRead(t, c, name, perShard)
		raw = append(raw, kinesisRecords/d.Seconds())
	}
	runESMD := func(rep int) {
		before, _ := s.count(t)
		dir := t.TempDir()
		// With ESMD_BENCH_PROFILE=DIR the first repetition's esmd is
		// profiled through its admin server.
		profDir, admin, server := os.Getenv("ESMD_BENCH_PROFILE"), "", "{listen: off}"
		if profDir != "" && rep == 0 {
			admin = fmt.Sprintf("127.0.0.1:%d", servers.FreePort(t))
			server = fmt.Sprintf("{listen: %q, pprof: true}", admin)
		}
		e := startESMD(t, dir, fmt.Sprintf(`server: %s
aws:
  region: us-east-1
  endpoints: {kinesis: %q}
  credentials: {accessKeyId: test, secretAccessKey: test}
logging: {level: warn}
functions:
  sink:
    http: {url: %q}
checkpoints:
  file: {path: %q}
mappings:
  - EventSourceArn: %s
    FunctionName: sink
    StartingPosition: TRIM_HORIZON
    BatchSize: 100
    esmd: {pollInterval: 200ms}
`, server, ep, s.URL, dir+"/cp.db", arn))
		start := time.Now()
		var prof *processProfiler
		if admin != "" {
			if !waitFor(context.Background(), 10*time.Second, func() bool { return fetch(context.Background(), "http://"+admin+"/healthz") != nil }) {
				t.Fatal("esmd's admin server did not come up")
			}
			prof = profileProcess(t, "http://"+admin, profDir, 4)
		}
		var last procStats
		ok := waitFor(context.Background(), 5*time.Minute, func() bool {
			n, _ := s.count(t)
			last = readProc(t, e.pid())
			return n-before >= kinesisRecords
		})
		elapsed := time.Since(start)
		if prof != nil {
			prof.Close()
		}
		n, _ := s.count(t)
		e.stop()
		if prof != nil {
			if b, err := os.ReadFile(e.log); err == nil {
				_ = os.WriteFile(filepath.Join(profDir, "esmd.log"), b, 0o644)
			}
		}
		if !ok || n-before != kinesisRecords {
			t.Fatalf("esmd delivered %d of %d records", n-before, kinesisRecords)
		}
		esmdRate = append(esmdRate, kinesisRecords/elapsed.Seconds())
		cpu = append(cpu, float64(last.CPU.Microseconds())/kinesisRecords)
		rss = append(rss, float64(last.PeakRSS)/(1<<20))
	}
	for rep := 0; rep < kinesisReps; rep++ {
		// The two take turns going first, so that a host slowing down
		// or speeding up through a repetition favours neither.
		if rep%2 == 0 {
			runRaw()
			runESMD(rep)
		} else {
			runESMD(rep)
			runRaw()
		}
		ratios = append(ratios, esmdRate[rep]/raw[rep])
		t.Logf("rep %d: raw %.0f records/s, esmd %.0f records/s (%.3fx), %.2f µs CPU/record, peak RSS %.1f MiB", rep, raw[rep], esmdRate[rep], ratios[rep], cpu[rep], rss[rep])
	}
	report(t, "kinesis", "raw reader", median(raw), "records/s")
	report(t, "kinesis", "esmd", median(esmdRate), "records/s")
	report(t, "kinesis", "ratio to raw reader", median(ratios), "x")
	report(t, "kinesis", "ratio of the medians", median(esmdRate)/median(raw), "x")
	report(t, "kinesis", "process CPU", median(cpu), "µs/record")
	report(t, "kinesis", "peak RSS", median(rss), "MiB")
	report(t, "kinesis", "records delivered", kinesisRecords, "records")
}
