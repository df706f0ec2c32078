package generator

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		url  string
		want Spec
	}{
		{"generator://s", Spec{Name: "s", Shards: 4, Keys: 1000, Size: 100, Seed: 1, Shape: event.Kinesis, Payload: "json", ReadSize: 1000}},
		{"generator://load-1?shards=8&rate=50000&keys=10&size=200&count=100000&duration=30s&seed=42&shape=dynamodb&poison=0.01&readsize=500",
			Spec{Name: "load-1", Shards: 8, Rate: 50000, Keys: 10, Size: 200, Count: 100000, Duration: 30 * time.Second, Seed: 42,
				Shape: event.DynamoDB, Poison: 0.01, Payload: "json", ReadSize: 500}},
		{`generator://t?template={"id":"{{key}}-{{n}}","x":1%2B2}`,
			Spec{Name: "t", Shards: 4, Keys: 1000, Size: 100, Seed: 1, Shape: event.Kinesis, Payload: "json", ReadSize: 1000, Template: `{"id":"{{key}}-{{n}}","x":1+2}`}},
		{"generator://r?payload=random&size=7", Spec{Name: "r", Shards: 4, Keys: 1000, Size: 7, Seed: 1, Shape: event.Kinesis, Payload: "random", ReadSize: 1000}},
		{"generator://q.1?shape=sqs&count=10&seed=3", Spec{Name: "q.1", Shards: 4, Keys: 1000, Size: 100, Count: 10, Seed: 3, Shape: event.SQS, Payload: "json", ReadSize: 1000}},
		{"generator://q?shape=sqs&payload=random&template=", Spec{Name: "q", Shards: 4, Keys: 1000, Size: 100, Seed: 1, Shape: event.SQS, Payload: "random", ReadSize: 1000}},
	}
	for _, tc := range good {
		t.Run(tc.url, func(t *testing.T) {
			got, err := ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("spec (-want +got):\n%s", diff)
			}
			back, err := ParseURL(got.URL())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, back); diff != "" {
				t.Fatalf("round trip through %s (-want +got):\n%s", got.URL(), diff)
			}
		})
	}
	bad := []struct{ url, want string }{
		{"kinesis://x", "starts with generator://"},
		{"generator://", "name"},
		{"generator://a/b", "name"},
		{"generator://x?shards=0", "shards: 0 is not between 1"},
		{"generator://x?shards=abc", `shards: "abc" is not a valid value`},
		{"generator://x?rate=-1", "rate: -1 must not be negative"},
		{"generator://x?keys=0", "keys: 0 is not between 1"},
		{"generator://x?size=0", "size: 0 is not between 1"},
		{"generator://x?count=-5", "count: -5"},
		{"generator://x?duration=soon", `duration: "soon"`},
		{"generator://x?shape=sns", `shape: "sns" is not kinesis, dynamodb or sqs`},
		{"generator://x?shape=Kinesis", `shape: "Kinesis" is not kinesis, dynamodb or sqs`},
		{"generator://x?poison=2", "poison: 2 is not between 0 and 1"},
		{"generator://x?payload=xml", `payload: "xml"`},
		{"generator://x?payload=random&template=a", "template: does not apply"},
		{"generator://x?readsize=20000", "readsize: 20000"},
		{"generator://x?colour=red", "colour: unknown key"},
		{"generator://x?count=1&count=2", "count: given 2 times"},
		// An explicit zero is refused however it is written, rather than
		// taken for the default.
		{"generator://x?shards=00", "shards: 00 is not between 1"},
		{"generator://x?shards=-0", "shards: -0 is not between 1"},
		{"generator://x?keys=000", "keys: 000 is not between 1"},
		{"generator://x?size=00", "size: 00 is not between 1"},
		{"generator://x?readsize=00", "readsize: 00 is not between 1"},
		// A rate that is not a finite number would never generate.
		{"generator://x?rate=inf", "rate: +Inf is not a number of records per second"},
		{"generator://x?rate=-Inf", "rate: -Inf is not a number"},
		{"generator://x?rate=NaN", "rate: NaN is not a number"},
		{"generator://x?poison=NaN", "poison: NaN is not between 0 and 1"},
	}
	for _, tc := range bad {
		t.Run(tc.url, func(t *testing.T) {
			_, err := ParseURL(tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// readAll reads shard sh from start to its end.
func readAll(t *testing.T, s *Source, sh string, start event.Start) []event.Record {
	t.Helper()
	r, err := s.Open(context.Background(), event.Shard{ID: sh}, start)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []event.Record
	for {
		res, err := r.Read(context.Background())
		if errors.Is(err, mapping.ErrShardClosed) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Records...)
	}
}

func kinesisRecord(t *testing.T, r event.Record) events.KinesisEventRecord {
	t.Helper()
	var kr events.KinesisEventRecord
	if err := json.Unmarshal(r.AppendJSON(nil), &kr); err != nil {
		t.Fatalf("record JSON %s: %v", r.AppendJSON(nil), err)
	}
	return kr
}

func TestShardsKeysAndSequences(t *testing.T) {
	spec := Spec{Name: "gen", Shards: 3, Keys: 50, Count: 1000, Size: 120, Seed: 7}
	s, err := New(Config{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	shards, _ := s.Shards(context.Background())
	if len(shards) != 3 || shards[0].ID != "shardId-000000000000" || shards[2].ID != "shardId-000000000002" {
		t.Fatalf("shards = %+v", shards)
	}
	total := 0
	lastN := map[string]int64{}
	for si, sh := range shards {
		recs := readAll(t, s, sh.ID, event.Start{Type: event.TrimHorizon})
		if int64(len(recs)) != s.ShardCount(sh.ID) {
			t.Fatalf("%s: %d records, ShardCount says %d", sh.ID, len(recs), s.ShardCount(sh.ID))
		}
		total += len(recs)
		prevSeq := ""
		for _, r := range recs {
			kr := kinesisRecord(t, r)
			k := kr.Kinesis
			if k.PartitionKey != r.Key || k.SequenceNumber != r.Seq || kr.EventSourceArn != "arn:aws:kinesis:us-east-1:000000000000:stream/gen" {
				t.Fatalf("record %+v does not match its JSON %s", r, r.AppendJSON(nil))
			}
			if kr.EventID != sh.ID+":"+r.Seq {
				t.Fatalf("eventID %q", kr.EventID)
			}
			// Records share a buffer: none may grow into the next.
			if cap(r.JSON) != len(r.JSON) {
				t.Fatalf("record JSON cap %d len %d", cap(r.JSON), len(r.JSON))
			}
			// The key hashes into this shard's third of the 128-bit range.
			sum := md5.Sum([]byte(r.Key))
			h := new(big.Int).SetBytes(sum[:])
			h.Mul(h, big.NewInt(3))
			h.Rsh(h, 128)
			if int(h.Int64()) != si {
				t.Fatalf("key %s is in %s, its hash says shard %d", r.Key, sh.ID, h.Int64())
			}
			if prevSeq != "" && event.CompareSeq(prevSeq, r.Seq) >= 0 {
				t.Fatalf("sequence numbers do not rise: %s then %s", prevSeq, r.Seq)
			}
			prevSeq = r.Seq
			d, ok := ParseData(k.Data)
			if !ok || d.Key != r.Key {
				t.Fatalf("data %s: %+v %v", k.Data, d, ok)
			}
			if d.N != lastN[d.Key]+1 {
				t.Fatalf("key %s: n %d after %d", d.Key, d.N, lastN[d.Key])
			}
			lastN[d.Key] = d.N
			if len(k.Data) != 120 {
				t.Fatalf("data is %d bytes, want the size 120: %s", len(k.Data), k.Data)
			}
			if d.Generated.IsZero() || d.Generated.Sub(r.Arrival).Abs() > time.Microsecond {
				t.Fatalf("generated %v, arrival %v", d.Generated, r.Arrival)
			}
		}
	}
	if total != 1000 {
		t.Fatalf("%d records in all, want 1000", total)
	}
	if len(lastN) != 50 {
		t.Fatalf("%d keys seen, want 50", len(lastN))
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done is not closed after every shard ended")
	}
	if s.Generated() != 1000 {
		t.Fatalf("Generated = %d", s.Generated())
	}
}

// stable is a record without its generation time, which is the one thing
// a seed does not fix.
type stable struct {
	Key, Seq string
	N        int64
	Poison   bool
	Pad      string
}

func stableOf(t *testing.T, recs []event.Record) []stable {
	t.Helper()
	out := make([]stable, len(recs))
	for i, r := range recs {
		data := kinesisRecord(t, r).Kinesis.Data
		d, _ := ParseData(data)
		var obj struct {
			Pad string `json:"pad"`
		}
		if err := json.Unmarshal(data, &obj); err != nil {
			t.Fatal(err)
		}
		out[i] = stable{r.Key, r.Seq, d.N, d.Poison, obj.Pad}
	}
	return out
}

func TestSeededAndResumable(t *testing.T) {
	spec := Spec{Name: "gen", Shards: 2, Keys: 20, Count: 500, Seed: 42, Poison: 0.1, ReadSize: 37}
	a, _ := New(Config{Spec: spec})
	b, _ := New(Config{Spec: spec})
	sh := "shardId-000000000001"
	full := stableOf(t, readAll(t, a, sh, event.Start{Type: event.TrimHorizon}))
	again := stableOf(t, readAll(t, b, sh, event.Start{Type: event.TrimHorizon}))
	if diff := cmp.Diff(full, again); diff != "" {
		t.Fatalf("same seed, different records (-a +b):\n%s", diff)
	}
	poison := 0
	for _, r := range full {
		if r.Poison {
			poison++
		}
	}
	if poison < len(full)/20 || poison > len(full)/5 {
		t.Fatalf("%d poison records of %d at poison=0.1", poison, len(full))
	}

	for _, cut := range []int{0, 1, 100, len(full) - 1} {
		c, _ := New(Config{Spec: spec})
		rest := stableOf(t, readAll(t, c, sh, event.Start{Type: event.AfterSequence, Seq: full[cut].Seq}))
		if diff := cmp.Diff(full[cut+1:], rest); diff != "" {
			t.Fatalf("after record %d (-want +got):\n%s", cut, diff)
		}
		at := stableOf(t, readAll(t, c, sh, event.Start{Type: event.AtSequence, Seq: full[cut].Seq}))
		if diff := cmp.Diff(full[cut:], at); diff != "" {
			t.Fatalf("at record %d (-want +got):\n%s", cut, diff)
		}
	}

	other, _ := New(Config{Spec: Spec{Name: "gen", Shards: 2, Keys: 20, Count: 500, Seed: 43, Poison: 0.1, ReadSize: 37}})
	if cmp.Equal(full, stableOf(t, readAll(t, other, sh, event.Start{Type: event.TrimHorizon}))) {
		t.Fatal("another seed made the same records")
	}
	if _, err := a.Open(context.Background(), event.Shard{ID: sh}, event.Start{Type: event.AfterSequence, Seq: "12345"}); err == nil {
		t.Fatal("a foreign sequence number was accepted")
	}
	if _, err := a.Open(context.Background(), event.Shard{ID: "shardId-000000000009"}, event.Start{Type: event.TrimHorizon}); err == nil {
		t.Fatal("an unknown shard was opened")
	}
}

func TestRateAndDuration(t *testing.T) {
	t.Run("rate", func(t *testing.T) {
		// 1 shard at 200 records/s: 100 records take about half a second.
		s, _ := New(Config{Spec: Spec{Name: "r", Shards: 1, Keys: 5, Count: 100, Rate: 200}})
		start := time.Now()
		recs := readAll(t, s, "shardId-000000000000", event.Start{Type: event.TrimHorizon})
		took := time.Since(start)
		if len(recs) != 100 {
			t.Fatalf("%d records", len(recs))
		}
		if took < 450*time.Millisecond || took > 2*time.Second {
			t.Fatalf("100 records at 200/s took %s", took)
		}
		for i := 1; i < len(recs); i++ {
			gap := recs[i].Arrival.Sub(recs[i-1].Arrival)
			if gap < 4*time.Millisecond || gap > 6*time.Millisecond {
				t.Fatalf("arrival gap %s between records %d and %d, want 5ms", gap, i-1, i)
			}
		}
	})
	t.Run("duration", func(t *testing.T) {
		s, _ := New(Config{Spec: Spec{Name: "d", Shards: 2, Keys: 5, Rate: 100, Duration: 300 * time.Millisecond}})
		start := time.Now()
		n := len(readAll(t, s, "shardId-000000000000", event.Start{Type: event.TrimHorizon})) +
			len(readAll(t, s, "shardId-000000000001", event.Start{Type: event.TrimHorizon}))
		if took := time.Since(start); took < 250*time.Millisecond || took > 2*time.Second {
			t.Fatalf("a 300ms generator ran %s", took)
		}
		if n < 10 || n > 40 {
			t.Fatalf("%d records in 300ms at 100/s", n)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		s, _ := New(Config{Spec: Spec{Name: "c", Shards: 1, Keys: 5, Rate: 0.01}})
		r, _ := s.Open(context.Background(), event.Shard{ID: "shardId-000000000000"}, event.Start{Type: event.TrimHorizon})
		if _, err := r.Read(context.Background()); err != nil { // the first record is due at once
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := r.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if s.Finite() {
			t.Fatal("a generator without count or duration says it is finite")
		}
	})
}

func TestShapesAndPayloads(t *testing.T) {
	t.Run("dynamodb", func(t *testing.T) {
		s, _ := New(Config{Spec: Spec{Name: "tbl", Shards: 1, Keys: 3, Count: 10, Shape: event.DynamoDB}})
		recs := readAll(t, s, "shardId-000000000000", event.Start{Type: event.TrimHorizon})
		payload := event.AppendEvent(nil, recs)
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			t.Fatal(err)
		}
		if len(ev.Records) != 10 || ev.Records[0].EventName != "INSERT" ||
			ev.Records[0].EventSourceArn != "arn:aws:dynamodb:us-east-1:000000000000:table/tbl/stream/1970-01-01T00:00:00.000" {
			t.Fatalf("event %s", payload)
		}
		var ns []int64
		if err := ScanEvent(payload, func(d []byte) {
			pd, ok := ParseData(d)
			if !ok || pd.Key != ev.Records[len(ns)].Change.Keys["pk"].String() {
				t.Fatalf("data %s", d)
			}
			ns = append(ns, pd.N)
		}); err != nil {
			t.Fatal(err)
		}
		if len(ns) != 10 {
			t.Fatalf("scanned %d records", len(ns))
		}
	})
	t.Run("kinesis scan", func(t *testing.T) {
		s, _ := New(Config{Spec: Spec{Name: "k", Shards: 1, Keys: 3, Count: 10}})
		recs := readAll(t, s, "shardId-000000000000", event.Start{Type: event.TrimHorizon})
		var keys []string
		if err := ScanEvent(event.AppendEvent(nil, recs), func(d []byte) {
			pd, _ := ParseData(d)
			keys = append(keys, pd.Key)
		}); err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if keys[i] != r.Key {
				t.Fatalf("record %d: scanned key %q, want %q", i, keys[i], r.Key)
			}
		}
	})
	t.Run("template", func(t *testing.T) {
		s, _ := New(Config{Spec: Spec{Name: "t", Shards: 1, Keys: 1, Count: 2, Size: 40, Template: `<{{key}}|{{n}}|{{pad}}|{{shard}}|{{x}}>`}})
		recs := readAll(t, s, "shardId-000000000000", event.Start{Type: event.TrimHorizon})
		d := string(kinesisRecord(t, recs[1]).Kinesis.Data)
		if len(d) != 40 || !strings.HasPrefix(d, "<key-0|2|") || !strings.HasSuffix(d, "|shardId-000000000000|{{x}}>") {
			t.Fatalf("templated data %q", d)
		}
	})
	t.Run("random", func(t *testing.T) {
		s, _ := New(Config{Spec: Spec{Name: "r", Shards: 1, Keys: 1, Count: 2, Size: 33, Payload: PayloadRandom}})
		recs := readAll(t, s, "shardId-000000000000", event.Start{Type: event.TrimHorizon})
		if d := kinesisRecord(t, recs[0]).Kinesis.Data; len(d) != 33 {
			t.Fatalf("random data of %d bytes", len(d))
		}
	})
	t.Run("shards without keys", func(t *testing.T) {
		s, _ := New(Config{Spec: Spec{Name: "few", Shards: 16, Keys: 2, Count: 100}})
		total := 0
		for i := 0; i < 16; i++ {
			id := "shardId-" + strings.Repeat("0", 10) + string(rune('0'+i/10)) + string(rune('0'+i%10))
			total += len(readAll(t, s, id, event.Start{Type: event.TrimHorizon}))
		}
		if total != 100 {
			t.Fatalf("%d records, want 100", total)
		}
	})
}

func TestParseData(t *testing.T) {
	d, ok := ParseData([]byte(`{"poison":true,"n":12,"t":1000000007,"k":"key-7","pad":"x"}`))
	want := Data{Key: "key-7", N: 12, Generated: time.Unix(1, 7), Poison: true}
	if !ok || !d.Generated.Equal(want.Generated) || d.Key != want.Key || d.N != want.N || !d.Poison {
		t.Fatalf("got %+v %v", d, ok)
	}
	for _, bad := range []string{`{}`, `{"k":"a"}`, `{"k":"a","n":x}`, `{"k":"a`} {
		if _, ok := ParseData([]byte(bad)); ok {
			t.Errorf("%s parsed", bad)
		}
	}
}

// TestAppendBase64 checks the copied encodings of padding against the
// standard encoder, for padding at every alignment in the data and in the
// pool, of every length up to a few groups, with data around it or not.
func TestAppendBase64(t *testing.T) {
	s, err := New(Config{Spec: Spec{Name: "b", Shards: 1, Keys: 1, Count: 1, Size: 64}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		prefix, suffix int
	}{
		{"padding only", 0, 0},
		{"data before", 5, 0},
		{"data after", 0, 2},
		{"data around", 7, 2},
		{"data around, aligned", 6, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for at := tc.prefix; at < tc.prefix+3; at++ {
				for n := 0; n <= 13; n++ {
					for off := 0; off < 6; off++ {
						data := []byte(strings.Repeat("<", at))
						data = append(data, s.pad[off:off+n]...)
						data = append(data, strings.Repeat(">", tc.suffix)...)
						got := string(s.appendBase64([]byte("x"), data, padding{at: at, n: n, off: off}))
						if want := "x" + base64.StdEncoding.EncodeToString(data); got != want {
							t.Fatalf("at %d, n %d, off %d: got %s, want %s", at, n, off, got, want)
						}
					}
				}
			}
		})
	}
}

// TestReleasedReadsAreReused checks that a read the engine released lends
// its memory to a later read, which holds exactly its own records, and
// that a read not released is never written again.
func TestReleasedReadsAreReused(t *testing.T) {
	// 25 records in reads of 10: 10, 10, then 5.
	s, err := New(Config{Spec: Spec{Name: "r", Shards: 1, Keys: 5, Count: 25, ReadSize: 10}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := s.Open(context.Background(), event.Shard{ID: "shardId-000000000000"}, event.Start{Type: event.TrimHorizon})
	read := func(want int) mapping.ReadResult {
		t.Helper()
		res, err := r.Read(context.Background())
		if err != nil || len(res.Records) != want || cap(res.Records) != want || res.Release == nil {
			t.Fatalf("read: %d records (cap %d), release %v, %v; want %d", len(res.Records), cap(res.Records), res.Release != nil, err, want)
		}
		return res
	}
	kept := read(10)
	keptJSON := string(kept.Records[0].AppendJSON(nil))
	released := read(10)
	recs0, data0, seq0 := &released.Records[0], &released.Records[0].JSON[0], released.Records[0].Seq
	released.Release()
	next := read(5) // the smaller last read, in the larger one's memory
	if &next.Records[0] != recs0 {
		t.Error("the read after a release has records of its own; want the released read's")
	}
	if &next.Records[0].JSON[0] != data0 {
		t.Error("the read after a release has data of its own; want the released read's")
	}
	if next.Records[0].Seq == seq0 || next.Records[4].Seq != "4900000000000000000000000025" {
		t.Errorf("the reused memory holds %s..%s; want records 21 to 25", next.Records[0].Seq, next.Records[4].Seq)
	}
	if string(kept.Records[0].AppendJSON(nil)) != keptJSON {
		t.Error("a read not released was reused")
	}
}

func TestSpecWithDefaults(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string // "" for valid
	}{
		{"zero values take defaults", Spec{Name: "g"}, ""},
		{"as fast as read", Spec{Name: "g", Rate: 0}, ""},
		{"infinite rate", Spec{Name: "g", Rate: math.Inf(1)}, "rate: +Inf"},
		{"NaN rate", Spec{Name: "g", Rate: math.NaN()}, "rate: NaN"},
		{"negative shards", Spec{Name: "g", Shards: -3}, "shards: -3"},
		{"NaN poison", Spec{Name: "g", Poison: math.NaN()}, "poison: NaN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.spec.WithDefaults()
			if tc.want == "" {
				if err != nil || got.Shards != DefaultShards || got.Seed != DefaultSeed {
					t.Fatalf("WithDefaults() = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if _, err := New(Config{Spec: tc.spec}); err == nil {
				t.Fatal("New accepts what WithDefaults refuses")
			}
		})
	}
}

var eventIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkIDs checks the ids that ids gives for the records of sp: one per
// record, each matching re, none repeated, the same again for the same
// seed, and none shared with the next seed's.
func checkIDs(t *testing.T, sp Spec, re *regexp.Regexp, what string, ids func(Spec) []string) {
	t.Helper()
	a := ids(sp)
	if int64(len(a)) != sp.Count {
		t.Fatalf("%d %ss, want one per record, %d", len(a), what, sp.Count)
	}
	if b := ids(sp); !slices.Equal(a, b) {
		t.Fatalf("the same seed gave other %ss", what)
	}
	seen := map[string]bool{}
	for _, id := range a {
		if seen[id] || !re.MatchString(id) {
			t.Fatalf("%s %q repeats or does not match %s", what, id, re)
		}
		seen[id] = true
	}
	sp.Seed++
	for _, id := range ids(sp) {
		if seen[id] {
			t.Fatalf("seeds %d and %d share %s %s", sp.Seed-1, sp.Seed, what, id)
		}
	}
}

// TestDynamoDBEventIDs checks that the eventIDs of DynamoDB-shaped records
// look like DynamoDB Streams' (32 hex digits), are unique over every shard
// and record, are equal for equal seeds, and differ for other seeds.
func TestDynamoDBEventIDs(t *testing.T) {
	sp := Spec{Name: "tbl", Shards: 5, Keys: 60, Count: 3000, Seed: 9, ReadSize: 200, Shape: event.DynamoDB}
	ids := func(sp Spec) []string {
		t.Helper()
		var out []string
		for _, r := range shapedRecords(t, sp) {
			var dr events.DynamoDBEventRecord
			if err := json.Unmarshal(r.AppendJSON(nil), &dr); err != nil {
				t.Fatal(err)
			}
			out = append(out, dr.EventID)
		}
		return out
	}
	checkIDs(t, sp, eventIDRE, "eventID", ids)
	// Far-apart shards and records keep distinct ids.
	s, _ := New(Config{Spec: Spec{Name: "tbl", Shards: MaxShards, Shape: event.DynamoDB}})
	checkFarIDs(t, eventIDRE, "eventID", s.eventID, 1<<63-1)
}

// checkFarIDs checks that id gives far-apart shards and records (up to
// record maxJ) distinct ids that match re.
func checkFarIDs(t *testing.T, re *regexp.Regexp, what string, id func(idx int, j int64) string, maxJ int64) {
	t.Helper()
	far := map[string]bool{}
	for _, idx := range []int{0, 1, 2, MaxShards - 1} {
		for _, j := range []int64{0, 1, 1 << 20, 1 << 40, maxJ} {
			v := id(idx, j)
			if far[v] || !re.MatchString(v) {
				t.Fatalf("%s %s of shard %d record %d repeats or does not match %s", what, v, idx, j, re)
			}
			far[v] = true
		}
	}
}

func TestParseSeq(t *testing.T) {
	cases := []struct {
		seq   string
		shard int
		n     int64
		ok    bool
	}{
		{"4900000000000000000000000001", 0, 1, true},
		{"4900001200000000000000000345", 12, 345, true},
		{"4999999909223372036854775807", 999999, 1<<63 - 1, true},
		{"4900000009223372036854775808", 0, 0, false}, // above 2^63-1
		{"4900000010000000000000000000", 0, 0, false}, // 20 digits
		{"4900000000000000000000000000", 0, 0, false}, // records count from 1
		{"4800000000000000000000000001", 0, 0, false},
		{"490000000000000000000000001", 0, 0, false},
		{"49000000000000000000000000001", 0, 0, false},
		{"49000000000000000000000000x1", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.seq, func(t *testing.T) {
			shard, n, ok := ParseSeq(tc.seq)
			if shard != tc.shard || n != tc.n || ok != tc.ok {
				t.Fatalf("ParseSeq = %d, %d, %v; want %d, %d, %v", shard, n, ok, tc.shard, tc.n, tc.ok)
			}
		})
	}
	// Every sequence number a generator makes reads back.
	for j := int64(0); j < 3000; j += 7 {
		for _, idx := range []int{0, 3, MaxShards - 1} {
			shard, n, ok := ParseSeq(string(appendSeq(nil, idx, j)))
			if !ok || shard != idx || n != j+1 {
				t.Fatalf("record %d of shard %d reads back as %d, %d, %v", j, idx, shard, n, ok)
			}
		}
	}
}

// TestScanRecords checks that ScanRecords names every record of an event,
// of every shape and payload, by its itemIdentifier and its place, and
// that Poison tells the poison records from those alone.
func TestScanRecords(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
	}{
		{"kinesis json", Spec{Shape: event.Kinesis}},
		{"kinesis random", Spec{Shape: event.Kinesis, Payload: PayloadRandom}},
		{"kinesis template", Spec{Shape: event.Kinesis, Template: `<{{key}}|{{pad}}>`}},
		{"dynamodb json", Spec{Shape: event.DynamoDB}},
		{"dynamodb random", Spec{Shape: event.DynamoDB, Payload: PayloadRandom}},
		{"sqs json", Spec{Shape: event.SQS}},
		{"sqs random", Spec{Shape: event.SQS, Payload: PayloadRandom}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := tc.spec
			sp.Name, sp.Shards, sp.Keys, sp.Count, sp.Size, sp.Seed, sp.Poison = "s", 3, 20, 600, 80, 4, 0.05
			src, err := New(Config{Spec: sp})
			if err != nil {
				t.Fatal(err)
			}
			shards, _ := src.Shards(context.Background())
			poison := 0
			for _, sh := range shards {
				recs := readAll(t, src, sh.ID, event.Start{Type: event.TrimHorizon})
				i := 0
				err := ScanRecords(event.AppendEvent(nil, recs), func(r EventRecord) {
					want := recs[i]
					shard, n, _ := ParseSeq(want.Seq)
					if string(r.ID) != want.ID || r.Shard != shard || r.N != n || r.N < 1 {
						t.Fatalf("record %d: scanned id %s, shard %d, n %d; want %s, %d, %d", i, r.ID, r.Shard, r.N, want.ID, shard, n)
					}
					d, ok := ParseData(r.Data)
					if wantOK := sp.Payload != PayloadRandom && sp.Template == ""; ok != wantOK {
						t.Fatalf("record %d: data %q parsed %v", i, r.Data, ok)
					}
					if ok && d.Poison != src.Poison(r.Shard, r.N) {
						t.Fatalf("record %d: data says poison %v, Poison says not", i, d.Poison)
					}
					if src.Poison(r.Shard, r.N) {
						poison++
					}
					i++
				})
				if err != nil || i != len(recs) {
					t.Fatalf("%s: scanned %d of %d records: %v", sh.ID, i, len(recs), err)
				}
			}
			if poison < 10 || poison > 60 {
				t.Fatalf("%d poison records of 600 at poison=0.05", poison)
			}
		})
	}
}
