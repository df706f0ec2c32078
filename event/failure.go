package event

import (
	"encoding/json"
	"time"
)

// Condition says why a batch was given up.
type Condition string

// Conditions of a stream failure record. AWS documents the first two; the
// third is esmd's, for a single record that cannot fit into a 6 MB invoke
// (Kinesis records may reach 10 MiB), for which AWS documents no condition.
const (
	RetryAttemptsExhausted Condition = "RetryAttemptsExhausted"
	RecordAgeExceeded      Condition = "RecordAgeExceeded"
	PayloadTooLarge        Condition = "PayloadTooLarge"
)

// Failure describes a batch that esmd gave up on. Its JSON is the on-failure
// record Lambda sends to a stream mapping's destination.
type Failure struct {
	Source Kind

	RequestID              string
	FunctionARN            string
	Condition              Condition
	ApproximateInvokeCount int

	StatusCode      int
	ExecutedVersion string
	FunctionError   string

	Timestamp time.Time

	ShardID      string
	StreamARN    string
	StartSeq     string
	EndSeq       string
	FirstArrival time.Time
	LastArrival  time.Time
	BatchSize    int

	// MappingUUID names the mapping, for destinations that key by it (S3
	// object keys, Kafka message keys).
	MappingUUID string
	// Records are the given-up records' Lambda JSON, for destinations that
	// also carry the payload (S3).
	Records []Record
}

type requestContext struct {
	RequestID              string    `json:"requestId"`
	FunctionARN            string    `json:"functionArn"`
	Condition              Condition `json:"condition"`
	ApproximateInvokeCount int       `json:"approximateInvokeCount"`
}

type responseContext struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError"`
}

type batchInfo struct {
	ShardID      string `json:"shardId"`
	StartSeq     string `json:"startSequenceNumber"`
	EndSeq       string `json:"endSequenceNumber"`
	FirstArrival string `json:"approximateArrivalOfFirstRecord"`
	LastArrival  string `json:"approximateArrivalOfLastRecord"`
	BatchSize    int    `json:"batchSize"`
	StreamARN    string `json:"streamArn"`
}

type kinesisFailure struct {
	RequestContext  requestContext  `json:"requestContext"`
	ResponseContext responseContext `json:"responseContext"`
	Version         string          `json:"version"`
	Timestamp       string          `json:"timestamp"`
	BatchInfo       batchInfo       `json:"KinesisBatchInfo"`
}

type dynamoFailure struct {
	RequestContext  requestContext  `json:"requestContext"`
	ResponseContext responseContext `json:"responseContext"`
	Version         string          `json:"version"`
	Timestamp       string          `json:"timestamp"`
	BatchInfo       batchInfo       `json:"DDBStreamBatchInfo"`
}

// Timestamp layouts of failure records: Kinesis writes milliseconds, DynamoDB
// arrival times are whole seconds.
const (
	millisLayout  = "2006-01-02T15:04:05.000Z"
	secondsLayout = "2006-01-02T15:04:05Z"
)

// MarshalJSON encodes the failure record in AWS's shape: KinesisBatchInfo or
// DDBStreamBatchInfo by source, fields in AWS's order. It never includes the
// records themselves.
func (f *Failure) MarshalJSON() ([]byte, error) {
	rc := requestContext{f.RequestID, f.FunctionARN, f.Condition, f.ApproximateInvokeCount}
	resp := responseContext{f.StatusCode, f.ExecutedVersion, f.FunctionError}
	ts := f.Timestamp.UTC().Format(millisLayout)
	arrival := millisLayout
	if f.Source == DynamoDB {
		arrival = secondsLayout
	}
	bi := batchInfo{
		ShardID:      f.ShardID,
		StartSeq:     f.StartSeq,
		EndSeq:       f.EndSeq,
		FirstArrival: f.FirstArrival.UTC().Format(arrival),
		LastArrival:  f.LastArrival.UTC().Format(arrival),
		BatchSize:    f.BatchSize,
		StreamARN:    f.StreamARN,
	}
	if f.Source == DynamoDB {
		return json.Marshal(dynamoFailure{rc, resp, "1.0", ts, bi})
	}
	return json.Marshal(kinesisFailure{rc, resp, "1.0", ts, bi})
}
