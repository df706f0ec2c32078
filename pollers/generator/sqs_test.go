package generator

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/event"
)

var genTime = regexp.MustCompile(`"t":[0-9]+`)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// sqsRecords reads every record of an SQS-shaped spec, shard by shard.
func sqsRecords(t *testing.T, sp Spec) []event.Record {
	t.Helper()
	sp.Shape = event.SQS
	return shapedRecords(t, sp)
}

// shapedRecords reads every record of sp in its own shape, shard by shard.
func shapedRecords(t *testing.T, sp Spec) []event.Record {
	t.Helper()
	s, err := New(Config{Spec: sp})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind() != sp.Shape {
		t.Fatalf("Kind() = %q, want %q", s.Kind(), sp.Shape)
	}
	shards, _ := s.Shards(context.Background())
	var out []event.Record
	for _, sh := range shards {
		out = append(out, readAll(t, s, sh.ID, event.Start{Type: event.TrimHorizon})...)
	}
	return out
}

func TestSQSShape(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		// body returns the body a record of data d must have.
		body func(d []byte) string
	}{
		{"json", Spec{Name: "orders", Shards: 2, Keys: 5, Count: 40, Size: 80, Seed: 7, Poison: 0.2}, nil},
		{"template", Spec{Name: "orders", Shards: 2, Keys: 5, Count: 40, Size: 60, Seed: 7, Template: `{"k":"{{key}}","n":{{n}},"s":"{{seq}}","p":"{{pad}}"}`}, nil},
		{"random", Spec{Name: "orders", Shards: 2, Keys: 5, Count: 40, Size: 33, Seed: 7, Payload: PayloadRandom},
			func(d []byte) string { return base64.StdEncoding.EncodeToString(d) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs := sqsRecords(t, tc.spec)
			// The same spec in Kinesis shape gives the data each body
			// must hold.
			kin := tc.spec
			kin.Shape = event.Kinesis
			krecs := shapedRecords(t, kin)
			var kdata [][]byte
			for _, r := range krecs {
				// Generation times differ between the two runs.
				kdata = append(kdata, genTime.ReplaceAll(kinesisRecord(t, r).Kinesis.Data, []byte(`"t":0`)))
			}
			if len(recs) != 40 || len(kdata) != 40 {
				t.Fatalf("%d SQS and %d Kinesis records, want 40", len(recs), len(kdata))
			}
			ids := map[string]bool{}
			for i, r := range recs {
				var keys map[string]json.RawMessage
				if err := json.Unmarshal(r.AppendJSON(nil), &keys); err != nil {
					t.Fatalf("record %s: %v", r.AppendJSON(nil), err)
				}
				gotKeys := slices.Sorted(maps.Keys(keys))
				wantKeys := []string{"attributes", "awsRegion", "body", "eventSource", "eventSourceARN", "md5OfBody", "messageAttributes", "messageId", "receiptHandle"}
				if !slices.Equal(gotKeys, wantKeys) {
					t.Fatalf("record keys %v, want %v", gotKeys, wantKeys)
				}
				var m events.SQSMessage
				if err := json.Unmarshal(r.AppendJSON(nil), &m); err != nil {
					t.Fatal(err)
				}
				body := string(kdata[i])
				if tc.body != nil {
					body = tc.body(kdata[i])
				}
				sum := md5.Sum([]byte(m.Body))
				m.Body = genTime.ReplaceAllString(m.Body, `"t":0`)
				ms := strconv.FormatInt(r.Arrival.UnixMilli(), 10)
				want := events.SQSMessage{
					MessageId:     m.MessageId,
					ReceiptHandle: m.ReceiptHandle,
					Body:          body,
					Md5OfBody:     hex.EncodeToString(sum[:]),
					Attributes: map[string]string{
						"ApproximateReceiveCount":          "1",
						"SentTimestamp":                    ms,
						"SenderId":                         "AIDAESMDGENERATOR",
						"ApproximateFirstReceiveTimestamp": ms,
					},
					MessageAttributes: map[string]events.SQSMessageAttribute{},
					EventSourceARN:    "arn:aws:sqs:us-east-1:000000000000:orders",
					EventSource:       "aws:sqs",
					AWSRegion:         "us-east-1",
				}
				if diff := cmp.Diff(want, m); diff != "" {
					t.Fatalf("record %d (-want +got):\n%s", i, diff)
				}
				if !uuidRE.MatchString(m.MessageId) || m.ReceiptHandle == "" {
					t.Fatalf("messageId %q, receiptHandle %q", m.MessageId, m.ReceiptHandle)
				}
				if ids[m.MessageId] {
					t.Fatalf("messageId %s twice", m.MessageId)
				}
				ids[m.MessageId] = true
				if r.ID != m.MessageId || r.Seq != krecs[i].Seq || r.Key != krecs[i].Key || r.Receipt != "" {
					t.Fatalf("record %d: ID %q Seq %q Key %q Receipt %q, want ID %q, Seq %q, Key %q and no receipt",
						i, r.ID, r.Seq, r.Key, r.Receipt, m.MessageId, krecs[i].Seq, krecs[i].Key)
				}
				if time.Since(r.Arrival) > time.Minute || r.Arrival.After(time.Now()) {
					t.Fatalf("arrival %v", r.Arrival)
				}
			}
		})
	}
}

// TestSQSMessageIDs checks that message ids are unique over shards and
// records, equal for equal seeds and different for other seeds.
func TestSQSMessageIDs(t *testing.T) {
	sp := Spec{Name: "q", Shards: 7, Keys: 50, Count: 5000, Seed: 11, ReadSize: 300}
	ids := func(sp Spec) []string {
		var out []string
		for _, r := range sqsRecords(t, sp) {
			out = append(out, r.ID)
		}
		return out
	}
	checkIDs(t, sp, uuidRE, "message id", ids)
	// A reader resumed after a checkpoint gives the same ids as the
	// first one did.
	sp.Seed = 11
	sp.Shape = event.SQS
	s, _ := New(Config{Spec: sp})
	all := readAll(t, s, "shardId-000000000003", event.Start{Type: event.TrimHorizon})
	rest := readAll(t, s, "shardId-000000000003", event.Start{Type: event.AfterSequence, Seq: all[99].Seq})
	if len(all) <= 100 || len(rest) != len(all)-100 {
		t.Fatalf("resumed after record 100 of %d: %d records", len(all), len(rest))
	}
	for i, r := range rest {
		if r.ID != all[100+i].ID || !bytes.Equal(r.JSON[:60], all[100+i].JSON[:60]) {
			t.Fatalf("resumed record %d: id %s, want %s", i, r.ID, all[100+i].ID)
		}
	}
	// Ids of far-apart records and shards stay distinct (the bijections
	// keep every bit).
	s2, _ := New(Config{Spec: Spec{Name: "q", Shards: MaxShards, Shape: event.SQS}})
	checkFarIDs(t, uuidRE, "message id", s2.messageID, 1<<62-1)
}

func TestSQSScanEvent(t *testing.T) {
	recs := sqsRecords(t, Spec{Name: "q", Shards: 1, Keys: 3, Count: 10, Seed: 2})
	var got []string
	if err := ScanEvent(event.AppendEvent(nil, recs), func(d []byte) {
		pd, ok := ParseData(d)
		if !ok {
			t.Fatalf("data %s", d)
		}
		got = append(got, pd.Key+"#"+strconv.FormatInt(pd.N, 10))
	}); err != nil {
		t.Fatal(err)
	}
	var want []string
	var ns []int
	perKey := map[string]int{}
	for _, r := range recs {
		perKey[r.Key]++
		ns = append(ns, perKey[r.Key])
		want = append(want, r.Key+"#"+strconv.Itoa(perKey[r.Key]))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scanned %v, want %v", got, want)
	}
	if d := ParseDataOf(recs[3]); d.Key != recs[3].Key || d.N != int64(ns[3]) {
		t.Fatalf("ParseDataOf = %+v", d)
	}
}

func TestSQSStreamARN(t *testing.T) {
	for _, tc := range []struct {
		shape event.Kind
		want  string
	}{
		{event.Kinesis, "arn:aws:kinesis:us-east-1:000000000000:stream/n"},
		{event.DynamoDB, "arn:aws:dynamodb:us-east-1:000000000000:table/n/stream/1970-01-01T00:00:00.000"},
		{event.SQS, "arn:aws:sqs:us-east-1:000000000000:n"},
	} {
		t.Run(string(tc.shape), func(t *testing.T) {
			if got := (Spec{Name: "n", Shape: tc.shape}).StreamARN(); got != tc.want {
				t.Fatalf("StreamARN() = %q, want %q", got, tc.want)
			}
		})
	}
}
