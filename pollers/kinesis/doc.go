// Package kinesis reads Amazon Kinesis Data Streams for esmd: it implements
// mapping.Source and mapping.ShardReader.
//
// A Source lists a stream's shards with their lineage and opens one reader
// per shard. With a plain stream ARN the reader polls with GetRecords
// (shared throughput), adaptively: at once again while records come back or
// the shard is behind, after the poll interval when idle. With a consumer
// ARN it reads through enhanced fan-out (SubscribeToShard) and resubscribes
// when a subscription ends or fails.
//
// Readers retry throttles, server errors and network errors themselves with
// capped exponential backoff, renew expired iterators from the last record
// they returned, and report the end of a closed shard with
// mapping.ErrShardClosed and a deleted stream with mapping.ErrSourceGone.
// Each record is encoded into Lambda's JSON once, when it is read.
package kinesis
