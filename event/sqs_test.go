package event

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

const testQueueARN = "arn:aws:sqs:us-east-2:123456789012:my-queue"

func strp(s string) *string { return &s }

func TestSQSEncodeExactShape(t *testing.T) {
	e := NewSQSEncoder("us-east-2", testQueueARN)
	cases := []struct {
		name string
		msg  SQSMessage
		want string
	}{
		{
			name: "standard, no message attributes",
			msg: SQSMessage{
				MessageID:     "059f36b4-87a3-44ab-83d2-661975830a7d",
				ReceiptHandle: "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
				Body:          "Test message.",
				MD5OfBody:     "e4e68fb7bd0e697a0ae8f1bb342846b3",
				Attributes: map[string]string{
					"ApproximateFirstReceiveTimestamp": "1545082649185",
					"SenderId":                         "AIDAIENQZJOLO23YVJ4VO",
					"SentTimestamp":                    "1545082649183",
					"ApproximateReceiveCount":          "1",
					"DeadLetterQueueSourceArn":         "dropped",
				},
			},
			want: `{"messageId":"059f36b4-87a3-44ab-83d2-661975830a7d","receiptHandle":"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",` +
				`"body":"Test message.","attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1545082649183",` +
				`"SenderId":"AIDAIENQZJOLO23YVJ4VO","ApproximateFirstReceiveTimestamp":"1545082649185"},` +
				`"messageAttributes":{},"md5OfBody":"e4e68fb7bd0e697a0ae8f1bb342846b3","eventSource":"aws:sqs",` +
				`"eventSourceARN":"` + testQueueARN + `","awsRegion":"us-east-2"}`,
		},
		{
			name: "fifo with attributes",
			msg: SQSMessage{
				MessageID:              "11d6ee51-4cc7-4302-9e22-7cd8afdaadf5",
				ReceiptHandle:          "AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw",
				Body:                   `{"a":"<b>"}`,
				MD5OfBody:              "e4e68fb7bd0e697a0ae8f1bb342846b3",
				MD5OfMessageAttributes: "00484c68...59e48f06",
				Attributes: map[string]string{
					"ApproximateReceiveCount":          "1",
					"SentTimestamp":                    "1573251510774",
					"SequenceNumber":                   "18849496460467696128",
					"MessageGroupId":                   "1",
					"SenderId":                         "AIDAIO23YVJENQZJOL4VO",
					"MessageDeduplicationId":           "1",
					"ApproximateFirstReceiveTimestamp": "1573251510774",
					"AWSTraceHeader":                   "Root=1-5f1d0f0e-1",
				},
				MessageAttributes: map[string]SQSMessageAttribute{
					"z":   {DataType: "Binary", BinaryValue: []byte{0, 1, 0xff}},
					"a":   {DataType: "String", StringValue: strp("v")},
					"num": {DataType: "Number.int", StringValue: strp("42")},
				},
			},
			want: `{"messageId":"11d6ee51-4cc7-4302-9e22-7cd8afdaadf5","receiptHandle":"AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw",` +
				`"body":"{\"a\":\"\u003cb\u003e\"}","attributes":{"ApproximateReceiveCount":"1","AWSTraceHeader":"Root=1-5f1d0f0e-1",` +
				`"SentTimestamp":"1573251510774","SequenceNumber":"18849496460467696128","MessageGroupId":"1",` +
				`"SenderId":"AIDAIO23YVJENQZJOL4VO","MessageDeduplicationId":"1","ApproximateFirstReceiveTimestamp":"1573251510774"},` +
				`"messageAttributes":{"a":{"stringValue":"v","stringListValues":[],"binaryListValues":[],"dataType":"String"},` +
				`"num":{"stringValue":"42","stringListValues":[],"binaryListValues":[],"dataType":"Number.int"},` +
				`"z":{"binaryValue":"AAH/","stringListValues":[],"binaryListValues":[],"dataType":"Binary"}},` +
				`"md5OfMessageAttributes":"00484c68...59e48f06","md5OfBody":"e4e68fb7bd0e697a0ae8f1bb342846b3",` +
				`"eventSource":"aws:sqs","eventSourceARN":"` + testQueueARN + `","awsRegion":"us-east-2"}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Encode(tc.msg)
			if got := string(r.JSON); got != tc.want {
				t.Fatalf("JSON\n got %s\nwant %s", got, tc.want)
			}
			if !json.Valid(r.JSON) {
				t.Fatal("invalid JSON")
			}
			if r.ID != tc.msg.MessageID || r.Receipt != tc.msg.ReceiptHandle ||
				r.Key != tc.msg.Attributes["MessageGroupId"] || r.Seq != tc.msg.Attributes["SequenceNumber"] {
				t.Fatalf("record ID %q Receipt %q Key %q Seq %q", r.ID, r.Receipt, r.Key, r.Seq)
			}
		})
	}
}

func TestSQSEncodeRecordFields(t *testing.T) {
	e := NewSQSEncoder("us-east-1", testQueueARN)
	r := e.Encode(SQSMessage{MessageID: "m", ReceiptHandle: "h", Attributes: map[string]string{"SentTimestamp": "1545082649183"}})
	if !r.Arrival.Equal(time.UnixMilli(1545082649183)) || r.Key != "" || r.Seq != "" {
		t.Fatalf("Arrival %v Key %q Seq %q", r.Arrival, r.Key, r.Seq)
	}
	r = e.Encode(SQSMessage{MessageID: "m", Attributes: map[string]string{"SentTimestamp": "bogus"}})
	if !r.Arrival.IsZero() {
		t.Fatalf("Arrival %v from a bad SentTimestamp, want zero", r.Arrival)
	}
}

func TestSQSEncodeRoundTrip(t *testing.T) {
	e := NewSQSEncoder("eu-west-1", "arn:aws:sqs:eu-west-1:000000000000:orders.fifo")
	msgs := []SQSMessage{
		{
			MessageID:     "id-1",
			ReceiptHandle: "rh+/=1",
			Body:          "quote \" backslash \\ <tag> & \u2028 é 日本 \x01 \n",
			MD5OfBody:     "md5-1",
			Attributes: map[string]string{
				"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000", "SenderId": "AIDA",
				"ApproximateFirstReceiveTimestamp": "1700000000001", "SequenceNumber": "18849496460467696128",
				"MessageGroupId": "group <1>", "MessageDeduplicationId": "dedup", "AWSTraceHeader": "Root=x",
			},
			MD5OfMessageAttributes: "md5-attrs",
			MessageAttributes: map[string]SQSMessageAttribute{
				"s":      {DataType: "String", StringValue: strp("ключ \"x\"")},
				"empty":  {DataType: "String", StringValue: strp("")},
				"n":      {DataType: "Number", StringValue: strp("-1.5E+10")},
				"b":      {DataType: "Binary", BinaryValue: []byte{0, 1, 2, 0xff, 0xfe}},
				"custom": {DataType: "Binary.gzip", BinaryValue: []byte("zz")},
				"lists":  {DataType: "String", StringValue: strp("x"), StringListValues: []string{"a", "b"}, BinaryListValues: [][]byte{{1}, {2, 3}}},
			},
		},
		{MessageID: "id-2", ReceiptHandle: "rh2", Body: "", MD5OfBody: "d41d8cd98f00b204e9800998ecf8427e",
			Attributes: map[string]string{"ApproximateReceiveCount": "1"}},
	}
	var recs []Record
	for _, m := range msgs {
		recs = append(recs, e.Encode(m))
	}
	payload := AppendEvent(nil, recs)
	if len(payload) != EventSize(recs) {
		t.Fatalf("EventSize %d, payload %d", EventSize(recs), len(payload))
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	var want []events.SQSMessage
	for _, m := range msgs {
		w := events.SQSMessage{
			MessageId: m.MessageID, ReceiptHandle: m.ReceiptHandle, Body: m.Body, Md5OfBody: m.MD5OfBody,
			Md5OfMessageAttributes: m.MD5OfMessageAttributes, Attributes: m.Attributes,
			MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSourceARN:    "arn:aws:sqs:eu-west-1:000000000000:orders.fifo", EventSource: "aws:sqs", AWSRegion: "eu-west-1",
		}
		for k, a := range m.MessageAttributes {
			wa := events.SQSMessageAttribute{StringValue: a.StringValue, BinaryValue: a.BinaryValue, DataType: a.DataType,
				StringListValues: a.StringListValues, BinaryListValues: a.BinaryListValues}
			if wa.StringListValues == nil {
				wa.StringListValues = []string{}
			}
			if wa.BinaryListValues == nil {
				wa.BinaryListValues = [][]byte{}
			}
			w.MessageAttributes[k] = wa
		}
		want = append(want, w)
	}
	if diff := cmp.Diff(want, ev.Records); diff != "" {
		t.Fatalf("decoded event (-want +got):\n%s", diff)
	}
	// What Lambda's own structs re-encode is what esmd sent, field for field.
	again, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(again, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &b); err != nil {
		t.Fatal(err)
	}
	// events.SQSMessage always writes md5OfMessageAttributes; drop the empty
	// one of the message without attributes before comparing.
	delete(a.(map[string]any)["Records"].([]any)[1].(map[string]any), "md5OfMessageAttributes")
	if diff := cmp.Diff(b, a); diff != "" {
		t.Fatalf("re-encoded event differs (-esmd +aws-lambda-go):\n%s", diff)
	}
}

func BenchmarkSQSEncode(b *testing.B) {
	e := NewSQSEncoder("us-east-1", testQueueARN)
	m := SQSMessage{
		MessageID: "059f36b4-87a3-44ab-83d2-661975830a7d", ReceiptHandle: "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
		Body: `{"order":12345,"items":["a","b","c"],"note":"a typical small JSON body"}`, MD5OfBody: "e4e68fb7bd0e697a0ae8f1bb342846b3",
		Attributes: map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183",
			"SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1545082649185"},
		MessageAttributes: map[string]SQSMessageAttribute{"kind": {DataType: "String", StringValue: strp("order")}},
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Encode(m)
	}
}
