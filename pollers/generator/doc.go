// Package generator is a synthetic event source for load tests, demos and
// benchmarks: it implements mapping.Source and mapping.ShardReader without
// any AWS service.
//
// A generator is described by a URL, usable as a mapping's EventSourceArn:
//
//	generator://NAME?shards=8&rate=50000&keys=1000&size=200&count=100000&seed=42
//
// Records are spread over the shards by partition key (key-0 … key-N-1),
// hashed onto equal ranges as Kinesis does, with rising sequence numbers and
// arrival times. Each shard paces itself to its share of the rate (or
// generates as fast as it is read), and ends with mapping.ErrShardClosed once
// its share of the count is generated or the duration is over, so a finite
// run ends.
//
// Everything but the generation time is a function of the seed: the key,
// the per-key sequence number, the poison flag and the padding of every
// record. A reader opened after a checkpoint (AFTER_SEQUENCE_NUMBER)
// regenerates the shard up to that point and resumes with exactly the record
// that followed it.
//
// By default a record's data is a small JSON object that names its key, its
// per-key sequence number (1, 2, 3 … for each key), when it was generated,
// and whether it is a poison record:
//
//	{"k":"key-7","n":12,"t":1764075600000000000,"poison":false,"pad":"Xb3…"}
//
// so that a handler can detect duplicates, order violations and end-to-end
// latency; ParseData reads it back. Records are Kinesis-shaped by default
// (encoded with event.KinesisEncoder for the stream ARN
// arn:aws:kinesis:us-east-1:000000000000:stream/NAME), DynamoDB-shaped
// with shape=dynamodb (an INSERT whose NewImage holds the data as the string
// attribute "data", with an eventID of 32 hex digits drawn from the seed, the
// shard and the record, unique over the generator), or SQS-shaped with
// shape=sqs.
//
// Whatever the payload, ScanRecords reads every record of an event back by
// its itemIdentifier and its place (shard and record number, from its
// sequence number), and Source.Poison tells whether it is a poison record:
// a caller can count records, duplicates and poison records without parsing
// the data, as esmd bench does for payload=random and templates.
//
// With shape=sqs each record is a message as a standard queue
// (arn:aws:sqs:us-east-1:000000000000:NAME) delivers it the first time,
// encoded with event.SQSEncoder: its body is the data (base64-encoded for
// payload=random, since a body must be text), md5OfBody the body's MD5,
// the attributes ApproximateReceiveCount "1", SentTimestamp and
// ApproximateFirstReceiveTimestamp (the generation time in epoch
// milliseconds) and SenderId AIDAESMDGENERATOR, and no message attributes.
// The messageId is a UUID drawn from the seed, the shard and the record, so
// runs reproduce it and no two records share it. The messages still go
// through the stream engine (batches per shard, lanes by partition key,
// retries, bisect, checkpoints), so an SQS batch handler sees SQS events
// under stream rules: a partial batch response names failed messages by
// messageId (the Record's ID), and the batch is retried from the lowest one
// named, as Lambda does for streams. Lambda has no on-failure destination
// for SQS, so there is no AWS shape for their failure records: they keep the
// stream engine's KinesisBatchInfo form, with the generator's shard and
// sequence numbers and the queue ARN as the stream ARN.
package generator
