package event

import (
	"encoding/base64"
	"strconv"
	"time"
)

// KinesisEncoder turns Kinesis records into the JSON objects of Lambda's
// Kinesis event. One encoder serves one mapping; it is safe for concurrent
// use.
type KinesisEncoder struct {
	tail []byte // the fields after "kinesis":{...}, up to eventID's shard part
	rest []byte // the fields after eventID
}

// NewKinesisEncoder returns an encoder for records of the stream streamARN in
// region, delivered on behalf of the role invokeIdentityARN.
func NewKinesisEncoder(region, streamARN, invokeIdentityARN string) *KinesisEncoder {
	e := &KinesisEncoder{}
	e.tail = append(e.tail, `},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"`...)
	e.rest = append(e.rest, `","eventName":"aws:kinesis:record","invokeIdentityArn":`...)
	e.rest = appendString(e.rest, invokeIdentityARN)
	e.rest = append(e.rest, `,"awsRegion":`...)
	e.rest = appendString(e.rest, region)
	e.rest = append(e.rest, `,"eventSourceARN":`...)
	e.rest = appendString(e.rest, streamARN)
	e.rest = append(e.rest, '}')
	return e
}

// Encode returns the record's Lambda JSON: data is base64-encoded and the
// arrival time is written in epoch seconds with a millisecond fraction.
func (e *KinesisEncoder) Encode(shardID, partitionKey, seq string, data []byte, arrival time.Time) Record {
	n := 160 + len(partitionKey) + 2*len(seq) + base64.StdEncoding.EncodedLen(len(data)) + len(e.tail) + len(shardID) + len(e.rest)
	b := make([]byte, 0, n)
	b = append(b, `{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":`...)
	b = appendString(b, partitionKey)
	b = append(b, `,"sequenceNumber":"`...)
	b = append(b, seq...) // decimal digits: nothing to escape
	b = append(b, `","data":"`...)
	b = base64.StdEncoding.AppendEncode(b, data)
	b = append(b, `","approximateArrivalTimestamp":`...)
	b = AppendEpochSeconds(b, arrival)
	b = append(b, e.tail...)
	b = appendRaw(b, shardID)
	b = append(b, ':')
	b = append(b, seq...)
	b = append(b, e.rest...)
	return Record{Key: partitionKey, Seq: seq, ID: seq, Arrival: arrival, JSON: b}
}

// appendRaw appends s escaped for use inside a JSON string that is already
// open.
func appendRaw(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			n := len(dst)
			dst = appendString(dst, s)
			// Drop the quotes appendString added around the value.
			copy(dst[n:], dst[n+1:len(dst)-1])
			return dst[:len(dst)-2]
		}
	}
	return append(dst, s...)
}

// AppendEpochSeconds appends t as epoch seconds with up to millisecond
// precision, the form of Kinesis approximateArrivalTimestamp and DynamoDB
// ApproximateCreationDateTime (e.g. 1545084650.987).
func AppendEpochSeconds(dst []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	return strconv.AppendFloat(dst, float64(ms)/1000, 'f', -1, 64)
}
