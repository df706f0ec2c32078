package destinations

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// s3KeyNamespace seeds the name-based UUIDs of object keys.
var s3KeyNamespace = uuid.MustParse("6f0c4d0e-3a55-4c3e-9d0b-6a0e5f1d2c7b")

// S3 writes one object per failed batch to an S3 bucket. The object is the
// failure record's JSON with one more member, "payload", holding the batch's
// event {"Records":[...]} as the function received it. Its key follows AWS's
// layout:
//
//	aws/lambda/<mapping-uuid>/<shardId>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>
//
// where the time is the failure's timestamp in UTC and the trailing UUID is
// derived from the object's content, so the engine's retry of one failure
// overwrites the same object instead of adding another. It is safe for
// concurrent use.
type S3 struct {
	client S3API
	bucket string
	log    *slog.Logger

	refused refusals
}

var _ mapping.Destination = (*S3)(nil)

// NewS3 returns the destination of the bucket arn:aws:s3:::BUCKET. It does no
// I/O.
func NewS3(bucketARN string, client S3API, logger *slog.Logger) (*S3, error) {
	a, err := arn.Parse(bucketARN)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrInvalidTarget, bucketARN, err)
	}
	if a.Service != "s3" || a.Resource == "" || strings.Contains(a.Resource, "/") || a.Region != "" || a.AccountID != "" {
		return nil, fmt.Errorf("%w %q: want arn:aws:s3:::BUCKET", ErrInvalidTarget, bucketARN)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &S3{client: client, bucket: a.Resource, log: logger.With("destination", "s3", "bucket", a.Resource)}, nil
}

// Send puts one object holding f and its records with one PutObject call. It
// blocks for the upload and returns ctx's error when ctx ends first. A
// failure without MappingUUID or ShardID cannot be keyed: that error is
// permanent.
func (d *S3) Send(ctx context.Context, f *event.Failure) error {
	if f != nil && (f.MappingUUID == "" || f.ShardID == "") {
		meta, _ := marshal(f)
		d.refused.warn(ctx, d.log, "failure record refused: no mapping UUID or shard id to key the S3 object", f, meta)
		return fmt.Errorf("destination s3 %s: %w", d.bucket,
			backoff.Permanent(fmt.Errorf("failure record has no mapping UUID or shard id to key the object")))
	}
	body, err := S3Object(f)
	if err != nil {
		return fmt.Errorf("destination s3 %s: encode: %w", d.bucket, err)
	}
	key := S3Key(f, body)
	_, err = d.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(d.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("destination s3 %s: put %s: %w", d.bucket, key, err)
	}
	d.log.DebugContext(ctx, "failure record sent", append(logAttrs(f), "key", key)...)
	return nil
}

// S3Object returns the object S3 stores for f: the failure record's JSON
// with a last member "payload" holding the event of f.Records.
func S3Object(f *event.Failure) ([]byte, error) {
	meta, err := marshal(f)
	if err != nil {
		return nil, err
	}
	if len(meta) < 2 || meta[len(meta)-1] != '}' {
		return nil, fmt.Errorf("failure record is not a JSON object")
	}
	out := make([]byte, 0, len(meta)+len(`,"payload":`)+event.EventSize(f.Records))
	out = append(out, meta[:len(meta)-1]...)
	out = append(out, `,"payload":`...)
	out = event.AppendEvent(out, f.Records)
	return append(out, '}'), nil
}

// S3Key returns the object key of f whose object is body, in AWS's layout.
func S3Key(f *event.Failure, body []byte) string {
	t := f.Timestamp
	if t.IsZero() {
		t = time.Now()
	}
	t = t.UTC()
	id := uuid.NewSHA1(s3KeyNamespace, body)
	return fmt.Sprintf("aws/lambda/%s/%s/%s/%s-%s",
		f.MappingUUID, f.ShardID, t.Format("2006/01/02"), t.Format("2006-01-02T15.04.05"), id)
}
