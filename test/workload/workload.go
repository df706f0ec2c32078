// Package workload writes keyed records to the test servers' streams and
// tables, and reads events of any source back into a common shape, for the
// end-to-end and chaos suites: the same workload and the same reading in
// both, written once.
package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/esmd-dev/esmd/test/servers"
)

// Put is one record to write: a partition key (the item's pk) and data.
type Put struct {
	Key  string
	Data []byte
}

// Keyed builds n records over keys keys, round robin, each carrying
// "key-K:N" where N counts the records of key K, so that a reader can check
// per-key order and find duplicates.
func Keyed(keys, n int) []Put {
	recs := make([]Put, 0, n)
	next := make([]int, keys)
	for i := 0; i < n; i++ {
		k := i % keys
		recs = append(recs, Put{Key: fmt.Sprintf("key-%d", k), Data: []byte(fmt.Sprintf("key-%d:%d", k, next[k]))})
		next[k]++
	}
	return recs
}

// PutRecords writes recs to the Kinesis stream in order, in PutRecords
// calls of up to 500, failing t on any failed entry, and returns each
// record's shard and sequence number.
func PutRecords(t testing.TB, endpoint, stream string, recs []Put) []ktypes.PutRecordsResultEntry {
	t.Helper()
	kc := servers.KinesisClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := make([]ktypes.PutRecordsResultEntry, 0, len(recs))
	for i := 0; i < len(recs); i += 500 {
		chunk := recs[i:min(i+500, len(recs))]
		entries := make([]ktypes.PutRecordsRequestEntry, len(chunk))
		for j, r := range chunk {
			entries[j] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(r.Key), Data: r.Data}
		}
		res, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatalf("put records: %v", err)
		}
		if n := aws.ToInt32(res.FailedRecordCount); n > 0 {
			t.Fatalf("put records: %d failed", n)
		}
		logRetried(t, res.ResultMetadata, len(chunk), string(chunk[0].Data))
		out = append(out, res.Records...)
	}
	return out
}

// PutItems writes each record as the item {pk: key, data: data}, in order,
// in BatchWriteItem calls that never hold one key twice.
func PutItems(t testing.TB, endpoint, table string, recs []Put) {
	t.Helper()
	c := servers.DynamoDBClient(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	flush := func(reqs []dtypes.WriteRequest) {
		for len(reqs) > 0 {
			out, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{table: reqs}})
			if err != nil {
				t.Fatalf("batch write: %v", err)
			}
			logRetried(t, out.ResultMetadata, len(reqs), reqs[0].PutRequest.Item["data"].(*dtypes.AttributeValueMemberS).Value)
			reqs = out.UnprocessedItems[table]
		}
	}
	var batch []dtypes.WriteRequest
	keys := map[string]bool{}
	for _, r := range recs {
		if len(batch) == 25 || keys[r.Key] {
			flush(batch)
			batch, keys = nil, map[string]bool{}
		}
		keys[r.Key] = true
		batch = append(batch, dtypes.WriteRequest{PutRequest: &dtypes.PutRequest{Item: map[string]dtypes.AttributeValue{
			"pk":   &dtypes.AttributeValueMemberS{Value: r.Key},
			"data": &dtypes.AttributeValueMemberS{Value: string(r.Data)},
		}}})
	}
	flush(batch)
}

// logRetried says when the SDK sent a write more than once: an attempt
// that failed may still have been applied, and the stream then holds some
// of its records twice.
func logRetried(t testing.TB, md middleware.Metadata, n int, first string) {
	t.Helper()
	if res, ok := retry.GetAttemptResults(md); ok && len(res.Results) > 1 {
		t.Logf("a write of %d records from %q took %d attempts; the stream may hold some of them twice", n, first, len(res.Results))
	}
}

// Rec is one record of any source, reduced to its key (partition key, the
// item's pk, the message group), sequence number (SQS: message id) and data
// (Kinesis data, the item's "data" attribute, the SQS body).
type Rec struct {
	Key, Seq, Data string
	// Shard is the Kinesis shard (from the eventID); empty for the other
	// sources.
	Shard string
}

// Decode reduces a Lambda event of any source to Recs.
func Decode(body []byte) ([]Rec, error) {
	var ev struct{ Records []json.RawMessage }
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	out := make([]Rec, 0, len(ev.Records))
	for _, raw := range ev.Records {
		var head struct {
			Lower string `json:"eventSource"`
			Upper string `json:"EventSource"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, err
		}
		switch head.Lower + head.Upper {
		case "aws:kinesis":
			var r events.KinesisEventRecord
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, err
			}
			shard, _, _ := strings.Cut(r.EventID, ":")
			out = append(out, Rec{Key: r.Kinesis.PartitionKey, Seq: r.Kinesis.SequenceNumber, Data: string(r.Kinesis.Data), Shard: shard})
		case "aws:dynamodb":
			var r events.DynamoDBEventRecord
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, err
			}
			img := r.Change.NewImage
			if img == nil {
				img = r.Change.OldImage
			}
			var data string
			if v, ok := img["data"]; ok && v.DataType() == events.DataTypeString {
				data = v.String()
			}
			out = append(out, Rec{Key: r.Change.Keys["pk"].String(), Seq: r.Change.SequenceNumber, Data: data})
		case "aws:sqs":
			var r events.SQSMessage
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, err
			}
			out = append(out, Rec{Key: r.Attributes["MessageGroupId"], Seq: r.MessageId, Data: r.Body})
		default:
			return nil, fmt.Errorf("unknown eventSource %q", head.Lower+head.Upper)
		}
	}
	return out, nil
}
