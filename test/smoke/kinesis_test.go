package smoke

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/esmd-dev/esmd/test/servers"
)

// TestKinesisPutAndGet puts records on a two-shard stream and reads every
// shard from TRIM_HORIZON, on both Kinesis servers.
func TestKinesisPutAndGet(t *testing.T) {
	tests := []struct {
		name  string
		start func(testing.TB) string
	}{
		{"kinesis-mock", servers.KinesisMock},
		{"kinesalite", servers.Kinesalite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctx(t)
			ep := tc.start(t)
			name := servers.UniqueName("smoke")
			arn := servers.CreateStream(t, ep, name, 2)
			if want := "arn:aws:kinesis:us-east-1:000000000000:stream/" + name; arn != want {
				t.Errorf("stream ARN = %q, want %q", arn, want)
			}
			c := servers.KinesisClient(ep)

			type rec struct{ pk, data, seq, shard string }
			var put []rec
			var entries []ktypes.PutRecordsRequestEntry
			for i := range 10 {
				entries = append(entries, ktypes.PutRecordsRequestEntry{
					PartitionKey: aws.String(fmt.Sprintf("key-%d", i)),
					Data:         []byte(fmt.Sprintf(`{"n":%d}`, i)),
				})
			}
			out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
			if err != nil {
				t.Fatalf("PutRecords: %v", err)
			}
			if aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != len(entries) {
				t.Fatalf("PutRecords: %d failed, %d results; want 0 and %d", aws.ToInt32(out.FailedRecordCount), len(out.Records), len(entries))
			}
			for i, r := range out.Records {
				put = append(put, rec{pk: *entries[i].PartitionKey, data: string(entries[i].Data), seq: aws.ToString(r.SequenceNumber), shard: aws.ToString(r.ShardId)})
			}

			shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
			if err != nil {
				t.Fatalf("ListShards: %v", err)
			}
			var ids []string
			for _, s := range shards.Shards {
				ids = append(ids, aws.ToString(s.ShardId))
			}
			if want := []string{"shardId-000000000000", "shardId-000000000001"}; !slices.Equal(ids, want) {
				t.Fatalf("shards = %v, want %v", ids, want)
			}

			var got []rec
			for _, id := range ids {
				it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
					StreamName: aws.String(name), ShardId: aws.String(id),
					ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
				})
				if err != nil {
					t.Fatalf("GetShardIterator %s: %v", id, err)
				}
				gr, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(100)})
				if err != nil {
					t.Fatalf("GetRecords %s: %v", id, err)
				}
				if gr.NextShardIterator == nil {
					t.Errorf("GetRecords %s: NextShardIterator nil on an open shard", id)
				}
				for _, r := range gr.Records {
					if r.ApproximateArrivalTimestamp == nil {
						t.Errorf("record %s: no ApproximateArrivalTimestamp", aws.ToString(r.SequenceNumber))
					}
					got = append(got, rec{pk: aws.ToString(r.PartitionKey), data: string(r.Data), seq: aws.ToString(r.SequenceNumber), shard: id})
				}
			}
			byKey := func(a, b rec) int {
				if a.pk < b.pk {
					return -1
				}
				if a.pk > b.pk {
					return 1
				}
				return 0
			}
			slices.SortFunc(put, byKey)
			slices.SortFunc(got, byKey)
			if !slices.Equal(got, put) {
				t.Fatalf("read back\n%v\nwant\n%v", got, put)
			}
		})
	}
}
