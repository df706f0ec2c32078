package kinesis

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/test/servers"
)

// TestRecordsProtocolOnServers reads the same records from both Kinesis
// servers through recordsProtocol and through the SDK alone: the fast path
// must be taken, and give the same records, byte for byte.
func TestRecordsProtocolOnServers(t *testing.T) {
	for _, srv := range []struct {
		name  string
		start func(testing.TB) string
	}{{"kinesis-mock", servers.KinesisMock}, {"kinesalite", servers.Kinesalite}} {
		t.Run(srv.name, func(t *testing.T) {
			ep := srv.start(t)
			c := servers.KinesisClient(ep)
			name := servers.UniqueName("fastpath")
			arn := servers.CreateStream(t, ep, name, 1)
			var entries []types.PutRecordsRequestEntry
			keys := []string{"plain", "clé-日本", "with space", "<&>", "a/b+c=d"}
			for i := range 300 {
				data := []byte(fmt.Sprintf("rec-%d-\x00\xff\"<&>\u2028", i))
				entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(keys[i%len(keys)]), Data: data[:i%len(data)]})
			}
			if _, err := c.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries}); err != nil {
				t.Fatal(err)
			}
			it, err := c.GetShardIterator(t.Context(), &kinesis.GetShardIteratorInput{StreamName: aws.String(name),
				ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			enc := event.NewKinesisEncoder("us-east-1", arn, "arn:aws:iam::000000000000:role/r")
			p := &recordsProtocol{enc: enc, shard: "shardId-000000000000"}
			in := &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(250)}
			fastOut, err := c.GetRecords(context.Background(), in, p.use)
			if err != nil {
				t.Fatal(err)
			}
			fast, ok := p.take()
			if !ok {
				t.Fatal("recordsProtocol left the response to the SDK")
			}
			sdkOut, err := c.GetRecords(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			want := encode(enc, "shardId-000000000000", sdkOut.Records, "")
			if len(want) != 250 {
				t.Fatalf("the SDK read %d records, want 250 (Limit)", len(want))
			}
			if diff := cmp.Diff(whole(decoded{Records: want}), whole(decoded{Records: fast}), cmpopts.IgnoreUnexported(event.Record{})); diff != "" {
				t.Errorf("records differ (-sdk +fast):\n%s", diff)
			}
			if aws.ToString(fastOut.NextShardIterator) == "" || fastOut.MillisBehindLatest == nil || *fastOut.MillisBehindLatest != aws.ToInt64(sdkOut.MillisBehindLatest) {
				t.Errorf("next iterator %q, behind %v; the SDK: %q, %v", aws.ToString(fastOut.NextShardIterator), fastOut.MillisBehindLatest,
					aws.ToString(sdkOut.NextShardIterator), aws.ToInt64(sdkOut.MillisBehindLatest))
			}
		})
	}
}
