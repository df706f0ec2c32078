// Package mapping is esmd's engine: one Runner per event source mapping.
//
// It owns shard supervision, lanes, batching, invoking, retries, bisect,
// record age, partial batch responses, checkpoint advance and failure
// routing. It declares the interfaces it consumes (Source, ShardReader,
// Invoker, Destination, Checkpointer) and never imports an implementation of
// them.
package mapping
