package smoke

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/esmd-dev/esmd/test/servers"
)

func streamsClient(ep string) *dynamodbstreams.Client {
	return dynamodbstreams.NewFromConfig(servers.AWSConfig(ep))
}

// TestDynamoDBStreams drives every DynamoDB Streams call esmd makes against
// moto: ListStreams, DescribeStream (with ExclusiveStartShardId), the four
// iterator types, GetRecords with Limit and NextShardIterator, and a bad
// iterator.
func TestDynamoDBStreams(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	table := servers.UniqueName("smoke")
	arn := servers.CreateTable(t, ep, table)
	db := servers.DynamoDBClient(ep)
	st := streamsClient(ep)

	ls, err := st.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("ListStreams: %v", err)
	}
	if len(ls.Streams) != 1 || aws.ToString(ls.Streams[0].StreamArn) != arn || aws.ToString(ls.Streams[0].TableName) != table {
		t.Fatalf("ListStreams = %+v, want one stream %s of table %s", ls.Streams, arn, table)
	}

	item := func(pk, v string) map[string]dtypes.AttributeValue {
		return map[string]dtypes.AttributeValue{"pk": &dtypes.AttributeValueMemberS{Value: pk}, "v": &dtypes.AttributeValueMemberN{Value: v}}
	}
	for _, it := range []map[string]dtypes.AttributeValue{item("a", "1"), item("a", "2")} {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: it}); err != nil {
			t.Fatalf("PutItem: %v", err)
		}
	}
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table),
		Key: map[string]dtypes.AttributeValue{"pk": &dtypes.AttributeValueMemberS{Value: "a"}}}); err != nil {
		t.Fatalf("DeleteItem: %v", err)
	}

	ds, err := st.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
	if err != nil {
		t.Fatalf("DescribeStream: %v", err)
	}
	d := ds.StreamDescription
	if d.StreamStatus != stypes.StreamStatusEnabled || d.StreamViewType != stypes.StreamViewTypeNewAndOldImages ||
		aws.ToString(d.TableName) != table || len(d.Shards) != 1 || d.LastEvaluatedShardId != nil {
		t.Fatalf("DescribeStream = status %s view %s table %s shards %d last %v", d.StreamStatus, d.StreamViewType, aws.ToString(d.TableName), len(d.Shards), d.LastEvaluatedShardId)
	}
	shard := d.Shards[0]
	if shard.SequenceNumberRange == nil || shard.SequenceNumberRange.StartingSequenceNumber == nil || shard.SequenceNumberRange.EndingSequenceNumber != nil {
		t.Errorf("open shard sequence range = %+v, want a start and no end", shard.SequenceNumberRange)
	}
	// Paging past the only shard should return no shards; moto ignores
	// ExclusiveStartShardId (and Limit) and returns the shard again
	// (gap recorded in test/SERVERS.md).
	ds2, err := st.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn), ExclusiveStartShardId: shard.ShardId})
	if err != nil {
		t.Fatalf("DescribeStream ExclusiveStartShardId: %v", err)
	}
	if got := ds2.StreamDescription.Shards; len(got) != 1 || aws.ToString(got[0].ShardId) != aws.ToString(shard.ShardId) || ds2.StreamDescription.LastEvaluatedShardId != nil {
		t.Errorf("moto DescribeStream(ExclusiveStartShardId=last) = %d shards, last %v; SERVERS.md says moto returns the same shard again", len(got), ds2.StreamDescription.LastEvaluatedShardId)
	}

	iter := func(typ stypes.ShardIteratorType, seq string) *string {
		t.Helper()
		in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn), ShardId: shard.ShardId, ShardIteratorType: typ}
		if seq != "" {
			in.SequenceNumber = aws.String(seq)
		}
		out, err := st.GetShardIterator(ctx, in)
		if err != nil {
			t.Fatalf("GetShardIterator %s: %v", typ, err)
		}
		return out.ShardIterator
	}
	get := func(it *string, limit int32) *dynamodbstreams.GetRecordsOutput {
		t.Helper()
		out, err := st.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(limit)})
		if err != nil {
			t.Fatalf("GetRecords: %v", err)
		}
		return out
	}
	events := func(rs []stypes.Record) []string {
		var s []string
		for _, r := range rs {
			s = append(s, string(r.EventName))
		}
		return s
	}

	// TRIM_HORIZON with Limit 2, then the rest through NextShardIterator.
	first := get(iter(stypes.ShardIteratorTypeTrimHorizon, ""), 2)
	if got := events(first.Records); len(got) != 2 || got[0] != "INSERT" || got[1] != "MODIFY" {
		t.Fatalf("first page events = %v, want [INSERT MODIFY]", got)
	}
	if first.NextShardIterator == nil {
		t.Fatal("NextShardIterator nil on an open shard")
	}
	rest := get(first.NextShardIterator, 100)
	if got := events(rest.Records); len(got) != 1 || got[0] != "REMOVE" {
		t.Fatalf("second page events = %v, want [REMOVE]", got)
	}
	if rest.NextShardIterator == nil {
		t.Error("NextShardIterator nil after reading to the tip of an open shard")
	}

	ins, mod, rem := first.Records[0], first.Records[1], rest.Records[0]
	// AWS sends EventVersion 1.1; moto sends 1.0 (SERVERS.md).
	if aws.ToString(ins.EventSource) != "aws:dynamodb" || aws.ToString(ins.AwsRegion) != "us-east-1" || aws.ToString(ins.EventVersion) != "1.0" || aws.ToString(ins.EventID) == "" {
		t.Errorf("INSERT envelope: source %q region %q version %q id %q", aws.ToString(ins.EventSource), aws.ToString(ins.AwsRegion), aws.ToString(ins.EventVersion), aws.ToString(ins.EventID))
	}
	sr := ins.Dynamodb
	if v, ok := sr.NewImage["v"].(*stypes.AttributeValueMemberN); !ok || v.Value != "1" || len(sr.NewImage) != 2 || sr.OldImage != nil {
		t.Errorf("INSERT images: new %#v old %#v", sr.NewImage, sr.OldImage)
	}
	if k, ok := sr.Keys["pk"].(*stypes.AttributeValueMemberS); !ok || k.Value != "a" || len(sr.Keys) != 1 {
		t.Errorf("INSERT keys = %#v", sr.Keys)
	}
	if sr.StreamViewType != stypes.StreamViewTypeNewAndOldImages || aws.ToString(sr.SequenceNumber) == "" || aws.ToInt64(sr.SizeBytes) <= 0 || sr.ApproximateCreationDateTime == nil {
		t.Errorf("INSERT stream record: view %s seq %q size %d time %v", sr.StreamViewType, aws.ToString(sr.SequenceNumber), aws.ToInt64(sr.SizeBytes), sr.ApproximateCreationDateTime)
	}
	if o, ok := mod.Dynamodb.OldImage["v"].(*stypes.AttributeValueMemberN); !ok || o.Value != "1" {
		t.Errorf("MODIFY old image = %#v", mod.Dynamodb.OldImage)
	}
	if n, ok := mod.Dynamodb.NewImage["v"].(*stypes.AttributeValueMemberN); !ok || n.Value != "2" {
		t.Errorf("MODIFY new image = %#v", mod.Dynamodb.NewImage)
	}
	if o, ok := rem.Dynamodb.OldImage["v"].(*stypes.AttributeValueMemberN); !ok || o.Value != "2" || rem.Dynamodb.NewImage != nil {
		t.Errorf("REMOVE images: old %#v new %#v", rem.Dynamodb.OldImage, rem.Dynamodb.NewImage)
	}

	// AT_ and AFTER_SEQUENCE_NUMBER of the MODIFY record.
	seq := aws.ToString(mod.Dynamodb.SequenceNumber)
	if got := events(get(iter(stypes.ShardIteratorTypeAtSequenceNumber, seq), 100).Records); len(got) != 2 || got[0] != "MODIFY" {
		t.Errorf("AT_SEQUENCE_NUMBER %s events = %v, want [MODIFY REMOVE]", seq, got)
	}
	if got := events(get(iter(stypes.ShardIteratorTypeAfterSequenceNumber, seq), 100).Records); len(got) != 1 || got[0] != "REMOVE" {
		t.Errorf("AFTER_SEQUENCE_NUMBER %s events = %v, want [REMOVE]", seq, got)
	}

	// LATEST sees only what comes after it.
	latest := iter(stypes.ShardIteratorTypeLatest, "")
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("b", "7")}); err != nil {
		t.Fatalf("PutItem: %v", err)
	}
	lr := get(latest, 100)
	if got := events(lr.Records); len(got) != 1 || got[0] != "INSERT" {
		t.Fatalf("LATEST events = %v, want [INSERT]", got)
	}
	if k := lr.Records[0].Dynamodb.Keys["pk"].(*stypes.AttributeValueMemberS); k.Value != "b" {
		t.Errorf("LATEST record key = %q, want b", k.Value)
	}

	// AWS answers a bogus iterator with 400 ValidationException; moto fails
	// with a 500 HTML page (a KeyError), which the SDK retries (SERVERS.md).
	_, err = st.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String("not-an-iterator")},
		func(o *dynamodbstreams.Options) { o.RetryMaxAttempts = 1 })
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 500 {
		t.Fatalf("moto GetRecords with a bogus iterator: err = %v; SERVERS.md says HTTP 500", err)
	}
}

// TestDynamoDBStreamsMotoShards pins how moto models shards: one shard per
// stream, with the same ShardId and starting sequence number in every table,
// and a 500 for an unknown shard.
func TestDynamoDBStreamsMotoShards(t *testing.T) {
	ctx := ctx(t)
	ep := servers.Moto(t)
	st := streamsClient(ep)
	var ids, starts []string
	var arns []string
	for range 2 {
		arn := servers.CreateTable(t, ep, servers.UniqueName("smoke"))
		arns = append(arns, arn)
		ds, err := st.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
		if err != nil {
			t.Fatalf("DescribeStream: %v", err)
		}
		if len(ds.StreamDescription.Shards) != 1 {
			t.Fatalf("%d shards, want 1", len(ds.StreamDescription.Shards))
		}
		s := ds.StreamDescription.Shards[0]
		ids = append(ids, aws.ToString(s.ShardId))
		starts = append(starts, aws.ToString(s.SequenceNumberRange.StartingSequenceNumber))
	}
	if ids[0] != ids[1] || starts[0] != starts[1] {
		t.Errorf("shards %v starting at %v; SERVERS.md says moto uses one ShardId and start for every table", ids, starts)
	}
	_, err := st.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arns[0]),
		ShardId: aws.String("shardId-00000000000000000000-00000000"), ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon},
		func(o *dynamodbstreams.Options) { o.RetryMaxAttempts = 1 })
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 500 {
		t.Fatalf("GetShardIterator on an unknown shard: %v; SERVERS.md says HTTP 500 (AWS: 400 ResourceNotFoundException)", err)
	}
}
