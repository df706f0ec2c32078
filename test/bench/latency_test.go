package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/esmd-dev/esmd/test/servers"
)

// TestLatency is the latency target: an idle 4-shard stream, then one
// record every 100 ms for 30 s; put-to-invoke latency with pollInterval
// 200ms, the first records after the idle period included.
func TestLatency(t *testing.T) {
	enabled(t)
	ep := servers.Kinesalite(t)
	c := servers.KinesisClient(ep)
	name := servers.UniqueName("latency")
	arn := servers.CreateStream(t, ep, name, 4)

	var mu sync.Mutex
	var lat []time.Duration
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			Records []struct {
				Kinesis struct {
					Data []byte `json:"data"`
				} `json:"kinesis"`
			} `json:"Records"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		for _, rec := range ev.Records {
			ns, _ := strconv.ParseInt(string(rec.Kinesis.Data), 10, 64)
			lat = append(lat, now.Sub(time.Unix(0, ns)))
		}
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	}))
	defer sink.Close()

	dir := t.TempDir()
	startESMD(t, dir, fmt.Sprintf(`aws:
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
    StartingPosition: LATEST
    BatchSize: 100
    esmd: {pollInterval: 200ms}
`, ep, sink.URL, dir+"/cp.db", arn))
	// Idle: esmd finds the shards and polls an empty stream.
	time.Sleep(5 * time.Second)

	const n = 300
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		_, err := c.PutRecord(context.Background(), &kinesis.PutRecordInput{
			StreamName:   aws.String(name),
			PartitionKey: aws.String("k" + strconv.Itoa(i)),
			Data:         []byte(strconv.FormatInt(time.Now().UnixNano(), 10)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(context.Background(), 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lat) >= n
	}) {
		t.Fatalf("%d of %d records invoked", len(lat), n)
	}
	mu.Lock()
	all := slices.Clone(lat)
	mu.Unlock()
	first := slices.Clone(all[:5])
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	report(t, "latency", "put-to-invoke p50", q(0.5), "ms")
	report(t, "latency", "put-to-invoke p99", q(0.99), "ms")
	report(t, "latency", "put-to-invoke max", q(1), "ms")
	var fs []string
	worst := time.Duration(0)
	for _, d := range first {
		fs = append(fs, d.Round(time.Millisecond).String())
		worst = max(worst, d)
	}
	t.Logf("first records after the idle period: %s", strings.Join(fs, " "))
	report(t, "latency", "worst of the first 5 after idle", float64(worst.Microseconds())/1000, "ms")
	if len(all) != n {
		t.Errorf("%d invocations of records, want %d (duplicates?)", len(all), n)
	}
}

// TestScale is the scale target: a generator of 1,000 and then 10,000 idle
// shards (ParallelizationFactor 1) in esmd; RSS once every shard runs, and
// the memory each shard costs.
func TestScale(t *testing.T) {
	enabled(t)
	s := startSink(t)
	rss := map[int]float64{}
	for _, shards := range []int{1000, 10000} {
		dir := t.TempDir()
		e := startESMD(t, dir, fmt.Sprintf(`logging: {level: info}
functions:
  sink:
    http: {url: %q}
checkpoints:
  file: {path: %q}
mappings:
  - EventSourceArn: generator://scale?shards=%d&keys=1&rate=0.001
    FunctionName: sink
`, s.URL, dir+"/cp.db", shards))
		ok := waitFor(context.Background(), 3*time.Minute, func() bool {
			b, _ := os.ReadFile(e.log)
			return strings.Count(string(b), `msg="shard started"`) >= shards
		})
		if !ok {
			t.Fatalf("not every one of %d shards started within 3 minutes", shards)
		}
		time.Sleep(5 * time.Second)
		st := readProc(t, e.pid())
		e.stop()
		rss[shards] = float64(st.RSS) / (1 << 20)
		report(t, "scale", fmt.Sprintf("RSS with %d idle shards", shards), rss[shards], "MiB")
		report(t, "scale", fmt.Sprintf("peak RSS with %d idle shards", shards), float64(st.PeakRSS)/(1<<20), "MiB")
	}
	report(t, "scale", "memory per shard", (rss[10000]-rss[1000])*1024/9000, "KiB")
}
