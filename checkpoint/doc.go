// Package checkpoint stores where each shard of each stream mapping is done.
//
// File is the embedded default: one file on local disk holding a log of the
// positions saved, which it reads into memory when it opens. A Save is
// durable when it returns: it appends one checksummed frame and syncs it
// with one fdatasync, into space the file already has. Saves that arrive
// together from many shards share one frame and one sync. The file is
// rewritten into a new file, renamed over the old one, when it opens and
// whenever the log has grown to twice what it holds, so it needs a folder
// that takes new files. Files written by older versions (bbolt databases)
// are converted when they open.
package checkpoint
