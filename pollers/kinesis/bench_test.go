package kinesis

import (
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/esmd-dev/esmd/event"
)

// BenchmarkEncode measures turning one GetRecords page of 500 records of
// 100 bytes into esmd records, and reports allocations per record.
func BenchmarkEncode(b *testing.B) {
	const n = 500
	enc := event.NewKinesisEncoder("us-east-1", testARN, "arn:aws:iam::000000000000:role/esmd")
	recs := make([]types.Record, n)
	seq := "49590338271490256608559692538361571095921575989136588898"
	for i := range recs {
		recs[i] = types.Record{
			SequenceNumber:              aws.String(seq[:len(seq)-4] + strconv.Itoa(1000+i)),
			PartitionKey:                aws.String("partition-key-" + strconv.Itoa(i)),
			Data:                        make([]byte, 100),
			ApproximateArrivalTimestamp: aws.Time(time.Unix(1700000000, 123e6)),
		}
	}
	perRecord := testing.AllocsPerRun(20, func() { encode(enc, "shardId-000000000000", recs, "") }) / n
	b.ReportAllocs()
	b.SetBytes(n * 100)
	for b.Loop() {
		encode(enc, "shardId-000000000000", recs, "")
	}
	b.ReportMetric(perRecord, "allocs/record")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
