package dynamodbstreams

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/esmd-dev/esmd/event"
)

// benchItems is how many items BenchmarkReadMoto writes before it reads.
const benchItems = 2000

// BenchmarkReadMoto reads benchItems pre-written records from moto, from
// TRIM_HORIZON, through the Source (GetRecords, conversion and Lambda
// encoding) and through a raw GetRecords loop in the same run, and reports
// both rates and their ratio.
func BenchmarkReadMoto(b *testing.B) {
	db, st, arn := motoTable(b)
	ctx := context.Background()
	table := tableOf(arn)
	for i := 0; i < benchItems; i += 25 {
		var reqs []dtypes.WriteRequest
		for j := i; j < min(i+25, benchItems); j++ {
			item := key("bench-"+strconv.Itoa(j%50), j)
			item["payload"] = &dtypes.AttributeValueMemberS{Value: "some text of a typical size for an order line, " + strconv.Itoa(j)}
			item["amount"] = &dtypes.AttributeValueMemberN{Value: strconv.Itoa(j * 3)}
			item["tags"] = &dtypes.AttributeValueMemberSS{Value: []string{"a", "b"}}
			reqs = append(reqs, dtypes.WriteRequest{PutRequest: &dtypes.PutRequest{Item: item}})
		}
		if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{table: reqs}}); err != nil {
			b.Fatalf("batch write: %v", err)
		}
	}
	s := motoSource(b, st, arn)
	shard := onlyShard(b, s)

	rawRead := func() {
		it, err := st.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: aws.String(arn), ShardId: aws.String(shard.ID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			b.Fatal(err)
		}
		iter := it.ShardIterator
		for n := 0; n < benchItems; {
			out, err := st.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(DefaultLimit)})
			if err != nil {
				b.Fatal(err)
			}
			n += len(out.Records)
			iter = out.NextShardIterator
		}
	}
	sourceRead := func() {
		r, err := s.Open(ctx, shard, event.Start{Type: event.TrimHorizon})
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < benchItems; {
			res, err := r.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(res.Records)
		}
		_ = r.Close()
	}
	timed := func(f func()) time.Duration {
		begin := time.Now()
		f()
		return time.Since(begin)
	}
	var raw, src time.Duration
	i := 0
	for b.Loop() {
		// Alternate which goes first, so that neither gains from the
		// other's warm server.
		if i%2 == 0 {
			raw += timed(rawRead)
			src += timed(sourceRead)
		} else {
			src += timed(sourceRead)
			raw += timed(rawRead)
		}
		i++
	}
	total := float64(benchItems * b.N)
	b.ReportMetric(total/raw.Seconds(), "raw-records/s")
	b.ReportMetric(total/src.Seconds(), "source-records/s")
	b.ReportMetric(raw.Seconds()/src.Seconds(), "source/raw")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkConvertAndEncode measures the reader's per-record work: the SDK
// attribute maps to typed JSON, then the Lambda record.
func BenchmarkConvertAndEncode(b *testing.B) {
	s, err := New(newFake(fakeARN), Config{StreamARN: fakeARN})
	if err != nil {
		b.Fatal(err)
	}
	r := &reader{src: s}
	recs := fakeRecords(0, 100)
	for i := range recs {
		recs[i].Dynamodb.OldImage = recs[i].Dynamodb.NewImage
	}
	b.ReportAllocs()
	for b.Loop() {
		r.encode(recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
