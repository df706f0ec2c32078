package mapping

import "sync/atomic"

// Stats counts what a mapping did, with the meanings of AWS's event source
// mapping metrics. Every field is safe to read concurrently.
type Stats struct {
	// PolledEvents counts records read from the source.
	PolledEvents atomic.Int64
	// Polls counts source reads, empty ones included.
	Polls atomic.Int64
	// InvokedEvents counts records sent to the function; retries count
	// again.
	InvokedEvents atomic.Int64
	// Invocations counts invocations, whatever their outcome.
	Invocations atomic.Int64
	// FailedInvokeEvents counts records of invocations that failed or
	// reported partial failures.
	FailedInvokeEvents atomic.Int64
	// FunctionErrors, Throttles and InvokeErrors count failed invocations by
	// kind; Timeouts is the subset of FunctionErrors that timed out.
	FunctionErrors atomic.Int64
	Timeouts       atomic.Int64
	Throttles      atomic.Int64
	InvokeErrors   atomic.Int64
	// Retries counts invocations repeated after a failure; Bisects counts
	// batches split in two.
	Retries atomic.Int64
	Bisects atomic.Int64
	// DroppedEvents counts records given up over the age or retry limits
	// with no destination to take them.
	DroppedEvents atomic.Int64
	// DestinationDeliveredEvents counts given-up records whose failure record
	// reached the on-failure destination.
	DestinationDeliveredEvents atomic.Int64
	// DestinationFailures counts failed attempts to deliver a failure record.
	DestinationFailures atomic.Int64
	// CheckpointSaves counts saved positions; CheckpointErrors failed saves.
	CheckpointSaves  atomic.Int64
	CheckpointErrors atomic.Int64
	// LanesBusy is the number of invocations in flight now.
	LanesBusy atomic.Int64
	// IteratorAgeMillis is the age of the last record of the last batch
	// invoked, in milliseconds.
	IteratorAgeMillis atomic.Int64
}
