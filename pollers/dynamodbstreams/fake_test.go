package dynamodbstreams

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// fakeAPI is a hand-written DynamoDB Streams for unit tests: a stream of
// shards holding records, paginated DescribeStream, iterators that are
// "shard/position" strings, trimming, and queued errors.
type fakeAPI struct {
	// afterIsAt makes AFTER_SEQUENCE_NUMBER behave as AT_SEQUENCE_NUMBER,
	// as a server that repeats the last record would.
	afterIsAt bool
	mu        sync.Mutex
	arn       string
	status    types.StreamStatus
	shards    []fakeShard
	pageSize  int
	missing   bool // the stream does not exist

	// trimmed[shard] is the index of the oldest record still held.
	trimmed map[string]int

	// Errors returned, in order, before the calls succeed again.
	describeErrs []error
	iterErrs     []error
	recordErrs   []error

	// Calls, for assertions.
	describeStarts []string
	iterCalls      []dynamodbstreams.GetShardIteratorInput
	recordCalls    int
	recordTimes    []time.Time
}

type fakeShard struct {
	id, parent string
	closed     bool
	records    []types.Record
}

func newFake(arn string, shards ...fakeShard) *fakeAPI {
	return &fakeAPI{arn: arn, status: types.StreamStatusEnabled, shards: shards, pageSize: 100, trimmed: map[string]int{}}
}

// seqOf is the sequence number of record i of shard number s.
func seqOf(s, i int) string { return fmt.Sprintf("%d%020d", s+1, i+1) }

// fakeRecords returns n INSERT records for shard number s, with keys
// {"pk":{"S":"k<i mod keys>"}}.
func fakeRecords(s, n int) []types.Record {
	recs := make([]types.Record, n)
	for i := range recs {
		key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k" + strconv.Itoa(i%3)}}
		recs[i] = types.Record{
			EventID:   aws.String(fmt.Sprintf("ev-%d-%d", s, i)),
			EventName: types.OperationTypeInsert,
			AwsRegion: aws.String("us-east-1"),
			Dynamodb: &types.StreamRecord{
				ApproximateCreationDateTime: aws.Time(time.Unix(1700000000+int64(i), 0)),
				Keys:                        key,
				NewImage:                    map[string]types.AttributeValue{"pk": key["pk"], "n": &types.AttributeValueMemberN{Value: strconv.Itoa(i)}},
				SequenceNumber:              aws.String(seqOf(s, i)),
				SizeBytes:                   aws.Int64(20),
				StreamViewType:              types.StreamViewTypeNewAndOldImages,
			},
		}
	}
	return recs
}

func (f *fakeAPI) shard(id string) (int, *fakeShard) {
	for i := range f.shards {
		if f.shards[i].id == id {
			return i, &f.shards[i]
		}
	}
	return -1, nil
}

func pop(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func notFound(what string) error {
	return &types.ResourceNotFoundException{Message: aws.String("Requested resource not found: " + what)}
}

func (f *fakeAPI) DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.describeStarts = append(f.describeStarts, aws.ToString(in.ExclusiveStartShardId))
	if err := pop(&f.describeErrs); err != nil {
		return nil, err
	}
	if f.missing || aws.ToString(in.StreamArn) != f.arn {
		return nil, notFound("Stream: " + aws.ToString(in.StreamArn) + " not found")
	}
	first := 0
	if s := aws.ToString(in.ExclusiveStartShardId); s != "" {
		i, _ := f.shard(s)
		first = i + 1
	}
	size := f.pageSize
	if in.Limit != nil && int(*in.Limit) < size {
		size = int(*in.Limit)
	}
	last := min(first+size, len(f.shards))
	d := &types.StreamDescription{StreamArn: aws.String(f.arn), StreamStatus: f.status}
	for _, s := range f.shards[first:last] {
		sh := types.Shard{ShardId: aws.String(s.id), SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")}}
		if s.parent != "" {
			sh.ParentShardId = aws.String(s.parent)
		}
		if s.closed {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String("999")
		}
		d.Shards = append(d.Shards, sh)
	}
	if last < len(f.shards) {
		d.LastEvaluatedShardId = aws.String(f.shards[last-1].id)
	}
	return &dynamodbstreams.DescribeStreamOutput{StreamDescription: d}, nil
}

func (f *fakeAPI) GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.iterCalls = append(f.iterCalls, *in)
	if err := pop(&f.iterErrs); err != nil {
		return nil, err
	}
	if f.missing {
		return nil, notFound("Stream not found")
	}
	id := aws.ToString(in.ShardId)
	_, s := f.shard(id)
	if s == nil {
		return nil, notFound("Shard does not exist")
	}
	oldest := f.trimmed[id]
	pos := 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeTrimHorizon:
		pos = oldest
	case types.ShardIteratorTypeLatest:
		pos = len(s.records)
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		pos = -1
		for i, r := range s.records {
			if aws.ToString(r.Dynamodb.SequenceNumber) == aws.ToString(in.SequenceNumber) {
				pos = i
			}
		}
		if pos < 0 {
			return nil, fmt.Errorf("fake: no sequence number %s", aws.ToString(in.SequenceNumber))
		}
		if pos < oldest {
			return nil, &types.TrimmedDataAccessException{Message: aws.String("trimmed")}
		}
		if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber && !f.afterIsAt {
			pos++
		}
	default:
		return nil, fmt.Errorf("fake: bad iterator type %q", in.ShardIteratorType)
	}
	return &dynamodbstreams.GetShardIteratorOutput{ShardIterator: aws.String(id + "/" + strconv.Itoa(pos))}, nil
}

func (f *fakeAPI) GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.recordCalls++
	f.recordTimes = append(f.recordTimes, time.Now())
	if err := pop(&f.recordErrs); err != nil {
		return nil, err
	}
	id, p, _ := strings.Cut(aws.ToString(in.ShardIterator), "/")
	pos, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("fake: bad iterator %q", aws.ToString(in.ShardIterator))
	}
	_, s := f.shard(id)
	if s == nil || f.missing {
		return nil, notFound("Shard does not exist")
	}
	if pos < f.trimmed[id] {
		return nil, &types.TrimmedDataAccessException{Message: aws.String("trimmed")}
	}
	end := min(pos+int(aws.ToInt32(in.Limit)), len(s.records))
	out := &dynamodbstreams.GetRecordsOutput{Records: append([]types.Record(nil), s.records[pos:end]...)}
	if !s.closed || end < len(s.records) {
		out.NextShardIterator = aws.String(id + "/" + strconv.Itoa(end))
	}
	return out, nil
}

// appendRecords adds records to an open shard, as writes to the table would.
func (f *fakeAPI) appendRecords(id string, recs ...types.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, s := f.shard(id)
	s.records = append(s.records, recs...)
}
