package kinesis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/esmd-dev/esmd/event"
)

// recordsProtocol decodes a successful GetRecords response straight into
// records that write Lambda's JSON from the response's own bytes, and
// leaves every other response to the client's own protocol.
//
// The SDK would decode each record into a types.Record (the data from
// base64, the key and sequence number into strings, the arrival time
// through math/big) only for the reader to encode it again, with the data
// back in base64: about half of a reader's CPU and most of its garbage. Both
// Kinesis and Lambda carry the data as standard base64, so the bytes pass
// through as they are, after a check that they are valid base64; a record
// keeps them, with its key and sequence number, in the response body, and
// writes its JSON only when a batch is built.
//
// A response in any other shape (child shards at a shard's end, a null,
// an unknown field, an escaped string, bad base64) is decoded by the client's
// protocol after all, so the SDK still reports what it would report.
//
// One recordsProtocol belongs to one pollReader and is used by one
// goroutine at a time.
type recordsProtocol struct {
	smithyhttp.ClientProtocol // the client's own, for everything else

	enc    *event.KinesisEncoder
	shard  string
	kshard *event.KinesisShard // made on first use

	spans []recordSpan // the records of one response, reused
	recs  []event.Record
	ok    bool // recs holds the last response's records
}

// use is a GetRecords option that routes the call's response through p.
func (p *recordsProtocol) use(o *kinesis.Options) {
	if o.Protocol == nil {
		return
	}
	if _, own := o.Protocol.(*recordsProtocol); !own {
		p.ClientProtocol = o.Protocol
	}
	o.Protocol = p
}

// take returns the records of the last GetRecords response and forgets
// them; ok is false when the client's protocol decoded the response, and
// the records are then in the output's Records.
func (p *recordsProtocol) take() (recs []event.Record, ok bool) {
	recs, ok = p.recs, p.ok
	p.recs, p.ok = nil, false
	return recs, ok
}

// DeserializeResponse implements smithyhttp.ClientProtocol.
func (p *recordsProtocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, types *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	p.recs, p.ok = nil, false
	o, isRecords := out.(*kinesis.GetRecordsOutput)
	if !isRecords || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
	}
	body, err := readBody(resp)
	if err != nil {
		return &smithy.DeserializationError{Err: fmt.Errorf("read GetRecords response: %w", err)}
	}
	if err := p.decode(body, o); err != nil {
		// Not the usual shape: the client's protocol decodes it, or
		// says what is wrong with it.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{bytes.NewReader(body), resp.Body}
		return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
	}
	return nil
}

// readBody reads the whole body into a buffer of its own, of the size the
// response announces: the records of a response keep its body.
func readBody(resp *smithyhttp.Response) ([]byte, error) {
	want := int(resp.ContentLength)
	if want < 0 || want > 64<<20 {
		want = 0
	}
	b := make([]byte, 0, max(want, 512))
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := resp.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// recordSpan locates one record's fields in a response body, in 32 bytes:
// a poll may hold ten thousand.
type recordSpan struct {
	key, seq, data field
	arrivalMs      int64 // noArrival when the response had none
}

// field is where a string's contents are in a response body.
type field struct{ from, to int32 }

func fieldOf(s span) field { return field{int32(s.from), int32(s.to)} }

// noArrival marks a record without an arrival time: the zero time.Time,
// as the SDK leaves it.
const noArrival = math.MinInt64

type span struct {
	from, to int
	escaped  bool // the string holds a backslash escape
}

// errUnusual sends a response to the client's protocol.
var errUnusual = errors.New("unusual GetRecords response")

// decode reads body, a GetRecords response, into p.recs and o's
// NextShardIterator and MillisBehindLatest. It returns errUnusual, having
// changed nothing that matters, for any response it does not fully know.
func (p *recordsProtocol) decode(body []byte, o *kinesis.GetRecordsOutput) error {
	sc := scanner{b: body}
	p.spans = p.spans[:0]
	var next *string
	var behind *int64
	sawRecords := false
	if len(body) > math.MaxInt32 || !sc.byte('{') {
		return errUnusual
	}
	for first := true; ; first = false {
		if sc.byte('}') {
			break
		}
		if !first && !sc.byte(',') {
			return errUnusual
		}
		key, ok := sc.str()
		if !ok || !sc.byte(':') {
			return errUnusual
		}
		switch string(body[key.from:key.to]) {
		case "Records":
			if sawRecords {
				return errUnusual
			}
			sawRecords = true
			if err := p.scanRecords(&sc); err != nil {
				return err
			}
		case "NextShardIterator":
			if sc.null() {
				continue
			}
			v, ok := sc.str()
			if !ok || v.escaped {
				return errUnusual
			}
			s := string(body[v.from:v.to])
			next = &s
		case "MillisBehindLatest":
			if sc.null() {
				continue
			}
			v, ok := sc.number()
			if !ok {
				return errUnusual
			}
			n, err := strconv.ParseInt(string(body[v.from:v.to]), 10, 64)
			if err != nil {
				return errUnusual
			}
			behind = &n
		case "ChildShards":
			// kinesis-mock sends null for none; child shards themselves,
			// at a shard's end, are the SDK's to read.
			if !sc.null() {
				return errUnusual
			}
		default:
			// Anything new: the SDK knows.
			return errUnusual
		}
	}
	if sc.skipSpace(); sc.i != len(body) {
		return errUnusual
	}
	o.NextShardIterator, o.MillisBehindLatest, o.Records, o.ChildShards = next, behind, nil, nil
	p.recs, p.ok = p.records(body), true
	return nil
}

// scanRecords reads the Records array into p.spans.
func (p *recordsProtocol) scanRecords(sc *scanner) error {
	if !sc.byte('[') {
		return errUnusual
	}
	for first := true; ; first = false {
		if sc.byte(']') {
			return nil
		}
		if !first && !sc.byte(',') {
			return errUnusual
		}
		r, err := scanRecord(sc)
		if err != nil {
			return err
		}
		p.spans = append(p.spans, r)
	}
}

// scanRecord reads one record object. Data, PartitionKey and
// SequenceNumber are required, as Kinesis always sends them.
func scanRecord(sc *scanner) (recordSpan, error) {
	r := recordSpan{arrivalMs: noArrival}
	var have int
	if !sc.byte('{') {
		return r, errUnusual
	}
	for first := true; ; first = false {
		if sc.byte('}') {
			break
		}
		if !first && !sc.byte(',') {
			return r, errUnusual
		}
		key, ok := sc.str()
		if !ok || !sc.byte(':') {
			return r, errUnusual
		}
		// An escaped string is rare enough to leave to the SDK.
		switch string(sc.b[key.from:key.to]) {
		case "Data":
			v, ok := sc.base64()
			if !ok {
				return r, errUnusual
			}
			r.data, have = fieldOf(v), have|1
		case "PartitionKey":
			v, ok := sc.str()
			if !ok || v.escaped {
				return r, errUnusual
			}
			r.key, have = fieldOf(v), have|2
		case "SequenceNumber":
			v, ok := sc.strOf(&digitByte)
			if !ok || v.to == v.from {
				return r, errUnusual
			}
			r.seq, have = fieldOf(v), have|4
		case "ApproximateArrivalTimestamp":
			if sc.null() {
				r.arrivalMs = noArrival
				continue
			}
			v, ok := sc.number()
			if !ok {
				return r, errUnusual
			}
			secs, err := strconv.ParseFloat(string(sc.b[v.from:v.to]), 64)
			if err != nil {
				return r, errUnusual
			}
			r.arrivalMs = epochMillis(secs)
		case "EncryptionType":
			// Lambda's event does not carry it.
			if sc.null() {
				continue
			}
			if _, ok := sc.str(); !ok {
				return r, errUnusual
			}
		default:
			return r, errUnusual
		}
	}
	if have != 7 {
		return r, errUnusual
	}
	return r, nil
}

// epochMillis converts epoch seconds to milliseconds exactly as the SDK
// does: the product with 1000, rounded to a float64 and truncated.
func epochMillis(f float64) int64 { return int64(f * 1000) }

// records makes the records of p.spans. They keep their key, sequence
// number and base64 data in body, which is never written again, and write
// their JSON only when a batch is built (event.KinesisShard): a poll costs
// its body and one slice of records, not a copy of each record's JSON.
func (p *recordsProtocol) records(body []byte) []event.Record {
	if len(p.spans) == 0 {
		return nil
	}
	if p.kshard == nil {
		p.kshard = p.enc.Shard(p.shard)
	}
	recs := make([]event.Record, len(p.spans))
	for i := range p.spans {
		r := &p.spans[i]
		var arrival time.Time
		if r.arrivalMs != noArrival {
			arrival = time.UnixMilli(r.arrivalMs).UTC()
		}
		recs[i] = p.kshard.Record(unsafeString(body[r.key.from:r.key.to]), unsafeString(body[r.seq.from:r.seq.to]),
			body[r.data.from:r.data.to:r.data.to], arrival)
	}
	if cap(p.spans) > 4*len(p.spans) {
		p.spans = nil // let a burst's worth go
	}
	return recs
}

// unsafeString is b as a string without a copy. The caller must never write
// to b again.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Byte classes of the string scanners: plainByte is what a JSON string
// holds as it is (not a quote, a backslash or a control character),
// base64Byte the standard base64 alphabet and its padding, digitByte
// the decimal digits.
var plainByte, base64Byte, digitByte = byteClasses()

func byteClasses() (plain, b64, digit [256]bool) {
	for c := range 256 {
		plain[c] = c >= 0x20 && c != '"' && c != '\\'
		digit[c] = c >= '0' && c <= '9'
		b64[c] = digit[c] || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '+' || c == '/' || c == '='
	}
	return plain, b64, digit
}

// scanner reads the JSON of a GetRecords response: objects, arrays,
// strings, numbers and null, which is all that response holds.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c, after any space, and reports whether it was there.
func (s *scanner) byte(c byte) bool {
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// null consumes a null and reports whether there was one.
func (s *scanner) null() bool {
	s.skipSpace()
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// str consumes a string and returns the span of its contents, between
// the quotes.
func (s *scanner) str() (span, bool) {
	if !s.byte('"') {
		return span{}, false
	}
	sp := span{from: s.i}
	b, i := s.b, s.i
	for i < len(b) {
		if plainByte[b[i]] {
			i++
			continue
		}
		switch b[i] {
		case '"':
			sp.to, s.i = i, i+1
			return sp, true
		case '\\':
			if i+1 >= len(b) {
				return span{}, false // a body that ends in an escape
			}
			sp.escaped = true
			i += 2
		default: // a control character
			return span{}, false
		}
	}
	return span{}, false
}

// strOf consumes a string whose bytes are all of class, which holds no
// quote, and returns the span of its contents.
func (s *scanner) strOf(class *[256]bool) (span, bool) {
	if !s.byte('"') {
		return span{}, false
	}
	b, i := s.b, s.i
	for i < len(b) && class[b[i]] {
		i++
	}
	if i >= len(b) || b[i] != '"' {
		return span{}, false
	}
	sp := span{from: s.i, to: i}
	s.i = i + 1
	return sp, true
}

// base64 consumes a string of standard, padded base64, as the SDK would
// accept it, and returns the span of its contents.
func (s *scanner) base64() (span, bool) {
	sp, ok := s.strOf(&base64Byte)
	if !ok {
		return span{}, false
	}
	v := s.b[sp.from:sp.to]
	data := bytes.TrimRight(v, "=")
	if len(v)%4 != 0 || len(v)-len(data) > 2 || bytes.IndexByte(data, '=') >= 0 {
		return span{}, false
	}
	return sp, true
}

// number consumes a JSON number and returns its span.
func (s *scanner) number() (span, bool) {
	s.skipSpace()
	sp := span{from: s.i}
	for s.i < len(s.b) {
		c := s.b[s.i]
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			break
		}
		s.i++
	}
	sp.to = s.i
	return sp, sp.to > sp.from
}
