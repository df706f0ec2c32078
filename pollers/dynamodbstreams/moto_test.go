package dynamodbstreams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

// motoTable creates a table with a composite key (pk string, sk number) and
// a NEW_AND_OLD_IMAGES stream on moto, and returns the clients and the
// stream's ARN.
func motoTable(t testing.TB) (*dynamodb.Client, *dynamodbstreams.Client, string) {
	t.Helper()
	ep := servers.Moto(t)
	cfg := servers.AWSConfig(ep)
	db := dynamodb.NewFromConfig(cfg)
	st := dynamodbstreams.NewFromConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := servers.UniqueName("ddbs")
	out, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: dtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: dtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: dtypes.ScalarAttributeTypeN},
		},
		KeySchema: []dtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: dtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: dtypes.KeyTypeRange},
		},
		StreamSpecification: &dtypes.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: dtypes.StreamViewTypeNewAndOldImages,
		},
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	arn := aws.ToString(out.TableDescription.LatestStreamArn)
	if arn == "" {
		t.Fatal("create table: no stream ARN")
	}
	return db, st, arn
}

func motoSource(t testing.TB, st *dynamodbstreams.Client, arn string) *Source {
	t.Helper()
	s, err := New(st, Config{StreamARN: arn, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// onlyShard returns the stream's single shard (moto makes one per stream).
func onlyShard(t testing.TB, s *Source) event.Shard {
	t.Helper()
	shards, err := s.Shards(context.Background())
	if err != nil {
		t.Fatalf("shards: %v", err)
	}
	if len(shards) != 1 || shards[0].Closed || len(shards[0].Parents) != 0 {
		t.Fatalf("shards %+v, want one open root shard", shards)
	}
	return shards[0]
}

// readN reads from start, at least once, until n records arrived, failing
// after 10 s.
func readN(t testing.TB, s *Source, start event.Start, n int) []event.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Open(ctx, onlyShard(t, s), start)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer r.Close()
	return readOpen(t, ctx, r, n)
}

// readOpen reads r, at least once, until n records arrived.
func readOpen(t testing.TB, ctx context.Context, r mapping.ShardReader, n int) []event.Record {
	t.Helper()
	var out []event.Record
	for first := true; first || len(out) < n; first = false {
		res, err := r.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d records: %v", len(out), n, err)
		}
		if res.MillisBehind != -1 {
			t.Fatalf("MillisBehind %d", res.MillisBehind)
		}
		out = append(out, res.Records...)
	}
	if len(out) != n {
		t.Fatalf("%d records, want %d", len(out), n)
	}
	return out
}

func decode(t testing.TB, recs []event.Record) []events.DynamoDBEventRecord {
	t.Helper()
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(event.AppendEvent(nil, recs), &ev); err != nil {
		t.Fatalf("decode event: %v", err)
	}
	return ev.Records
}

func key(pk string, sk int) map[string]dtypes.AttributeValue {
	return map[string]dtypes.AttributeValue{
		"pk": &dtypes.AttributeValueMemberS{Value: pk},
		"sk": &dtypes.AttributeValueMemberN{Value: strconv.Itoa(sk)},
	}
}

// richItem holds every attribute type, nested maps and lists, and strings
// that need escaping.
func richItem(pk string, sk int) map[string]dtypes.AttributeValue {
	item := key(pk, sk)
	item["s"] = &dtypes.AttributeValueMemberS{Value: "quote \" back \\ <tag> & é 日本 \u2028 tab\t"}
	item["n"] = &dtypes.AttributeValueMemberN{Value: "-12.5"}
	item["b"] = &dtypes.AttributeValueMemberB{Value: []byte{0, 1, 2, 0xfe, 0xff}}
	item["yes"] = &dtypes.AttributeValueMemberBOOL{Value: true}
	item["no"] = &dtypes.AttributeValueMemberBOOL{Value: false}
	item["nothing"] = &dtypes.AttributeValueMemberNULL{Value: true}
	item["ss"] = &dtypes.AttributeValueMemberSS{Value: []string{"a", "b\"c"}}
	item["ns"] = &dtypes.AttributeValueMemberNS{Value: []string{"1", "2.5"}}
	item["bs"] = &dtypes.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}}
	item["l"] = &dtypes.AttributeValueMemberL{Value: []dtypes.AttributeValue{
		&dtypes.AttributeValueMemberS{Value: "x"},
		&dtypes.AttributeValueMemberN{Value: "7"},
		&dtypes.AttributeValueMemberM{Value: map[string]dtypes.AttributeValue{"k": &dtypes.AttributeValueMemberBOOL{Value: true}}},
	}}
	var deep dtypes.AttributeValue = &dtypes.AttributeValueMemberS{Value: "bottom"}
	for i := range 30 {
		if i%2 == 0 {
			deep = &dtypes.AttributeValueMemberM{Value: map[string]dtypes.AttributeValue{"d": deep}}
		} else {
			deep = &dtypes.AttributeValueMemberL{Value: []dtypes.AttributeValue{deep}}
		}
	}
	item["deep"] = deep
	return item
}

// compareItem compares a decoded image with what was written, attribute by
// attribute. Sets are compared as sets: DynamoDB does not keep their order.
func compareItem(t *testing.T, path string, got map[string]events.DynamoDBAttributeValue, want map[string]dtypes.AttributeValue) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d attributes, want %d", path, len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s.%s: missing", path, name)
			continue
		}
		compareValue(t, path+"."+name, g, w)
	}
}

func compareValue(t *testing.T, path string, got events.DynamoDBAttributeValue, want dtypes.AttributeValue) {
	t.Helper()
	mismatch := func(g, w any) { t.Errorf("%s: got %v (%v), want %v", path, g, got.DataType(), w) }
	switch w := want.(type) {
	case *dtypes.AttributeValueMemberS:
		if got.DataType() != events.DataTypeString || got.String() != w.Value {
			mismatch(got, w.Value)
		}
	case *dtypes.AttributeValueMemberN:
		if got.DataType() != events.DataTypeNumber || got.Number() != w.Value {
			mismatch(got, w.Value)
		}
	case *dtypes.AttributeValueMemberB:
		if got.DataType() != events.DataTypeBinary || !reflect.DeepEqual(got.Binary(), w.Value) {
			mismatch(got, w.Value)
		}
	case *dtypes.AttributeValueMemberBOOL:
		if got.DataType() != events.DataTypeBoolean || got.Boolean() != w.Value {
			mismatch(got, w.Value)
		}
	case *dtypes.AttributeValueMemberNULL:
		if !got.IsNull() {
			mismatch(got, "NULL")
		}
	case *dtypes.AttributeValueMemberSS:
		if got.DataType() != events.DataTypeStringSet || !sameSet(got.StringSet(), w.Value) {
			mismatch(got, w.Value)
		}
	case *dtypes.AttributeValueMemberNS:
		if got.DataType() != events.DataTypeNumberSet || !sameSet(got.NumberSet(), w.Value) {
			mismatch(got, w.Value)
		}
	case *dtypes.AttributeValueMemberBS:
		var g, ws []string
		if got.DataType() == events.DataTypeBinarySet {
			for _, b := range got.BinarySet() {
				g = append(g, string(b))
			}
		}
		for _, b := range w.Value {
			ws = append(ws, string(b))
		}
		if !sameSet(g, ws) {
			mismatch(got, w.Value)
		}
	case *dtypes.AttributeValueMemberM:
		if got.DataType() != events.DataTypeMap {
			mismatch(got, "a map")
			return
		}
		compareItem(t, path, got.Map(), w.Value)
	case *dtypes.AttributeValueMemberL:
		if got.DataType() != events.DataTypeList || len(got.List()) != len(w.Value) {
			mismatch(got, "a list")
			return
		}
		for i, e := range w.Value {
			compareValue(t, path+"["+strconv.Itoa(i)+"]", got.List()[i], e)
		}
	default:
		t.Fatalf("%s: unexpected type %T", path, want)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestMotoInsertModifyRemove writes, updates and deletes items and reads
// the stream from TRIM_HORIZON: the records are Lambda's, in order, with
// images equal to what was written.
func TestMotoInsertModifyRemove(t *testing.T) {
	db, st, arn := motoTable(t)
	ctx := context.Background()
	table := tableOf(arn)
	first := richItem("item-1", 1)
	second := richItem("item-2", 2)
	for _, item := range []map[string]dtypes.AttributeValue{first, second} {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &table, Item: item}); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &table,
		Key:                       key("item-1", 1),
		UpdateExpression:          aws.String("SET s = :s, added = :a REMOVE nothing"),
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{":s": &dtypes.AttributeValueMemberS{Value: "changed"}, ":a": &dtypes.AttributeValueMemberN{Value: "42"}},
	}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &table, Key: key("item-2", 2)}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	updated := richItem("item-1", 1)
	updated["s"] = &dtypes.AttributeValueMemberS{Value: "changed"}
	updated["added"] = &dtypes.AttributeValueMemberN{Value: "42"}
	delete(updated, "nothing")

	s := motoSource(t, st, arn)
	recs := readN(t, s, event.Start{Type: event.TrimHorizon}, 4)
	got := decode(t, recs)

	want := []struct {
		name     string
		keys     map[string]dtypes.AttributeValue
		newImage map[string]dtypes.AttributeValue
		oldImage map[string]dtypes.AttributeValue
	}{
		{"INSERT", key("item-1", 1), first, nil},
		{"INSERT", key("item-2", 2), second, nil},
		{"MODIFY", key("item-1", 1), updated, first},
		{"REMOVE", key("item-2", 2), nil, second},
	}
	for i, w := range want {
		g := got[i]
		t.Run(strconv.Itoa(i)+"-"+w.name, func(t *testing.T) {
			// eventVersion is the stream record's: moto writes "1.0".
			if g.EventName != w.name || g.EventVersion != "1.0" || g.EventSource != "aws:dynamodb" ||
				g.AWSRegion != "us-east-1" || g.EventSourceArn != arn || g.EventID == "" || g.UserIdentity != nil {
				t.Errorf("header %+v", g)
			}
			if g.Change.StreamViewType != "NEW_AND_OLD_IMAGES" || g.Change.SequenceNumber != recs[i].Seq || g.Change.SizeBytes <= 0 {
				t.Errorf("dynamodb %+v", g.Change)
			}
			if age := time.Since(g.Change.ApproximateCreationDateTime.Time); age < -time.Second || age > time.Minute {
				t.Errorf("ApproximateCreationDateTime %v", g.Change.ApproximateCreationDateTime)
			}
			compareItem(t, "Keys", g.Change.Keys, w.keys)
			if w.newImage == nil && g.Change.NewImage != nil || w.oldImage == nil && g.Change.OldImage != nil {
				t.Errorf("unexpected image: new %v old %v", g.Change.NewImage != nil, g.Change.OldImage != nil)
			}
			if w.newImage != nil {
				compareItem(t, "NewImage", g.Change.NewImage, w.newImage)
			}
			if w.oldImage != nil {
				compareItem(t, "OldImage", g.Change.OldImage, w.oldImage)
			}
		})
	}
	// One partition key, one lane key (the stream's KeySchema names it);
	// per-key order follows the sequence numbers.
	if recs[0].Key != recs[2].Key || recs[1].Key != recs[3].Key || recs[0].Key == recs[1].Key {
		t.Errorf("keys %q %q %q %q", recs[0].Key, recs[1].Key, recs[2].Key, recs[3].Key)
	}
	if recs[0].Key != `{"pk":{"S":"item-1"}}` {
		t.Errorf("key %q", recs[0].Key)
	}
	for i := 1; i < len(recs); i++ {
		if event.CompareSeq(recs[i-1].Seq, recs[i].Seq) >= 0 {
			t.Errorf("sequence numbers out of order: %s then %s", recs[i-1].Seq, recs[i].Seq)
		}
	}
}

// tableOf returns the table name in a stream ARN
// (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL).
func tableOf(arn string) string {
	parts := strings.Split(arn, "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

func putN(t testing.TB, db *dynamodb.Client, table, pk string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		item := key(pk, i)
		item["v"] = &dtypes.AttributeValueMemberS{Value: "value " + strconv.Itoa(i)}
		if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
}

func sks(t *testing.T, recs []event.Record) []string {
	t.Helper()
	var out []string
	for _, r := range decode(t, recs) {
		out = append(out, r.Change.Keys["sk"].Number())
	}
	return out
}

// TestMotoLaneKeyIsPartitionKey checks that the items of one partition key
// share a lane key whatever their sort keys: Lambda keeps order per
// partition key.
func TestMotoLaneKeyIsPartitionKey(t *testing.T) {
	db, st, arn := motoTable(t)
	table := tableOf(arn)
	putN(t, db, table, "a", 1, 3)
	putN(t, db, table, "b", 1, 2)
	recs := readN(t, motoSource(t, st, arn), event.Start{Type: event.TrimHorizon}, 3)
	var got []string
	for _, r := range recs {
		got = append(got, r.Key)
	}
	want := []string{`{"pk":{"S":"a"}}`, `{"pk":{"S":"a"}}`, `{"pk":{"S":"b"}}`}
	if !slices.Equal(got, want) {
		t.Errorf("lane keys %q, want %q", got, want)
	}
}

// TestMotoLatest reads from LATEST the items written after the reader
// opened. Reopened before it returned anything, as the engine does after a
// read error, a reader starts where the first one did: the items written
// in between are read, not skipped.
func TestMotoLatest(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopened=%v", reopen), func(t *testing.T) {
			db, st, arn := motoTable(t)
			table := tableOf(arn)
			putN(t, db, table, "old", 0, 3)
			s := motoSource(t, st, arn)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			shard := onlyShard(t, s)
			r, err := s.Open(ctx, shard, event.Start{Type: event.Latest})
			if err != nil {
				t.Fatal(err)
			}
			if reopen {
				r.Close()
				putN(t, db, table, "new", 3, 5)
				if r, err = s.Open(ctx, shard, event.Start{Type: event.Latest}); err != nil {
					t.Fatal(err)
				}
			} else {
				res, err := r.Read(ctx)
				if err != nil || len(res.Records) != 0 {
					t.Fatalf("read at LATEST before writes: %d records, %v", len(res.Records), err)
				}
				putN(t, db, table, "new", 3, 5)
			}
			defer r.Close()
			got := readOpen(t, ctx, r, 2)
			if d := cmp.Diff([]string{"3", "4"}, sks(t, got)); d != "" {
				t.Fatalf("records after LATEST (-want +got):\n%s", d)
			}
		})
	}
}

// TestMotoAtTimestamp: DynamoDB Streams has no AT_TIMESTAMP, which the
// engine asks for to restart a shard pinned at LATEST. The reader reads from
// TRIM_HORIZON and skips what was created before the timestamp's second;
// records of that second itself are kept, since creation times are whole
// seconds.
func TestMotoAtTimestamp(t *testing.T) {
	db, st, arn := motoTable(t)
	table := tableOf(arn)
	putN(t, db, table, "old", 0, 3)
	s := motoSource(t, st, arn)
	old := readN(t, s, event.Start{Type: event.TrimHorizon}, 3)
	created := old[2].Arrival
	// Wait for the next second, so that the next items are created in it.
	cut := created.Truncate(time.Second).Add(time.Second)
	<-time.After(time.Until(cut) + 10*time.Millisecond)
	putN(t, db, table, "new", 3, 5)
	cases := []struct {
		name string
		at   time.Time
		want []string
	}{
		{"after the old items' second", cut, []string{"3", "4"}},
		{"within the old items' second", created.Add(time.Millisecond), []string{"0", "1", "2", "3", "4"}},
		{"before everything", created.Add(-time.Hour), []string{"0", "1", "2", "3", "4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := readN(t, s, event.Start{Type: event.AtTimestamp, Timestamp: c.at}, len(c.want))
			if d := cmp.Diff(c.want, sks(t, got)); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestMotoResumeFromSequence(t *testing.T) {
	db, st, arn := motoTable(t)
	putN(t, db, tableOf(arn), "p", 0, 5)
	s := motoSource(t, st, arn)
	all := readN(t, s, event.Start{Type: event.TrimHorizon}, 5)
	cases := []struct {
		name  string
		start event.Start
		want  []string
	}{
		{"after the second", event.Start{Type: event.AfterSequence, Seq: all[1].Seq}, []string{"2", "3", "4"}},
		{"at the second", event.Start{Type: event.AtSequence, Seq: all[1].Seq}, []string{"1", "2", "3", "4"}},
		{"after the last", event.Start{Type: event.AfterSequence, Seq: all[4].Seq}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := readN(t, s, c.start, len(c.want))
			if d := cmp.Diff(c.want, sks(t, got)); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
			for i, r := range got {
				if r.Seq != all[5-len(c.want)+i].Seq {
					t.Fatalf("record %d seq %s, want %s", i, r.Seq, all[5-len(c.want)+i].Seq)
				}
			}
		})
	}
}

func TestMotoMissingStream(t *testing.T) {
	ep := servers.Moto(t)
	st := dynamodbstreams.NewFromConfig(servers.AWSConfig(ep))
	arn := "arn:aws:dynamodb:us-east-1:000000000000:table/no-such-table/stream/2026-01-01T00:00:00.000"
	s, err := New(st, Config{StreamARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Shards(context.Background())
	if !errors.Is(err, mapping.ErrSourceGone) {
		t.Fatalf("err %v, want ErrSourceGone", err)
	}
	if want := "stream ARN " + arn + " does not exist"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err %q, want it to say %q", err, want)
	}
}
