// Package failuretest holds the failure records with fixed content that the
// destinations' tests and their conformance suite compare against golden
// files: one definition, so both sides check the same bytes.
package failuretest

import (
	"time"

	"github.com/esmd-dev/esmd/event"
)

// Kinesis returns a Kinesis failure with fixed content: two records, one of
// them poison, given up after three invokes. The golden files of the
// destinations and of their conformance suite are made from it.
func Kinesis() *event.Failure {
	const (
		stream = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
		shard  = "shardId-000000000001"
		seq1   = "49590338271490256608559692538361571095921575989136588898"
		seq2   = "49590338271490256608559692540925702759324208523137515618"
	)
	first := time.Date(2026, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	last := first.Add(1500 * time.Millisecond)
	enc := event.NewKinesisEncoder("us-east-1", stream, "arn:aws:iam::123456789012:role/esmd")
	return &event.Failure{
		Source:                 event.Kinesis,
		RequestID:              "c9b8fa9f-5a7f-4b2c-8b5c-1a2b3c4d5e6f",
		FunctionARN:            "arn:aws:lambda:us-east-1:123456789012:function:orders",
		Condition:              event.RetryAttemptsExhausted,
		ApproximateInvokeCount: 3,
		StatusCode:             200,
		ExecutedVersion:        "$LATEST",
		FunctionError:          "Unhandled",
		Timestamp:              time.Date(2026, 3, 4, 5, 7, 8, 123_000_000, time.UTC),
		ShardID:                shard,
		StreamARN:              stream,
		StartSeq:               seq1,
		EndSeq:                 seq2,
		FirstArrival:           first,
		LastArrival:            last,
		BatchSize:              2,
		MappingUUID:            "a1b2c3d4-0000-4000-8000-0123456789ab",
		Records: []event.Record{
			enc.Encode(shard, "customer-1", seq1, []byte(`{"order":1}`), first),
			enc.Encode(shard, "customer-2", seq2, []byte("poison \x00\xff"), last),
		},
	}
}
