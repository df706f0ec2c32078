// Package checkpoint stores where each shard of each stream mapping is done.
//
// File is the embedded default: one bbolt file on local disk, with a bucket
// per mapping and a key per shard. A Save is durable (fsynced) when it
// returns, and Saves that arrive together from many shards share one
// transaction, so the cost of a sync is paid once per group rather than once
// per shard.
package checkpoint
