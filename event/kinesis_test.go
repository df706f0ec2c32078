package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestKinesisEncodeRoundTrip(t *testing.T) {
	enc := NewKinesisEncoder("eu-west-1", "arn:aws:kinesis:eu-west-1:123456789012:stream/orders", "arn:aws:iam::123456789012:role/esmd")
	arrival := time.UnixMilli(1545084650987)
	tests := []struct {
		name, shard, key string
		data             []byte
	}{
		{"json", "shardId-000000000006", "1", []byte(`{"a":1}`)},
		{"binary", "shardId-000000000000", "k", []byte{0, 0xff, 0x80, '\n'}},
		{"empty data", "shardId-000000000001", "k", nil},
		{"escaped key", "shardId-000000000002", "quote\" back\\slash <tag> & \u2028 \x01", []byte("x")},
		{"invalid utf8 key", "shardId-000000000003", "bad\xffkey", []byte("x")},
		{"odd shard id", "shard\"<&>", "k", []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := "49590338271490256608559692538361571095921575989136588898"
			rec := enc.Encode(tt.shard, tt.key, seq, tt.data, arrival)
			var got events.KinesisEventRecord
			if err := json.Unmarshal(rec.JSON, &got); err != nil {
				t.Fatalf("%s: %v", rec.JSON, err)
			}
			wantKey := string(bytes.ToValidUTF8([]byte(tt.key), []byte("\uFFFD")))
			if got.Kinesis.PartitionKey != wantKey || got.Kinesis.SequenceNumber != seq || !bytes.Equal(got.Kinesis.Data, tt.data) ||
				got.Kinesis.KinesisSchemaVersion != "1.0" || !got.Kinesis.ApproximateArrivalTimestamp.Round(time.Millisecond).Equal(arrival) {
				t.Errorf("kinesis = %+v", got.Kinesis)
			}
			wantShard := string(bytes.ToValidUTF8([]byte(tt.shard), []byte("\uFFFD")))
			if got.EventID != wantShard+":"+seq || got.EventName != "aws:kinesis:record" || got.EventSource != "aws:kinesis" ||
				got.EventVersion != "1.0" || got.AwsRegion != "eu-west-1" || got.InvokeIdentityArn != "arn:aws:iam::123456789012:role/esmd" ||
				got.EventSourceArn != "arn:aws:kinesis:eu-west-1:123456789012:stream/orders" {
				t.Errorf("record = %+v", got)
			}
			if rec.Key != tt.key || rec.Seq != seq || rec.ID != seq || !rec.Arrival.Equal(arrival) {
				t.Errorf("Record fields = %+v", rec)
			}
		})
	}
}

func TestKinesisEncodeMatchesLambdaSample(t *testing.T) {
	enc := NewKinesisEncoder("us-east-2", "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream", "arn:aws:iam::123456789012:role/lambda-role")
	const shardID, partitionKey, seq = "shardId-000000000006", "1", "49590338271490256608559692538361571095921575989136588898"
	data, arrival := []byte("Hello, this is a test."), time.UnixMilli(1545084650987)
	rec := enc.Encode(shardID, partitionKey, seq, data, arrival)
	want := `{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"1","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","data":"SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==","approximateArrivalTimestamp":1545084650.987},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000006:49590338271490256608559692538361571095921575989136588898","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/lambda-role","awsRegion":"us-east-2","eventSourceARN":"arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"}`
	if string(rec.JSON) != want {
		t.Fatalf("got  %s\nwant %s", rec.JSON, want)
	}
	// The same record written on demand, and with a key that JSON escapes.
	b64 := []byte(base64.StdEncoding.EncodeToString(data))
	lazy := enc.Shard(shardID).Record(partitionKey, seq, b64, arrival)
	escaped := enc.Shard(shardID).Record("<1>", seq, b64, arrival)
	wantEscaped := strings.Replace(want, `"partitionKey":"1"`, `"partitionKey":"\u003c1\u003e"`, 1)
	if got := string(escaped.AppendJSON(nil)); got != wantEscaped || escaped.Size() != len(wantEscaped) {
		t.Fatalf("escaped key: got %s (size %d)\nwant %s", got, escaped.Size(), wantEscaped)
	}
	if got := string(lazy.AppendJSON(nil)); got != want || lazy.Size() != len(want) {
		t.Fatalf("got  %s (size %d)\nwant %s", got, lazy.Size(), want)
	}
}

func TestAppendEventAndSize(t *testing.T) {
	// Records written on demand mix with records encoded when read.
	sh := NewKinesisEncoder("us-east-1", "arn:aws:kinesis:us-east-1:123456789012:stream/s", "").Shard("shardId-000000000000")
	lazy := sh.Record("k", "49", []byte("AA=="), time.UnixMilli(1545084650987))
	lazyJSON := string(lazy.AppendJSON(nil))
	recs := []Record{{JSON: []byte(`{"a":1}`)}, lazy, {JSON: []byte(`{}`)}, lazy}
	if got := string(AppendEvent(nil, recs)); got != `{"Records":[{"a":1},`+lazyJSON+`,{},`+lazyJSON+`]}` {
		t.Fatalf("AppendEvent = %s", got)
	}
	for n := 0; n <= len(recs); n++ {
		ev := AppendEvent(nil, recs[:n])
		if len(ev) != EventSize(recs[:n]) {
			t.Fatalf("n=%d: size %d, EventSize %d", n, len(ev), EventSize(recs[:n]))
		}
		var v struct{ Records []json.RawMessage }
		if err := json.Unmarshal(ev, &v); err != nil || len(v.Records) != n {
			t.Fatalf("n=%d: %s: %v", n, ev, err)
		}
		size := Overhead
		for i := 0; i < n; i++ {
			size += AddedSize(i, recs[i].Size())
		}
		if size != len(ev) {
			t.Fatalf("n=%d: AddedSize sums to %d, want %d", n, size, len(ev))
		}
	}
}

func TestCompareSeq(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "2", -1},
		{"10", "9", 1},
		{"000000000000000000001", "1", 0},
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899", -1},
		{"100000000000000000000000000000000000000", "99999999999999999999999999999999999999", 1},
		{"0", "0000", 0},
	}
	for _, tt := range tests {
		if got := CompareSeq(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareSeq(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareSeq(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareSeq(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestFailureRecordGolden(t *testing.T) {
	base := Failure{
		RequestID:              "c9b8fa9f-5a7f-4d4e-af9c-0c604cde93a5",
		FunctionARN:            "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
		Condition:              RetryAttemptsExhausted,
		ApproximateInvokeCount: 1,
		StatusCode:             200,
		ExecutedVersion:        "$LATEST",
		FunctionError:          "Unhandled",
		Timestamp:              time.Date(2019, 11, 14, 0, 38, 6, 21_000_000, time.UTC),
		FirstArrival:           time.Date(2019, 11, 14, 0, 38, 4, 835_000_000, time.UTC),
		LastArrival:            time.Date(2019, 11, 14, 0, 38, 5, 580_000_000, time.UTC),
		BatchSize:              500,
		Records:                []Record{{JSON: []byte(`{"never":"sent"}`)}},
	}
	kin := base
	kin.Source = Kinesis
	kin.ShardID = "shardId-000000000001"
	kin.StreamARN = "arn:aws:kinesis:us-east-2:123456789012:stream/mystream"
	kin.StartSeq = "49601189658422359378836298521827638475320189012309704722"
	kin.EndSeq = "49601189658422359378836298522902373528957594348623495186"
	ddb := base
	ddb.Source = DynamoDB
	ddb.ShardID = "shardId-00000001573689847184-864758bb"
	ddb.StreamARN = "arn:aws:dynamodb:us-east-2:123456789012:table/mytable/stream/2019-11-14T00:04:06.388"
	ddb.StartSeq, ddb.EndSeq = "800000000003126276362", "800000000003126276362"
	ddb.BatchSize = 1
	for _, tt := range []struct {
		name string
		f    Failure
	}{{"kinesis_failure.golden.json", kin}, {"dynamodb_failure.golden.json", ddb}} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(&tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("never")) {
				t.Fatal("failure record carries the records")
			}
			var out bytes.Buffer
			_ = json.Indent(&out, b, "", "  ")
			out.WriteByte('\n')
			path := filepath.Join("testdata", tt.name)
			if *update {
				_ = os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("got:\n%s\nwant:\n%s", out.Bytes(), want)
			}
		})
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\"", "\x00\x1f", "<&>", "\u2028\u2029", "bad\xff\xfe", "ключ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		got := appendString(nil, s)
		if !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, json.Marshal = %s", s, got, want)
		}
		raw := appendRaw([]byte("x"), s)
		if !bytes.Equal(raw[1:], want[1:len(want)-1]) {
			t.Fatalf("appendRaw(%q) = %s", s, raw[1:])
		}
	})
}

func FuzzKinesisEncode(f *testing.F) {
	f.Add("shardId-000000000000", "key", []byte("data"), int64(1545084650987))
	f.Add("s", "\xff\"", []byte{0, 1, 2}, int64(0))
	enc := NewKinesisEncoder("us-east-1", "arn:aws:kinesis:us-east-1:000000000000:stream/s", "arn:aws:iam::000000000000:role/r")
	f.Fuzz(func(t *testing.T, shard, key string, data []byte, ms int64) {
		if ms < 0 || ms > 1e13 {
			return
		}
		rec := enc.Encode(shard, key, "12345", data, time.UnixMilli(ms))
		var got events.KinesisEventRecord
		if err := json.Unmarshal(rec.JSON, &got); err != nil {
			t.Fatalf("invalid JSON %s: %v", rec.JSON, err)
		}
		if !bytes.Equal(got.Kinesis.Data, data) || got.Kinesis.ApproximateArrivalTimestamp.Round(time.Millisecond).UnixMilli() != ms {
			t.Fatalf("round trip lost data or time: %+v", got.Kinesis)
		}
	})
}

func BenchmarkKinesisEncode(b *testing.B) {
	enc := NewKinesisEncoder("us-east-1", "arn:aws:kinesis:us-east-1:000000000000:stream/s", "arn:aws:iam::000000000000:role/r")
	data := bytes.Repeat([]byte("x"), 100)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = enc.Encode("shardId-000000000000", "partition-key-1", "49590338271490256608559692538361571095921575989136588898", data, now)
	}
}

// TestAppendEpochSecondsMatchesFloatFormat checks the integer formatting
// against strconv's shortest float formatting, which it replaces.
func TestAppendEpochSecondsMatchesFloatFormat(t *testing.T) {
	check := func(ms int64) {
		t.Helper()
		want := strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
		if got := string(AppendEpochSeconds(nil, time.UnixMilli(ms))); got != want {
			t.Fatalf("ms %d: %s, want %s", ms, got, want)
		}
		if n := epochSecondsLen(time.UnixMilli(ms)); n != len(want) {
			t.Fatalf("ms %d: epochSecondsLen %d, want %d", ms, n, len(want))
		}
	}
	for _, ms := range []int64{0, 1, 10, 100, 999, 1000, 1001, 1010, 1100, 1545084650987, 1545084650900, 1545084650000,
		-1, -1000, -1545084650987, 1e15 - 1, 1e15, 1<<53 - 1, 1 << 53, 253402300799999} {
		check(ms)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for range 200000 {
		check(rng.Int64N(4102444800000)) // to 2100
		check(rng.Int64N(1e15))          // to where the float path takes over
	}
}

// TestKinesisShardRecordMatchesEncode checks that records written on
// demand from their base64 data are, byte for byte and in size, the
// records Encode writes.
func TestKinesisShardRecordMatchesEncode(t *testing.T) {
	enc := NewKinesisEncoder("us-east-1", "arn:aws:kinesis:us-east-1:123456789012:stream/s<&>", "arn:aws:iam::123456789012:role/r")
	tests := []struct {
		name, shard, key, seq string
		data                  []byte
		arrival               time.Time
	}{
		{"plain", "shardId-000000000000", "customer-1", "49590338271490256608559692538361571095921575989136588898", []byte(`{"order":1}`), time.UnixMilli(1545084650987)},
		{"whole second", "shardId-000000000001", "k", "1", []byte{0, 1, 2, 255}, time.UnixMilli(1545084650000)},
		{"tenths", "shardId-000000000001", "k", "12", []byte("x"), time.UnixMilli(1545084650100)},
		{"no data", "shardId-000000000001", "k", "13", nil, time.UnixMilli(1)},
		{"zero time", "shardId-000000000001", "k", "14", []byte("y"), time.Time{}},
		{"unicode key", "shardId-000000000002", "clé-日本", "15", []byte("z"), time.UnixMilli(1700000000123)},
		{"key to escape", "shardId-000000000002", `a"b<c>&d`, "16", []byte("z"), time.UnixMilli(1700000000123)},
		{"line separator in key", "shardId-000000000002", "a\u2028b", "17", []byte("z"), time.UnixMilli(1700000000123)},
		{"invalid UTF-8 in key", "shardId-000000000002", "a\xffb", "18", []byte("z"), time.UnixMilli(1700000000123)},
		{"shard to escape", "shard<1>", "k", "19", []byte("z"), time.UnixMilli(1700000000123)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := enc.Encode(tc.shard, tc.key, tc.seq, tc.data, tc.arrival)
			got := enc.Shard(tc.shard).Record(tc.key, tc.seq, []byte(base64.StdEncoding.EncodeToString(tc.data)), tc.arrival)
			if js := string(got.AppendJSON(nil)); js != string(want.JSON) {
				t.Fatalf("got  %s\nwant %s", js, want.JSON)
			}
			if got.Size() != len(want.JSON) {
				t.Fatalf("Size %d, want %d", got.Size(), len(want.JSON))
			}
			if got.Key != tc.key || got.Seq != tc.seq || got.ID != tc.seq || !got.Arrival.Equal(tc.arrival) {
				t.Fatalf("record %+v", got)
			}
			if ev := AppendEvent(nil, []Record{got, got}); len(ev) != EventSize([]Record{got, got}) {
				t.Fatalf("event of %d bytes, EventSize %d", len(ev), EventSize([]Record{got, got}))
			}
		})
	}
}

// An event's records carry their arrival text from one to the next when
// they arrived in the same millisecond; every record must still read its
// own time.
func TestAppendEventArrivalTimes(t *testing.T) {
	enc := NewKinesisEncoder("us-east-1", "arn:aws:kinesis:us-east-1:123456789012:stream/s", "")
	sh := enc.Shard("shardId-000000000000")
	ms := []int64{1545084650987, 1545084650987, 1545084650990, 1545084650987, 1545084651000, 1545084651000, -1500, 1e16, 1e16, 1545084650100}
	var recs []Record
	want := []byte(`{"Records":[`)
	for i, m := range ms {
		seq := strconv.Itoa(100 + i)
		at := time.UnixMilli(m)
		recs = append(recs, sh.Record("k", seq, []byte("AA=="), at))
		if i > 0 {
			want = append(want, ',')
		}
		want = append(want, enc.Encode("shardId-000000000000", "k", seq, []byte{0}, at).JSON...)
	}
	want = append(want, `]}`...)
	if got := AppendEvent(nil, recs); string(got) != string(want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestDecimalDigits(t *testing.T) {
	check := func(v uint64) {
		t.Helper()
		if got, want := decimalDigits(v), len(strconv.FormatUint(v, 10)); got != want {
			t.Fatalf("decimalDigits(%d) = %d, want %d", v, got, want)
		}
	}
	check(0)
	check(1<<64 - 1)
	for i, p := range pow10 {
		check(p)
		check(p - 1)
		check(p + 1)
		if i < 19 {
			check(p*10 - 1)
		}
	}
	for b := range 64 {
		check(1 << b)
		check(1<<b - 1)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for range 100000 {
		check(rng.Uint64() >> rng.UintN(64))
	}
}
