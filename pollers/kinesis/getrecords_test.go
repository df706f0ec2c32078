package kinesis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/esmd-dev/esmd/event"
)

// cannedClient returns a Kinesis client whose every call is answered with
// the status and body that the returned setter last set.
func cannedClient(t testing.TB) (*kinesis.Client, func(status int, body string)) {
	t.Helper()
	var status int
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c := kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		RetryMaxAttempts: 1,
	})
	return c, func(s int, b string) { status, body = s, b }
}

// decoded is what a reader makes of one GetRecords response.
type decoded struct {
	Records []event.Record
	Next    *string
	Behind  *int64
	ErrType string
	Fast    bool
}

// decodeBoth decodes body once through recordsProtocol and once through
// the SDK alone, then encodes the SDK's records as a reader would.
func decodeBoth(t testing.TB, c *kinesis.Client, set func(int, string), status int, body string) (fast, sdk decoded) {
	t.Helper()
	const shard = "shardId-000000000007"
	enc := event.NewKinesisEncoder("us-east-1", testARN, "arn:aws:iam::000000000000:role/r")
	in := &kinesis.GetRecordsInput{ShardIterator: aws.String("it")}
	set(status, body)
	p := &recordsProtocol{enc: enc, shard: shard}
	out, err := c.GetRecords(context.Background(), in, p.use)
	fast = result(out, err)
	fast.Records, fast.Fast = p.take()
	if err == nil && !fast.Fast {
		fast.Records = encode(enc, shard, out.Records, "")
	}
	out, err = c.GetRecords(context.Background(), in)
	sdk = result(out, err)
	if err == nil {
		sdk.Records = encode(enc, shard, out.Records, "")
	}
	return whole(fast), whole(sdk)
}

// whole puts each record's JSON in one piece, so that records compare by
// their JSON, however it is held.
func whole(d decoded) decoded {
	recs := make([]event.Record, len(d.Records))
	for i, r := range d.Records {
		recs[i] = event.Record{Key: r.Key, Seq: r.Seq, ID: r.ID, Arrival: r.Arrival, JSON: r.AppendJSON(nil), Receipt: r.Receipt}
		if r.Size() != len(recs[i].JSON) {
			panic(fmt.Sprintf("record %s: Size %d, JSON %d bytes", r.Seq, r.Size(), len(recs[i].JSON)))
		}
	}
	if d.Records == nil {
		recs = nil
	}
	d.Records = recs
	return d
}

func result(out *kinesis.GetRecordsOutput, err error) decoded {
	var d decoded
	if err != nil {
		d.ErrType = "error"
		var de *smithy.DeserializationError
		var ae smithy.APIError
		switch {
		case errors.As(err, &ae):
			d.ErrType = ae.ErrorCode()
		case errors.As(err, &de):
			d.ErrType = "deserialization"
		}
		return d
	}
	d.Next, d.Behind = out.NextShardIterator, out.MillisBehindLatest
	return d
}

func TestRecordsProtocolMatchesSDK(t *testing.T) {
	c, set := cannedClient(t)
	tests := []struct {
		name   string
		status int
		body   string
		fast   bool // the fast path decodes it
	}{
		{"usual", 200, `{"Records":[` +
			`{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ApproximateArrivalTimestamp":1.607516181562E9,"Data":"eyJvcmRlciI6MX0=","PartitionKey":"customer-1"},` +
			`{"Data":"AAEC/w==","PartitionKey":"k<2>&","SequenceNumber":"49590338271490256608559692538361571095921575989136588899","ApproximateArrivalTimestamp":1607516181.999,"EncryptionType":"NONE"}` +
			`],"NextShardIterator":"AAAA/next+iter==","MillisBehindLatest":1234}`, true},
		{"spaces and order", 200, " {\n \"MillisBehindLatest\" : 0 ,\t\"Records\" : [ { \"PartitionKey\" : \"p\" , \"Data\" : \"\" , \"SequenceNumber\" : \"1\" , \"ApproximateArrivalTimestamp\" : 1545084650.987 } ] , \"NextShardIterator\" : \"n\" }\r\n", true},
		{"empty", 200, `{"Records":[],"NextShardIterator":"n","MillisBehindLatest":0}`, true},
		{"unicode key", 200, `{"Records":[{"PartitionKey":"clé-日本","Data":"YQ==","SequenceNumber":"5","ApproximateArrivalTimestamp":1.0}],"NextShardIterator":"n"}`, true},
		{"key to escape in the event", 200, "{\"Records\":[{\"PartitionKey\":\"a\u2028b\",\"Data\":\"YQ==\",\"SequenceNumber\":\"5\",\"ApproximateArrivalTimestamp\":1.0}],\"NextShardIterator\":\"n\"}", true},
		{"shard end", 200, `{"Records":[],"NextShardIterator":null,"MillisBehindLatest":0}`, true},
		{"nulls", 200, `{"ChildShards":null,"MillisBehindLatest":null,"Records":[{"PartitionKey":"p","Data":"YQ==","SequenceNumber":"5","ApproximateArrivalTimestamp":null,"EncryptionType":null}],"NextShardIterator":"n"}`, true},
		{"no arrival time", 200, `{"Records":[{"PartitionKey":"p","Data":"YQ==","SequenceNumber":"5"}],"NextShardIterator":"n"}`, true},
		{"child shards", 200, `{"Records":[],"MillisBehindLatest":0,"ChildShards":[{"ShardId":"shardId-000000000008","ParentShards":["shardId-000000000007"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}}]}`, false},
		{"escaped key", 200, `{"Records":[{"PartitionKey":"a\"b\\u00e9","Data":"YQ==","SequenceNumber":"5","ApproximateArrivalTimestamp":1.5}],"NextShardIterator":"n"}`, false},
		{"escaped slash in data", 200, `{"Records":[{"PartitionKey":"p","Data":"AAEC\/w==","SequenceNumber":"5","ApproximateArrivalTimestamp":1.5}],"NextShardIterator":"n"}`, false},
		{"null data", 200, `{"Records":[{"PartitionKey":"p","Data":null,"SequenceNumber":"5"}],"NextShardIterator":"n"}`, false},
		{"unknown record field", 200, `{"Records":[{"PartitionKey":"p","Data":"YQ==","SequenceNumber":"5","New":1}],"NextShardIterator":"n"}`, false},
		{"bad base64", 200, `{"Records":[{"PartitionKey":"p","Data":"YQ=","SequenceNumber":"5"}],"NextShardIterator":"n"}`, false},
		{"base64 padding inside", 200, `{"Records":[{"PartitionKey":"p","Data":"YQ==YQ==","SequenceNumber":"5"}],"NextShardIterator":"n"}`, false},
		{"three base64 pads", 200, `{"Records":[{"PartitionKey":"p","Data":"Y===","SequenceNumber":"5"}],"NextShardIterator":"n"}`, false},
		{"base64 url alphabet", 200, `{"Records":[{"PartitionKey":"p","Data":"AAEC_w==","SequenceNumber":"5"}],"NextShardIterator":"n"}`, false},
		{"empty sequence number", 200, `{"Records":[{"PartitionKey":"p","Data":"YQ==","SequenceNumber":""}],"NextShardIterator":"n"}`, false},
		{"sequence number not digits", 200, `{"Records":[{"PartitionKey":"p","Data":"YQ==","SequenceNumber":"5a"}],"NextShardIterator":"n"}`, false},
		{"control character in key", 200, "{\"Records\":[{\"PartitionKey\":\"p\tq\",\"Data\":\"YQ==\",\"SequenceNumber\":\"5\"}],\"NextShardIterator\":\"n\"}", false},
		{"ends in an escape", 200, `{"Records":[{"EncryptionType":"\`, false},
		{"control character before a null", 200, "{\"Records\":[{\"PartitionKey\":\"p\",\"Data\":\"YQ==\",\"SequenceNumber\":\"5\",\"EncryptionType\":\"KMS\nnull}],\"NextShardIterator\":\"n\"}", false},
		{"records twice", 200, `{"Records":[{"PartitionKey":"a","Data":"YQ==","SequenceNumber":"1"}],"Records":[{"PartitionKey":"b","Data":"Yg==","SequenceNumber":"2"}],"NextShardIterator":"n"}`, false},
		{"truncated", 200, `{"Records":[{"PartitionKey":"p","Data":"YQ==","Seq`, false},
		{"throttled", 400, `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}`, false},
		{"expired iterator", 400, `{"__type":"ExpiredIteratorException","message":"Iterator expired"}`, false},
		{"server error", 500, `{"__type":"InternalFailure"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fast, sdk := decodeBoth(t, c, set, tc.status, tc.body)
			if fast.Fast != tc.fast {
				t.Errorf("decoded by recordsProtocol: %v, want %v", fast.Fast, tc.fast)
			}
			fast.Fast = false
			if diff := cmp.Diff(sdk, fast, cmpopts.IgnoreUnexported(event.Record{})); diff != "" {
				t.Errorf("recordsProtocol and the SDK differ (-sdk +fast):\n%s", diff)
			}
		})
	}
}

// TestRecordsProtocolRecordsDoNotShareCapacity checks that appending to one
// record's data, which lies in the response body, cannot overwrite the next
// record's, and that writing records' JSON leaves them as they were.
func TestRecordsProtocolRecordsDoNotShareCapacity(t *testing.T) {
	c, set := cannedClient(t)
	set(200, `{"Records":[`+
		`{"PartitionKey":"a","Data":"YQ==","SequenceNumber":"1","ApproximateArrivalTimestamp":1.5},`+
		`{"PartitionKey":"b","Data":"Yg==","SequenceNumber":"2","ApproximateArrivalTimestamp":1.5}],"NextShardIterator":"n"}`)
	enc := event.NewKinesisEncoder("us-east-1", testARN, "")
	p := &recordsProtocol{enc: enc, shard: "shardId-000000000000"}
	if _, err := c.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String("it")}, p.use); err != nil {
		t.Fatal(err)
	}
	recs, ok := p.take()
	if !ok || len(recs) != 2 {
		t.Fatalf("fast=%v, %d records", ok, len(recs))
	}
	second := string(recs[1].AppendJSON(nil))
	for i, r := range recs {
		if cap(r.JSON) != len(r.JSON) {
			t.Fatalf("record %d: data cap %d, len %d: an append would run into the body", i, cap(r.JSON), len(r.JSON))
		}
	}
	_ = append(recs[0].JSON, `"},{"X`...)
	// Writing one record's JSON after another's must not touch the
	// response the records keep.
	buf := recs[0].AppendJSON(nil)
	buf = recs[1].AppendJSON(buf[:0])
	if got := string(recs[1].AppendJSON(nil)); got != second || string(buf) != second {
		t.Fatalf("the second record changed: %s", got)
	}
}

// FuzzRecordsProtocol checks that, for any response body, the fast path
// either leaves the body to the SDK or reads it exactly as the SDK does.
func FuzzRecordsProtocol(f *testing.F) {
	for _, s := range []string{
		`{"Records":[{"SequenceNumber":"4959","ApproximateArrivalTimestamp":1.607516181562E9,"Data":"eyJvcmRlciI6MX0=","PartitionKey":"customer-1"}],"NextShardIterator":"it","MillisBehindLatest":12}`,
		`{"Records":[],"NextShardIterator":null}`,
		`{"Records":[{"PartitionKey":"k","Data":"","SequenceNumber":"0","EncryptionType":"KMS","ApproximateArrivalTimestamp":-1e-3}]}`,
		`{}`,
	} {
		f.Add(s)
	}
	c, set := cannedClient(f)
	f.Fuzz(func(t *testing.T, body string) {
		fast, sdk := decodeBoth(t, c, set, 200, body)
		wasFast := fast.Fast
		fast.Fast = false
		if diff := cmp.Diff(sdk, fast, cmpopts.IgnoreUnexported(event.Record{})); diff != "" {
			t.Fatalf("body %q (fast path %v): recordsProtocol and the SDK differ (-sdk +fast):\n%s", body, wasFast, diff)
		}
	})
}
