package event

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// FuzzSQSEncode checks that any message encodes to JSON that decodes into
// aws-lambda-go's SQSMessage with the body, id and attributes intact.
func FuzzSQSEncode(f *testing.F) {
	f.Add("id-1", "body", "k", "v", []byte{0, 1})
	f.Add("\xff", "\"quoted\" <b> \u2028", "name", "\x00", []byte(nil))
	enc := NewSQSEncoder("us-east-1", "arn:aws:sqs:us-east-1:000000000000:q")
	f.Fuzz(func(t *testing.T, id, body, attrName, attrValue string, bin []byte) {
		m := SQSMessage{
			MessageID:  id,
			Body:       body,
			Attributes: map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
			MessageAttributes: map[string]SQSMessageAttribute{
				"s": {DataType: "String", StringValue: &attrValue},
				"b": {DataType: "Binary", BinaryValue: bin},
			},
		}
		rec := enc.Encode(m)
		var got events.SQSMessage
		if err := json.Unmarshal(rec.JSON, &got); err != nil {
			t.Fatalf("invalid JSON %s: %v", rec.JSON, err)
		}
		valid := jsonValid
		if got.Body != valid(body) || got.MessageId != valid(id) || got.Attributes["SentTimestamp"] != "1545082649183" {
			t.Fatalf("round trip: %+v", got)
		}
		if sv := got.MessageAttributes["s"].StringValue; sv == nil || *sv != valid(attrValue) {
			t.Fatalf("string attribute: %+v", got.MessageAttributes["s"])
		}
		if !bytes.Equal(got.MessageAttributes["b"].BinaryValue, bin) {
			t.Fatalf("binary attribute: %v, want %v", got.MessageAttributes["b"].BinaryValue, bin)
		}
	})
}

// FuzzDynamoDBEncode checks that any record with valid typed images encodes
// to JSON that decodes into aws-lambda-go's DynamoDBEventRecord.
func FuzzDynamoDBEncode(f *testing.F) {
	f.Add("1", "INSERT", "101", "New item!", int64(1545084650))
	f.Add("\xff", "REMOVE", "\"", "\u2028<>", int64(0))
	enc := NewDynamoDBEncoder("us-east-1", "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2020")
	f.Fuzz(func(t *testing.T, eventID, name, key, text string, secs int64) {
		if secs < 0 || secs > 1e11 {
			return
		}
		keys, _ := json.Marshal(map[string]map[string]string{"Id": {"S": key}})
		img, _ := json.Marshal(map[string]map[string]string{"Id": {"S": key}, "Message": {"S": text}})
		rec := enc.Encode(DynamoDBRecord{
			EventID: eventID, EventName: name, ApproximateCreationDateTime: time.Unix(secs, 0),
			Keys: keys, NewImage: img, SequenceNumber: "111", SizeBytes: 26, StreamViewType: "NEW_IMAGE",
		})
		var got events.DynamoDBEventRecord
		if err := json.Unmarshal(rec.JSON, &got); err != nil {
			t.Fatalf("invalid JSON %s: %v", rec.JSON, err)
		}
		valid := jsonValid
		if got.EventID != valid(eventID) || got.Change.Keys["Id"].String() != valid(key) ||
			got.Change.NewImage["Message"].String() != valid(text) || got.Change.ApproximateCreationDateTime.Unix() != secs {
			t.Fatalf("round trip: %+v", got)
		}
	})
}

// jsonValid is s as encoding/json writes it: each byte of invalid UTF-8
// becomes U+FFFD.
func jsonValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
