package event

import (
	"time"
)

// MaxPayload is Lambda's synchronous invocation payload limit (6 MB), the
// largest event a batch may encode to.
const MaxPayload = 6 * 1024 * 1024

// Kind names the type of an event source.
type Kind string

// The source kinds esmd polls.
const (
	Kinesis  Kind = "kinesis"
	DynamoDB Kind = "dynamodb"
	SQS      Kind = "sqs"
)

// Record is one source record, already encoded as the JSON object Lambda puts
// in the event's Records array.
type Record struct {
	// Key routes the record to a lane, so that records with one key keep their
	// order: the Kinesis partition key, the DynamoDB item keys, the SQS
	// message group id.
	Key string
	// Seq is the record's sequence number in its shard (streams), or the
	// SQS sequence number of a FIFO message. It is also the itemIdentifier of
	// a stream partial batch response.
	Seq string
	// ID is the itemIdentifier that a partial batch response names: the
	// sequence number for streams, the messageId for SQS.
	ID string
	// Arrival is when the source received the record.
	Arrival time.Time
	// JSON is the record's Lambda JSON, encoded once when it was read.
	// Records of a KinesisShard write their JSON when asked and keep their
	// base64 data here instead: read a record's JSON with AppendJSON.
	JSON []byte
	// Receipt is the SQS receipt handle; empty for streams.
	Receipt string

	// kinesis, when set, writes the record's JSON when it is asked for,
	// from the fields above, with JSON holding the base64 data. See
	// KinesisShard.
	kinesis *KinesisShard
	size    int // the JSON's length, for kinesis
}

// Size is the length of the record's JSON.
func (r *Record) Size() int {
	if r.kinesis != nil {
		return r.size
	}
	return len(r.JSON)
}

// AppendJSON appends the record's JSON to dst and returns the extended
// slice. Read a record's JSON with it: the JSON field may not hold it all.
func (r *Record) AppendJSON(dst []byte) []byte {
	if r.kinesis != nil {
		return r.kinesis.append(dst, r, nil)
	}
	return append(dst, r.JSON...)
}

// Shard is one shard of a stream, with its lineage. For SQS, a virtual shard
// names one poller.
type Shard struct {
	ID string
	// Parents are the shards that must be finished before this one starts:
	// the parent of a split, or both parents of a merge.
	Parents []string
	// Closed reports that the shard takes no more writes; it ends once read.
	Closed bool
}

// Position is a checkpoint: the sequence number up to which a shard is done
// (successfully or by discard), or Finished when the shard was read to its end
// and every record was resolved.
//
// Since, with no Seq, is where a shard first opened at LATEST began, before
// any of its records was done: a restart reads on from that time
// (AT_TIMESTAMP) rather than from a new LATEST, which would skip what was put
// while esmd was down. It is a little before the LATEST the reader got.
type Position struct {
	Seq      string    `json:"seq,omitempty"`
	Finished bool      `json:"finished,omitempty"`
	Since    time.Time `json:"since,omitzero"`
}

// IsZero reports that the position names no checkpoint.
func (p Position) IsZero() bool { return p.Seq == "" && !p.Finished && p.Since.IsZero() }

// StartType is where a reader without a checkpoint starts.
type StartType string

// Starting positions, in AWS's words.
const (
	TrimHorizon   StartType = "TRIM_HORIZON"
	Latest        StartType = "LATEST"
	AtTimestamp   StartType = "AT_TIMESTAMP"
	AfterSequence StartType = "AFTER_SEQUENCE_NUMBER"
	AtSequence    StartType = "AT_SEQUENCE_NUMBER"
)

// Start tells a shard reader where to begin.
type Start struct {
	Type      StartType
	Seq       string    // for AfterSequence and AtSequence
	Timestamp time.Time // for AtTimestamp
}

// CompareSeq compares two decimal sequence numbers as numbers: it returns -1,
// 0 or +1. Kinesis and DynamoDB sequence numbers are decimal strings of up to
// 128 digits, too long for an integer type; leading zeros are ignored.
func CompareSeq(a, b string) int {
	a, b = trimZeros(a), trimZeros(b)
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func trimZeros(s string) string {
	i := 0
	for i < len(s)-1 && s[i] == '0' {
		i++
	}
	return s[i:]
}
