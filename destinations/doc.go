// Package destinations delivers the failure records of batches esmd gave up
// on: the on-failure destinations of a mapping's
// DestinationConfig.OnFailure.Destination.
//
// New picks the implementation from the target the user wrote:
//
//	arn:aws:sqs:REGION:ACCOUNT:NAME    SQS queue (metadata only, 1 MiB limit)
//	arn:aws:sns:REGION:ACCOUNT:NAME    SNS topic (metadata only, 256 KiB limit)
//	arn:aws:s3:::BUCKET                S3 bucket (metadata and the records' payload)
//	kafka://HOST:PORT[,HOST:PORT]/TOPIC Kafka topic, acks=all, key "<mapping UUID>/<shard id>"
//	nats://HOST[:PORT]/SUBJECT         NATS subject: JetStream with acks when a stream
//	                                   captures the subject, else core NATS (at most once)
//	file:///abs/path.jsonl             local JSON Lines file, fsynced per record
//	file://relative/path.jsonl         the same, relative to the working directory
//	http://… or https://…              HTTP POST of the failure record, 2xx is delivered
//
// Every destination sends the JSON that (*event.Failure).MarshalJSON
// produces, so the record is identical across destinations; only S3 adds the
// records' payload, as AWS does.
//
// Delivery guarantees. Send makes exactly one attempt and reports whether the
// record was delivered: the engine owns retries and backoff, and it does not
// move the shard's checkpoint past a batch until its failure record was
// delivered, so a destination that stays down blocks that shard and loses
// nothing. Every destination but core NATS is at least once: a retry after a
// lost answer may deliver a second copy (FIFO SQS and SNS, S3 and JetStream
// deduplicate it by a hash of the record). Core NATS, used when no JetStream
// stream captures the subject, is at most once: the server hands the record
// only to the subscribers present when it arrives and stores nothing.
//
// An error that can never succeed for that record is wrapped with
// backoff.Permanent and logged once at Warn: a record over the destination's
// size limit (it also matches ErrTooLarge), or, for S3, a failure without the
// mapping UUID or shard id its object key needs. Every other error, including
// a missing queue or topic or a denied permission, is treated as transient,
// because an operator can fix it while the engine keeps retrying.
// Destinations never log record payloads.
package destinations
