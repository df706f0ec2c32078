package event

import (
	"encoding/base64"
	"math/bits"
	"slices"
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
	b := make([]byte, 0, e.size(shardID, partitionKey, seq, base64.StdEncoding.EncodedLen(len(data))))
	b = e.appendHead(b, partitionKey, seq)
	b = AppendBase64(b, data)
	b = e.appendTail(b, shardID, seq, arrival)
	return Record{Key: partitionKey, Seq: seq, ID: seq, Arrival: arrival, JSON: b}
}

// KinesisShard makes records of one shard that keep their data in base64,
// as GetRecords sent it, and write their Lambda JSON only when a batch is
// built. Such a record holds only what varies from record to record, in
// the memory of the response it came in, rather than a copy of its whole
// JSON. It is safe for concurrent use.
type KinesisShard struct {
	enc *KinesisEncoder
	// mid is the JSON between the arrival time and the sequence number in
	// eventID: the fields in between and the shard ID, escaped.
	mid   []byte
	fixed int // the JSON's bytes besides key, sequence number, data and arrival
}

// Shard returns a KinesisShard for the records of shardID.
func (e *KinesisEncoder) Shard(shardID string) *KinesisShard {
	k := &KinesisShard{enc: e}
	k.mid = append(appendRaw(append([]byte(nil), e.tail...), shardID), ':')
	k.fixed = len(k.append(nil, &Record{}, nil)) - len(AppendEpochSeconds(nil, time.Time{}))
	return k
}

// Record returns the record of a Kinesis record whose data is dataBase64,
// valid standard base64. The record keeps partitionKey, seq and dataBase64
// as they are: they must never change.
func (k *KinesisShard) Record(partitionKey, seq string, dataBase64 []byte, arrival time.Time) Record {
	keyLen := len(partitionKey)
	if !plainString(partitionKey) {
		keyLen = len(appendString(nil, partitionKey)) - 2 // rare: a key JSON escapes
	}
	return Record{Key: partitionKey, Seq: seq, ID: seq, Arrival: arrival, JSON: dataBase64, kinesis: k,
		size: k.fixed + keyLen + 2*len(seq) + len(dataBase64) + epochSecondsLen(arrival)}
}

// arrivalText remembers the last arrival time written, in milliseconds,
// and its text: records of a batch often arrived in the same millisecond,
// and copying the text costs less than writing it again.
type arrivalText struct {
	ms  int64
	n   int // 0: nothing remembered yet
	txt [32]byte
}

// appendArrival writes t as AppendEpochSeconds does, reusing the text of
// the last time when t is of the same millisecond. c may be nil.
func (c *arrivalText) appendArrival(dst []byte, t time.Time) []byte {
	if c == nil {
		return AppendEpochSeconds(dst, t)
	}
	ms := t.UnixMilli()
	if c.n > 0 && c.ms == ms {
		return append(dst, c.txt[:c.n]...)
	}
	start := len(dst)
	dst = AppendEpochSeconds(dst, t)
	c.ms, c.n = ms, copy(c.txt[:], dst[start:])
	return dst
}

// append writes r's JSON; last, when not nil, carries the arrival text
// from record to record of a batch.
func (k *KinesisShard) append(dst []byte, r *Record, last *arrivalText) []byte {
	dst = slices.Grow(dst, r.size)
	dst = k.enc.appendHead(dst, r.Key, r.Seq)
	dst = append(dst, r.JSON...)
	dst = append(dst, `","approximateArrivalTimestamp":`...)
	dst = last.appendArrival(dst, r.Arrival)
	dst = append(dst, k.mid...)
	dst = append(dst, r.Seq...)
	return append(dst, k.enc.rest...)
}

// epochSecondsLen is the length of AppendEpochSeconds(nil, t), counted
// rather than written where AppendEpochSeconds writes integers.
func epochSecondsLen(t time.Time) int {
	ms := t.UnixMilli()
	if ms < 0 || ms >= maxIntegerEpochMs {
		var b [32]byte
		return len(AppendEpochSeconds(b[:0], t))
	}
	n := decimalDigits(uint64(ms / 1000))
	if frac := ms % 1000; frac != 0 {
		n += 4 // the point and three digits, less the trailing zeros
		for ; frac%10 == 0; frac /= 10 {
			n--
		}
	}
	return n
}

// pow10 holds 10^0 … 10^19.
var pow10 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// decimalDigits is the number of decimal digits of v: from its bit length,
// log10(2) ≈ 1233/4096 gives the digits of the smallest number of that
// length, one short for the larger half.
func decimalDigits(v uint64) int {
	n := bits.Len64(v) * 1233 >> 12
	if v >= pow10[n] {
		n++
	}
	return max(n, 1)
}

// size is about the length of a record's Lambda JSON with base64Len bytes
// of base64 data: exact unless the key or shard ID need escaping, and at
// most a few bytes over for the arrival time.
func (e *KinesisEncoder) size(shardID, partitionKey, seq string, base64Len int) int {
	return len(kinesisHead) + len(partitionKey) + len(`,"sequenceNumber":"`) + 2*len(seq) + len(`","data":"`) + base64Len +
		len(`","approximateArrivalTimestamp":`) + 24 + len(e.tail) + len(shardID) + 1 + len(e.rest) + 2
}

const kinesisHead = `{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":`

// appendHead writes the record's JSON up to the opening of its data.
func (e *KinesisEncoder) appendHead(b []byte, partitionKey, seq string) []byte {
	b = append(b, kinesisHead...)
	b = appendString(b, partitionKey)
	b = append(b, `,"sequenceNumber":"`...)
	b = append(b, seq...) // decimal digits: nothing to escape
	return append(b, `","data":"`...)
}

// appendTail writes the record's JSON after its data.
func (e *KinesisEncoder) appendTail(b []byte, shardID, seq string, arrival time.Time) []byte {
	b = append(b, `","approximateArrivalTimestamp":`...)
	b = AppendEpochSeconds(b, arrival)
	b = append(b, e.tail...)
	b = appendRaw(b, shardID)
	b = append(b, ':')
	b = append(b, seq...)
	return append(b, e.rest...)
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

// maxIntegerEpochMs bounds the milliseconds AppendEpochSeconds writes with
// integers: below it a value has 15 digits or fewer, and its exact decimal
// is the shortest that reads back as the same float64.
const maxIntegerEpochMs = 1e15

// AppendEpochSeconds appends t as epoch seconds with up to millisecond
// precision, the form of Kinesis approximateArrivalTimestamp and DynamoDB
// ApproximateCreationDateTime (e.g. 1545084650.987): the shortest decimal
// of the float64 milliseconds/1000, as strconv's 'f' format with precision
// -1 writes it. After 1970 that is the whole seconds, then the milliseconds
// without trailing zeros, which integers write several times faster.
func AppendEpochSeconds(dst []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	if ms < 0 || ms >= maxIntegerEpochMs {
		return strconv.AppendFloat(dst, float64(ms)/1000, 'f', -1, 64)
	}
	dst = strconv.AppendInt(dst, ms/1000, 10)
	frac := ms % 1000
	if frac == 0 {
		return dst
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	dst = append(dst, '.')
	return append(dst, digits[:n]...)
}
