// Package destinations delivers the failure records of batches esmd gave up
// on: the on-failure destinations of a mapping's
// DestinationConfig.OnFailure.Destination.
//
// New picks the implementation from the target the user wrote:
//
//	arn:aws:sqs:REGION:ACCOUNT:NAME   SQS queue (metadata only, 1 MiB limit)
//	arn:aws:sns:REGION:ACCOUNT:NAME   SNS topic (metadata only, 256 KiB limit)
//	arn:aws:s3:::BUCKET               S3 bucket (metadata and the records' payload)
//	file:///abs/path.jsonl            local JSON Lines file, fsynced per record
//	file://relative/path.jsonl        the same, relative to the working directory
//	http://… or https://…             HTTP POST of the failure record
//
// Every destination sends the JSON that (*event.Failure).MarshalJSON
// produces, so the record is identical across destinations; only S3 adds the
// records' payload, as AWS does.
//
// Send makes exactly one attempt: the engine owns retries and backoff. An
// error that can never succeed for that record is wrapped with
// backoff.Permanent: a record over the destination's size limit (it also
// matches ErrTooLarge), or, for S3, a failure without the mapping UUID or
// shard id its object key needs. Every other error, including a missing queue or a denied permission, is
// treated as transient, because an operator can fix it while the engine keeps
// retrying. Destinations never log record payloads.
package destinations
