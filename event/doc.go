// Package event holds the types every part of esmd shares (Record, Shard,
// Position, Failure) and the encoders that turn source records into the exact
// JSON Lambda sends to a function.
//
// It is a leaf package: it imports only the standard library. Each record is
// encoded once, when it is read; a batch's event is then assembled by
// concatenating the pre-encoded records, so retries and bisects reuse bytes
// and the 6 MB cut is exact.
package event
