// Command esmd polls Kinesis data streams, DynamoDB Streams and SQS queues
// and invokes functions with Lambda-shaped batches, applying the error rules
// of Lambda's event source mappings.
//
// Usage:
//
//	esmd run     [-c FILE] [--watch]
//	                         run the mappings of FILE (default esmd.yaml)
//	esmd check   [-c FILE]   validate FILE, print every problem, one per line
//	esmd version             print the version and the Go version
//	esmd help                print this help
//
// Exit codes:
//
//	0  ok: the configuration is valid (check), or esmd stopped after a
//	   completed graceful drain (run)
//	1  the configuration is invalid or cannot be read, or esmd failed at run time
//	2  usage error: unknown command or flag, missing or extra argument
//	3  stopped hard: the drain did not finish within shutdownTimeout, or a
//	   second SIGINT/SIGTERM arrived during the drain
//
// Signals: the first SIGTERM or SIGINT starts a graceful drain (stop reading,
// finish in-flight invocations, write final checkpoints), bounded by the
// configuration's shutdownTimeout (default 30s). A second signal, or the
// timeout, cancels everything at once.
//
// Reload: SIGHUP, and with --watch a change of the file, loads the file
// again. Added mappings start, removed or disabled ones drain and stop, and
// changed ones drain and start again from their checkpoints with the new
// settings. A file that fails validation is refused (each problem is logged)
// and the running configuration stays. Changes to aws, checkpoints, server
// and logging apply only after a restart.
//
// Logs go to stderr through log/slog, as text or JSON (logging.format) at
// the level of logging.level.
package main
