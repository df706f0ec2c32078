package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"encoding/json"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/kinesis"
	"github.com/esmd-dev/esmd/test/servers"
)

// bigRecord is about 1 MB of random bytes (not UTF-8) under key.
func bigRecord(rng *rand.Rand, key string, n int) put {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[0], b[1] = 0xff, 0xfe // never valid UTF-8
	return put{Key: key, Data: b}
}

// TestBadInputLargeBinaryRecords sends records of 1 MB of random, non-UTF-8
// bytes (kinesalite's per-record limit) through esmd: each arrives
// byte-exact, and no invocation is over Lambda's 6 MB.
func TestBadInputLargeBinaryRecords(t *testing.T) {
	t.Parallel()
	ep := servers.Kinesalite(t)
	name := servers.UniqueName("big")
	arn := servers.CreateStream(t, ep, name, 1)
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 12
	var recs []put
	for i := 0; i < n; i++ {
		recs = append(recs, bigRecord(rng, fmt.Sprintf("k%d", i), 1024*1024-8))
	}
	for i := 0; i < n; i += 3 { // PutRecords takes 5 MB per call
		putRecords(t, ep, name, recs[i:i+3])
	}
	var mu sync.Mutex
	got := map[string][]byte{}
	maxBody := 0
	s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
		var ev events.KinesisEvent
		if err := json.Unmarshal(c.Body, &ev); err != nil {
			t.Errorf("event: %v", err)
		}
		mu.Lock()
		maxBody = max(maxBody, len(c.Body))
		for _, r := range ev.Records {
			got[r.Kinesis.PartitionKey] = r.Kinesis.Data
		}
		mu.Unlock()
		return 200, ""
	})
	dir := t.TempDir()
	startESMD(t, dir, baseYAML("    kinesis: "+ep+"\n", dir, s.srv.URL, "")+mappingYAML(arn, "StartingPosition: TRIM_HORIZON\nBatchSize: 10\nesmd: {pollInterval: 50ms}"))
	waitFor(t, time.Minute, "every big record", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	})
	mu.Lock()
	defer mu.Unlock()
	for _, r := range recs {
		if !bytes.Equal(got[r.Key], r.Data) {
			t.Errorf("record %s arrived changed", r.Key)
		}
	}
	if maxBody > event.MaxPayload {
		t.Errorf("an invocation carried %d bytes, over %d", maxBody, event.MaxPayload)
	}
	result(t, "bad input: 1 MB non-UTF-8 records", 1, n, 0, 0, fmt.Sprintf("%d invocations, largest %d bytes", s.ncalls(), maxBody))
}

// failSink is a mapping.Destination that keeps what it is sent.
type failSink struct {
	mu sync.Mutex
	fs []event.Failure
}

func (d *failSink) Send(_ context.Context, f *event.Failure) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fs = append(d.fs, *f)
	return nil
}

func (d *failSink) all() []event.Failure {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]event.Failure(nil), d.fs...)
}

// countInvoker succeeds and counts the records it was sent.
type countInvoker struct {
	mu   sync.Mutex
	seen int
}

func (c *countInvoker) Invoke(_ context.Context, req *mapping.Request) (*mapping.Response, error) {
	var ev struct{ Records []json.RawMessage }
	if err := json.Unmarshal(req.Payload, &ev); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.seen += len(ev.Records)
	c.mu.Unlock()
	return &mapping.Response{StatusCode: 200, Body: []byte("{}")}, nil
}

// memCheckpoints is an in-memory mapping.Checkpointer.
type memCheckpoints struct {
	mu sync.Mutex
	m  map[string]event.Position
}

func (m *memCheckpoints) Load(_ context.Context, mp, shard string) (event.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[mp+"/"+shard], nil
}

func (m *memCheckpoints) Save(_ context.Context, mp, shard string, p event.Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[mp+"/"+shard] = p
	return nil
}

// TestBadInputPayloadTooLarge checks the path of a record that can never
// fit an invocation. Kinesis servers (kinesalite, kinesis-mock, AWS) refuse
// records over 1 MB, so a 10 MB record cannot be written; instead this runs
// the engine in process with the real Kinesis poller against kinesalite and
// the invoke limit lowered to 1 MB, under which a 1 MB record (1.33 MB once
// base64-encoded) can never fit. It goes to the on-failure destination with
// the condition PayloadTooLarge, and the records around it are delivered.
func TestBadInputPayloadTooLarge(t *testing.T) {
	t.Parallel()
	ep := servers.Kinesalite(t)
	name := servers.UniqueName("toolarge")
	arn := servers.CreateStream(t, ep, name, 1)
	rng := rand.New(rand.NewPCG(9, 9))
	putRecords(t, ep, name, []put{
		{Key: "a", Data: []byte("before")},
		bigRecord(rng, "big", 1024*1024-8),
		{Key: "b", Data: []byte("after")},
	})
	src, err := kinesis.New(servers.KinesisClient(ep), kinesis.Config{
		StreamARN:    arn,
		PollInterval: 50 * time.Millisecond,
		Encoder:      event.NewKinesisEncoder("us-east-1", arn, "arn:aws:iam::000000000000:role/esmd"),
	})
	if err != nil {
		t.Fatal(err)
	}
	dest := &failSink{}
	inv := &countInvoker{}
	r, err := mapping.NewRunner(mapping.Config{
		Name: "toolarge", Kind: event.Kinesis, SourceARN: arn,
		FunctionARN: "arn:aws:lambda:us-east-1:000000000000:function:f",
		BatchSize:   10, MaxPayload: 1024 * 1024, MaxRecordAge: -1, MaxRetryAttempts: -1,
		StartingPosition: event.Start{Type: event.TrimHorizon},
	}, mapping.Deps{Source: src, Invoker: inv, Destination: dest, Checkpointer: &memCheckpoints{m: map[string]event.Position{}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, 30*time.Second, "the failure record and the small records", func() bool {
		inv.mu.Lock()
		defer inv.mu.Unlock()
		return len(dest.all()) == 1 && inv.seen == 2
	})
	f := dest.all()[0]
	if f.Condition != event.PayloadTooLarge || f.BatchSize != 1 {
		t.Fatalf("failure = condition %s, batch size %d; want PayloadTooLarge for the one record", f.Condition, f.BatchSize)
	}
	result(t, "bad input: record over the invoke limit (in-process, limit lowered to 1 MB)", 1, 3, 0, 0, "PayloadTooLarge to the destination, neighbours delivered")
}

// nested builds a map attribute nested depth levels deep holding every
// attribute type at the bottom.
func nested(depth int) dtypes.AttributeValue {
	var v dtypes.AttributeValue = &dtypes.AttributeValueMemberM{Value: allTypes()}
	for i := 1; i < depth; i++ {
		v = &dtypes.AttributeValueMemberL{Value: []dtypes.AttributeValue{v}}
	}
	return v
}

func allTypes() map[string]dtypes.AttributeValue {
	return map[string]dtypes.AttributeValue{
		"s":    &dtypes.AttributeValueMemberS{Value: "ключ <&> \u2028 \"q\""},
		"n":    &dtypes.AttributeValueMemberN{Value: "-12345678901234567890.0123456789"},
		"b":    &dtypes.AttributeValueMemberB{Value: []byte{0, 0xff, 0xfe, 1}},
		"bool": &dtypes.AttributeValueMemberBOOL{Value: true},
		"null": &dtypes.AttributeValueMemberNULL{Value: true},
		"ss":   &dtypes.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"ns":   &dtypes.AttributeValueMemberNS{Value: []string{"1", "2.5"}},
		"bs":   &dtypes.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}},
		"l":    &dtypes.AttributeValueMemberL{Value: []dtypes.AttributeValue{&dtypes.AttributeValueMemberS{Value: "x"}, &dtypes.AttributeValueMemberN{Value: "1"}}},
		"m":    &dtypes.AttributeValueMemberM{Value: map[string]dtypes.AttributeValue{"k": &dtypes.AttributeValueMemberBOOL{Value: false}}},
	}
}

// TestBadInputDynamoDBEveryType writes an item with every attribute type,
// nested 32 levels deep (DynamoDB's limit), through moto: esmd's event
// carries it intact.
func TestBadInputDynamoDBEveryType(t *testing.T) {
	// Not parallel: it runs before the parallel crash tests load moto with
	// thousands of writes, under which moto has taken minutes to answer
	// DescribeTable.
	moto := servers.Moto(t)
	table := servers.UniqueName("types")
	arn := servers.CreateTable(t, moto, table)
	item := allTypes()
	item["pk"] = &dtypes.AttributeValueMemberS{Value: "item-1"}
	item["deep"] = nested(32)
	if _, err := servers.DynamoDBClient(moto).PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var img map[string]events.DynamoDBAttributeValue
	s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
		var ev events.DynamoDBEvent
		if err := json.Unmarshal(c.Body, &ev); err != nil {
			t.Errorf("event: %v", err)
			return 200, ""
		}
		mu.Lock()
		img = ev.Records[0].Change.NewImage
		mu.Unlock()
		return 200, ""
	})
	dir := t.TempDir()
	startESMD(t, dir, baseYAML(fmt.Sprintf("    dynamodb: %s\n    dynamodbstreams: %s\n", moto, moto), dir, s.srv.URL, "")+
		mappingYAML(arn, "StartingPosition: TRIM_HORIZON\nesmd: {pollInterval: 50ms}"))
	// moto serves the parallel crash tests' thousands of writes too: its
	// DescribeStream once took 29 s here. The test is about the item's
	// types, not speed.
	waitFor(t, 2*time.Minute, "the item", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return img != nil
	})
	mu.Lock()
	defer mu.Unlock()
	// Walk down the 31 lists to the map at the bottom.
	v := img["deep"]
	depth := 1
	for v.DataType() == events.DataTypeList {
		v = v.List()[0]
		depth++
	}
	if depth != 32 || v.DataType() != events.DataTypeMap {
		t.Fatalf("deep attribute is %d levels, ending in type %d; want 32 ending in a map", depth, v.DataType())
	}
	for _, m := range []map[string]events.DynamoDBAttributeValue{img, v.Map()} {
		if m["s"].String() != "ключ <&> \u2028 \"q\"" || m["n"].Number() != "-12345678901234567890.0123456789" ||
			!bytes.Equal(m["b"].Binary(), []byte{0, 0xff, 0xfe, 1}) || !m["bool"].Boolean() || !m["null"].IsNull() ||
			len(m["ss"].StringSet()) != 2 || len(m["ns"].NumberSet()) != 2 || len(m["bs"].BinarySet()) != 2 ||
			len(m["l"].List()) != 2 || m["m"].Map()["k"].Boolean() {
			t.Fatalf("attributes changed on the way: %v", m)
		}
	}
	result(t, "bad input: DynamoDB item, every type, 32 levels", 1, 1, 0, 0, "intact")
}
