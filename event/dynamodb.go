package event

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// DynamoDBRecord is one DynamoDB Streams record, as a poller read it. The
// attribute maps are already DynamoDB's typed JSON, for example
// {"Id":{"N":"101"}}; the encoder copies them as they are.
type DynamoDBRecord struct {
	EventID string
	// EventName is INSERT, MODIFY or REMOVE.
	EventName string
	// EventVersion is the stream record's eventVersion, which Lambda passes
	// on ("1.1" from DynamoDB Streams today); "1.0", the version of
	// Lambda's documented event, when empty.
	EventVersion string
	// AwsRegion overrides the encoder's region when it is set.
	AwsRegion string
	// ApproximateCreationDateTime is when the change was written to the
	// stream. It is encoded in whole epoch seconds, as DynamoDB reports it.
	ApproximateCreationDateTime time.Time
	// Keys, NewImage and OldImage are attribute maps in typed JSON; nil when
	// absent (the stream's view type decides which images there are).
	Keys     []byte
	NewImage []byte
	OldImage []byte
	// SequenceNumber is the record's decimal sequence number in its shard.
	SequenceNumber string
	SizeBytes      int64
	// StreamViewType is KEYS_ONLY, NEW_IMAGE, OLD_IMAGE or NEW_AND_OLD_IMAGES.
	StreamViewType string
	// LaneKey, when set, is the canonical JSON the record is routed to a
	// lane by (a poller sets the partition key alone); Keys when empty.
	LaneKey []byte
	// UserIdentity is set for items that DynamoDB's Time to Live deleted.
	UserIdentity *UserIdentity
}

// UserIdentity names who made a change: for TTL deletions, Type "Service"
// and PrincipalID "dynamodb.amazonaws.com".
type UserIdentity struct {
	Type        string
	PrincipalID string
}

// DynamoDBEncoder turns DynamoDB Streams records into the JSON objects of
// Lambda's DynamoDB event. One encoder serves one mapping; it is safe for
// concurrent use.
type DynamoDBEncoder struct {
	head   []byte // between eventVersion and the region's value
	region []byte // the quoted default region
	tail   []byte // from the end of "dynamodb":{...} to the end, without userIdentity
}

// NewDynamoDBEncoder returns an encoder for records of the stream streamARN
// in region.
func NewDynamoDBEncoder(region, streamARN string) *DynamoDBEncoder {
	e := &DynamoDBEncoder{}
	e.head = append(e.head, `,"eventSource":"aws:dynamodb","awsRegion":`...)
	e.region = appendString(e.region, region)
	e.tail = append(e.tail, `},"eventSourceARN":`...)
	e.tail = appendString(e.tail, streamARN)
	return e
}

// Encode returns the record's Lambda JSON, with fields in Lambda's order.
// NewImage, OldImage and userIdentity appear only when present. The
// returned Record's Key is LaneKey, or else a canonical form of the item's
// keys (compact, with member names sorted), so that changes to one item
// always go to the same lane; Seq and ID are the sequence number and
// Arrival is the creation time.
func (e *DynamoDBEncoder) Encode(r DynamoDBRecord) Record {
	n := 320 + len(r.EventID) + len(r.EventName) + len(r.EventVersion) + len(r.AwsRegion) + len(e.region) + len(e.tail) +
		len(r.Keys) + len(r.NewImage) + len(r.OldImage) + len(r.SequenceNumber) + len(r.StreamViewType)
	if r.UserIdentity != nil {
		n += 48 + len(r.UserIdentity.Type) + len(r.UserIdentity.PrincipalID)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"eventID":`...)
	b = appendString(b, r.EventID)
	b = append(b, `,"eventName":`...)
	b = appendString(b, r.EventName)
	b = append(b, `,"eventVersion":`...)
	if r.EventVersion != "" {
		b = appendString(b, r.EventVersion)
	} else {
		b = append(b, `"1.0"`...)
	}
	b = append(b, e.head...)
	if r.AwsRegion != "" {
		b = appendString(b, r.AwsRegion)
	} else {
		b = append(b, e.region...)
	}
	b = append(b, `,"dynamodb":{`...)
	sep := false
	if !r.ApproximateCreationDateTime.IsZero() {
		b = append(b, `"ApproximateCreationDateTime":`...)
		b = AppendEpochSeconds(b, r.ApproximateCreationDateTime.Truncate(time.Second))
		sep = true
	}
	b = appendMember(b, &sep, `"Keys":`, r.Keys)
	b = appendMember(b, &sep, `"NewImage":`, r.NewImage)
	b = appendMember(b, &sep, `"OldImage":`, r.OldImage)
	if sep {
		b = append(b, ',')
	}
	b = append(b, `"SequenceNumber":`...)
	b = appendString(b, r.SequenceNumber)
	b = append(b, `,"SizeBytes":`...)
	b = strconv.AppendInt(b, r.SizeBytes, 10)
	b = append(b, `,"StreamViewType":`...)
	b = appendString(b, r.StreamViewType)
	b = append(b, e.tail...)
	if u := r.UserIdentity; u != nil {
		b = append(b, `,"userIdentity":{"type":`...)
		b = appendString(b, u.Type)
		b = append(b, `,"principalId":`...)
		b = appendString(b, u.PrincipalID)
		b = append(b, '}')
	}
	b = append(b, '}')
	key := string(r.LaneKey)
	if key == "" {
		key = canonicalKey(r.Keys)
	}
	return Record{
		Key:     key,
		Seq:     r.SequenceNumber,
		ID:      r.SequenceNumber,
		Arrival: r.ApproximateCreationDateTime,
		JSON:    b,
	}
}

// appendMember appends name and the raw JSON value v when v is present,
// preceded by a comma when a member came before.
func appendMember(b []byte, sep *bool, name string, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	if *sep {
		b = append(b, ',')
	}
	*sep = true
	b = append(b, name...)
	return append(b, v...)
}

// canonicalKey returns a form of the keys' JSON that is the same for equal
// keys: compact, with the members of every object sorted by name. Keys that
// are already canonical (as pollers write them) are used as they are;
// anything else is re-encoded, and JSON that does not parse is used as is.
func canonicalKey(keys []byte) string {
	if isCanonical(keys) {
		return string(keys)
	}
	d := json.NewDecoder(bytes.NewReader(keys))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return string(keys)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return string(keys)
	}
	return string(out)
}

// maxCanonicalDepth bounds the nesting isCanonical checks; deeper keys take
// the slow path. Key attributes are scalars, so real keys nest two deep.
const maxCanonicalDepth = 16

// isCanonical reports, without allocating, that b has no whitespace outside
// strings and that the member names of each of its objects are unescaped and
// strictly ascending. It does not validate b otherwise.
func isCanonical(b []byte) bool {
	type frame struct {
		obj       bool
		expectKey bool
		last      []byte
		has       bool
	}
	var stack [maxCanonicalDepth]frame
	depth := 0
	for i := 0; i < len(b); {
		switch c := b[i]; c {
		case '{', '[':
			if depth == maxCanonicalDepth {
				return false
			}
			stack[depth] = frame{obj: c == '{', expectKey: c == '{'}
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return false
			}
			depth--
			i++
		case ',':
			if depth > 0 && stack[depth-1].obj {
				stack[depth-1].expectKey = true
			}
			i++
		case '"':
			j := i + 1
			escaped := false
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			if j >= len(b) {
				return false
			}
			if depth > 0 && stack[depth-1].obj && stack[depth-1].expectKey {
				f := &stack[depth-1]
				name := b[i+1 : j]
				if escaped || (f.has && bytes.Compare(f.last, name) >= 0) {
					return false
				}
				f.last, f.has, f.expectKey = name, true, false
			}
			i = j + 1
		case ' ', '\t', '\n', '\r':
			return false
		default:
			i++
		}
	}
	return depth == 0
}

// AppendJSONString appends s to dst as a JSON string, escaped exactly as the
// encoders of this package and encoding/json escape it. Pollers use it to
// build the typed JSON of attribute maps.
func AppendJSONString(dst []byte, s string) []byte { return appendString(dst, s) }
