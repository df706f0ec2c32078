package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/esmd-dev/esmd/test/efoshim"
	"github.com/esmd-dev/esmd/test/servers"
)

var update = flag.Bool("update", false, "rewrite golden files")

// failureRecord is the on-failure record, decoded.
type failureRecord struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError"`
	} `json:"responseContext"`
	Version   string     `json:"version"`
	Timestamp string     `json:"timestamp"`
	Batch     *batchInfo `json:"KinesisBatchInfo,omitempty"`
	DDB       *batchInfo `json:"DDBStreamBatchInfo,omitempty"`
}

type batchInfo struct {
	ShardID      string `json:"shardId"`
	StartSeq     string `json:"startSequenceNumber"`
	EndSeq       string `json:"endSequenceNumber"`
	FirstArrival string `json:"approximateArrivalOfFirstRecord"`
	LastArrival  string `json:"approximateArrivalOfLastRecord"`
	BatchSize    int    `json:"batchSize"`
	StreamARN    string `json:"streamArn"`
}

// info returns the batch info of either source.
func (f failureRecord) info() batchInfo {
	if f.Batch != nil {
		return *f.Batch
	}
	if f.DDB != nil {
		return *f.DDB
	}
	return batchInfo{}
}

func decodeFailure(t *testing.T, body string) failureRecord {
	t.Helper()
	var f failureRecord
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("failure record %s: %v", body, err)
	}
	return f
}

func TestKinesisEventShape(t *testing.T) {
	t.Parallel()
	ep := servers.KinesisMock(t)
	name := servers.UniqueName("shape")
	arn := servers.CreateStream(t, ep, name, 1)
	recs := []put{
		{Key: "order-1", Data: []byte(`{"id":1}`)},
		{Key: "ключ <&>", Data: []byte{0, 1, 2, 0xff, 0xfe}},
		{Key: "order-1", Data: []byte("plain text")},
	}
	start := time.Now()
	res := putRecords(t, ep, name, recs)
	s := newSink(t, nil)
	dir := t.TempDir()
	startESMD(t, dir, kinesisYAML(ep, "", dir, arn, s.srv.URL, "BatchSize: 10\nesmd: {pollInterval: 100ms}"))
	waitFor(t, 30*time.Second, "3 records", func() bool { return s.count() == 3 })

	calls := s.snapshot()
	if len(calls) != 1 {
		t.Fatalf("%d invocations, want 1", len(calls))
	}
	for i, r := range calls[0].Records {
		want := recs[i]
		seq := aws.ToString(res[i].SequenceNumber)
		shard := aws.ToString(res[i].ShardId)
		k := r.Kinesis
		if k.PartitionKey != want.Key || !bytes.Equal(k.Data, want.Data) || k.SequenceNumber != seq || k.KinesisSchemaVersion != "1.0" {
			t.Errorf("record %d kinesis = %+v, want key %q data %q seq %s", i, k, want.Key, want.Data, seq)
		}
		if at := k.ApproximateArrivalTimestamp.Time; at.Before(start.Add(-5*time.Second)) || at.After(time.Now()) {
			t.Errorf("record %d arrival %v not near put time %v", i, at, start)
		}
		if r.EventSource != "aws:kinesis" || r.EventVersion != "1.0" || r.EventName != "aws:kinesis:record" ||
			r.EventID != shard+":"+seq || r.InvokeIdentityArn != "arn:aws:iam::000000000000:role/esmd" ||
			r.AwsRegion != "us-east-1" || r.EventSourceArn != arn {
			t.Errorf("record %d = %+v", i, r)
		}
	}
	checkGolden(t, "kinesis_event.golden.json", normalizeEvent(calls[0].Body, name))
}

// normalizeEvent replaces what differs between runs (sequence numbers, arrival
// times, the stream name) with placeholders, and indents the event.
func normalizeEvent(body []byte, stream string) []byte {
	s := string(body)
	s = regexp.MustCompile(`"approximateArrivalTimestamp":[0-9.]+`).ReplaceAllString(s, `"approximateArrivalTimestamp":0`)
	seqs := regexp.MustCompile(`[0-9]{20,}`).FindAllString(s, -1)
	seen := map[string]string{}
	for _, q := range seqs {
		if _, ok := seen[q]; !ok {
			seen[q] = fmt.Sprintf("SEQ%d", len(seen))
		}
	}
	s = regexp.MustCompile(`[0-9]{20,}`).ReplaceAllStringFunc(s, func(q string) string { return seen[q] })
	s = strings.ReplaceAll(s, stream, "STREAM")
	var out bytes.Buffer
	_ = json.Indent(&out, []byte(s), "", "  ")
	out.WriteByte('\n')
	return out.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got: %s\nwant: %s", path, got, want)
	}
}

func TestKinesisMaximumRecordAge(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for records to pass the 60 s minimum age")
	}
	t.Parallel()
	ep := servers.KinesisMock(t)
	moto := servers.Moto(t)
	name := servers.UniqueName("age")
	arn := servers.CreateStream(t, ep, name, 1)
	qurl, qarn := servers.CreateQueue(t, moto, servers.UniqueName("failures"), nil)
	res := putRecords(t, ep, name, []put{{Key: "k", Data: []byte("a")}, {Key: "k", Data: []byte("b")}})
	s := newSink(t, func(c call) (int, string) { return 500, "" })
	dir := t.TempDir()
	startESMD(t, dir, kinesisYAML(ep, moto, dir, arn, s.srv.URL, fmt.Sprintf(`MaximumRecordAgeInSeconds: 60
DestinationConfig: {OnFailure: {Destination: %s}}
esmd: {pollInterval: 100ms, retryBackoff: {initial: 100ms, max: 1s}}`, qarn)))
	bodies := receiveAll(t, moto, qurl, 1, 100*time.Second)
	if len(bodies) != 1 {
		t.Fatalf("%d failure records, want 1", len(bodies))
	}
	f := decodeFailure(t, bodies[0])
	if f.RequestContext.Condition != "RecordAgeExceeded" || f.info().BatchSize != 2 ||
		f.info().StartSeq != aws.ToString(res[0].SequenceNumber) || f.RequestContext.ApproximateInvokeCount < 2 {
		t.Fatalf("failure record = %+v", f)
	}
}

// orderCheck follows per-key counters through invocations in the order the
// sink received them. It counts records, duplicates (a counter seen before)
// and order violations (a counter beyond the next expected one).
type orderCheck struct {
	mu         sync.Mutex
	next       map[string]int
	seen       map[string]bool
	records    int
	dups       int
	violations []string
}

func newOrderCheck() *orderCheck {
	return &orderCheck{next: map[string]int{}, seen: map[string]bool{}}
}

func (o *orderCheck) observe(recs []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range recs {
		i := strings.LastIndexByte(d, ':')
		key := d[:i]
		var n int
		fmt.Sscanf(d[i+1:], "%d", &n)
		o.records++
		if o.seen[d] {
			o.dups++
		}
		o.seen[d] = true
		switch {
		case n == o.next[key]:
			o.next[key]++
		case n < o.next[key]:
			// A redelivery: the key's sequence restarts here.
			o.next[key] = n + 1
		default:
			if len(o.violations) < 10 {
				o.violations = append(o.violations, fmt.Sprintf("%s: got %d, want %d", key, n, o.next[key]))
			}
			o.next[key] = n + 1
		}
	}
}

// dupCount, violationList and deliveries read the counts so far; the sink
// may still be observing.
func (o *orderCheck) dupCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dups
}

func (o *orderCheck) violationList() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.violations...)
}

func (o *orderCheck) deliveries() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.records
}

func (o *orderCheck) unique() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}

func dataOf(c call) []string {
	out := make([]string, len(c.Recs))
	for i, r := range c.Recs {
		out[i] = r.Data
	}
	return out
}

func TestKinesisParallelizationFactorKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	ep := servers.Kinesalite(t)
	name := servers.UniqueName("pf")
	arn := servers.CreateStream(t, ep, name, 2)
	const total = 100_000
	putRecords(t, ep, name, keyedRecords(1000, total))
	oc := newOrderCheck()
	s := newSink(t, func(c call) (int, string) {
		oc.observe(dataOf(c))
		time.Sleep(2 * time.Millisecond)
		return 200, ""
	})
	dir := t.TempDir()
	startESMD(t, dir, kinesisYAML(ep, "", dir, arn, s.srv.URL, `BatchSize: 100
ParallelizationFactor: 10
esmd: {pollInterval: 100ms}`))
	waitFor(t, 5*time.Minute, "100,000 records", func() bool { return oc.unique() == total })
	if len(oc.violationList()) > 0 {
		t.Fatalf("per-key order violated: %v", oc.violationList())
	}
	if oc.dupCount() != 0 {
		t.Fatalf("%d duplicates without any failure", oc.dupCount())
	}
	if p := s.peakConcurrency(); p < 2 {
		t.Fatalf("peak concurrent invocations %d, want more than one lane at once", p)
	} else {
		t.Logf("peak concurrent invocations: %d (2 shards x 10 lanes)", p)
	}
}

func TestKinesisReshardingKeepsParentBeforeChild(t *testing.T) {
	t.Parallel()
	ep := servers.KinesisMock(t)
	name := servers.UniqueName("reshard")
	arn := servers.CreateStream(t, ep, name, 1)
	kc := servers.KinesisClient(ep)
	oc := newOrderCheck()
	s := newSink(t, func(c call) (int, string) {
		oc.observe(dataOf(c))
		return 200, ""
	})
	dir := t.TempDir()
	startESMD(t, dir, kinesisYAML(ep, "", dir, arn, s.srv.URL, `BatchSize: 50
esmd: {pollInterval: 100ms, shardDiscoveryInterval: 500ms}`))
	const keys = 20
	recs := keyedRecords(keys, 600)
	putRecords(t, ep, name, recs[:200])
	ctx := context.Background()
	shards := listShards(t, kc, name)
	// Split the only shard at the middle of its hash range.
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: shards[0].ShardId,
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, kc, name)
	putRecords(t, ep, name, recs[200:400])
	var open []string
	for _, sh := range listShards(t, kc, name) {
		if sh.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, aws.ToString(sh.ShardId))
		}
	}
	sort.Strings(open)
	if len(open) != 2 {
		t.Fatalf("open shards after split: %v", open)
	}
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(name), ShardToMerge: aws.String(open[0]), AdjacentShardToMerge: aws.String(open[1])}); err != nil {
		t.Fatal(err)
	}
	waitActive(t, kc, name)
	putRecords(t, ep, name, recs[400:])
	waitFor(t, 2*time.Minute, "600 records", func() bool { return oc.unique() == 600 })
	if len(oc.violationList()) > 0 {
		t.Fatalf("a child record came before its parent's for the same key: %v", oc.violationList())
	}
	if len(listShards(t, kc, name)) != 4 {
		t.Fatalf("want 4 shards (parent, 2 children, merged)")
	}
}

func listShards(t *testing.T, kc *kinesis.Client, name string) []ktypes.Shard {
	t.Helper()
	out, err := kc.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Shards
}

func waitActive(t *testing.T, kc *kinesis.Client, name string) {
	t.Helper()
	waitFor(t, 30*time.Second, "stream ACTIVE", func() bool {
		out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive
	})
}

func TestKinesisEnhancedFanOut(t *testing.T) {
	t.Parallel()
	ep := servers.KinesisMock(t)
	name := servers.UniqueName("efo")
	arn := servers.CreateStream(t, ep, name, 2)
	kc := servers.KinesisClient(ep)
	out, err := kc.RegisterStreamConsumer(context.Background(), &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("esmd")})
	if err != nil {
		t.Fatal(err)
	}
	consumer := aws.ToString(out.Consumer.ConsumerARN)
	waitFor(t, 30*time.Second, "consumer ACTIVE", func() bool {
		d, err := kc.DescribeStreamConsumer(context.Background(), &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(consumer)})
		return err == nil && d.ConsumerDescription.ConsumerStatus == ktypes.ConsumerStatusActive
	})
	shim := efoshim.Start(t, ep)
	oc := newOrderCheck()
	s := newSink(t, func(c call) (int, string) {
		oc.observe(dataOf(c))
		return 200, ""
	})
	const total = 300
	putRecords(t, ep, name, keyedRecords(10, total))
	dir := t.TempDir()
	startESMD(t, dir, kinesisYAML(shim, "", dir, consumer, s.srv.URL, `BatchSize: 50`))
	waitFor(t, time.Minute, "every record", func() bool { return oc.unique() == total })
	if len(oc.violationList()) > 0 || oc.dupCount() > 0 {
		t.Fatalf("order %v, duplicates %d", oc.violationList(), oc.dupCount())
	}
	for _, c := range s.snapshot() {
		if c.Records[0].EventSourceArn != arn {
			t.Fatalf("eventSourceARN %s, want the stream %s", c.Records[0].EventSourceArn, arn)
		}
	}
}
