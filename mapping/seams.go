package mapping

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// Source lists the shards of a stream and opens readers on them.
// Implementations are safe for concurrent use.
type Source interface {
	// Shards lists every shard the stream still holds, open and closed, with
	// their parents. It blocks for the round trips it needs.
	Shards(ctx context.Context) ([]event.Shard, error)
	// Open returns a reader of shard s that begins at start.
	Open(ctx context.Context, s event.Shard, start event.Start) (ShardReader, error)
}

// ShardReader reads one shard in order. It is used by one goroutine at a time.
type ShardReader interface {
	// Read blocks until the next poll (or pushed event) returns and gives its
	// records, which may be none. The reader paces its own polls: at once
	// again after records, after its poll interval when idle. At the end of a
	// closed shard, after its last records, it returns ErrShardClosed. It
	// recovers expired iterators itself, from the last record it returned.
	Read(ctx context.Context) (ReadResult, error)
	// Close releases the reader.
	Close() error
}

// ReadResult is what one poll returned.
type ReadResult struct {
	// Records are the poll's records, in order. They belong to the caller
	// from then on: the reader never touches the slice again, nor the
	// records' JSON bytes, until Release is called.
	Records []event.Record
	// MillisBehind is how far the reader is behind the tip of the shard, when
	// the source says so; -1 when unknown.
	MillisBehind int64
	// Release, when set, is called once the engine is done with Records:
	// every record was resolved, and the engine holds neither the slice nor
	// any record's JSON bytes (at once for a poll without records). The
	// reader may then reuse that memory for a later poll. The engine may
	// still hold the records' strings (Key, Seq, ID, Receipt), whose memory
	// must never be reused. Release is called at most once, from any
	// goroutine, and not at all when the engine stops before it is done;
	// the memory is then garbage as usual.
	Release func()
}

// Request is one invocation of a function.
type Request struct {
	// Payload is the event. It stays the engine's buffer, which the engine
	// writes its next event into: once Invoke has returned nil, the invoker
	// must not read it again, unless it set Response.PayloadInUse. After an
	// error the engine does not reuse it, so an invocation abandoned on a
	// timeout may still be sending it.
	Payload   []byte
	RequestID string
	Mapping   string
	Attempt   int
	// Deadline is when the engine gives up waiting; zero for none.
	Deadline time.Time
}

// Response is a function's answer to an invocation that did not fail.
type Response struct {
	Body            []byte
	StatusCode      int
	ExecutedVersion string
	// PayloadInUse tells the engine that the invoker may still be reading
	// Request.Payload (the function answered before it had the whole
	// event), so the engine must not reuse that buffer.
	PayloadInUse bool
}

// Invoker invokes a function with one event. It is safe for concurrent use.
//
// Invoke returns the function's response on success. On failure it returns a
// *FunctionError (the function ran and failed, including a timeout), a
// *ThrottleError (the function was not run for lack of capacity), or any other
// error, which counts as an invoke-side error: the event did not reach the
// function. Cancelling ctx abandons the invocation.
type Invoker interface {
	Invoke(ctx context.Context, req *Request) (*Response, error)
}

// Destination delivers the record of a batch esmd gave up on. Send blocks
// until the record is durably delivered or fails; the engine retries
// failures. Implementations are safe for concurrent use. f.Records points
// into the engine's buffers: it may be read during Send only, never kept.
type Destination interface {
	Send(ctx context.Context, f *event.Failure) error
}

// Checkpointer stores the position of each shard of each mapping. It is safe
// for concurrent use.
type Checkpointer interface {
	// Load returns the saved position, or a zero Position when there is none.
	Load(ctx context.Context, mapping, shard string) (event.Position, error)
	// Save stores p durably before it returns: a position reported saved
	// survives a crash. Concurrent saves may share one write.
	Save(ctx context.Context, mapping, shard string, p event.Position) error
}

// Sentinel errors for control flow; match them with errors.Is.
var (
	// ErrShardClosed ends a closed shard once its last record was read.
	ErrShardClosed = errors.New("shard closed")
	// ErrSourceGone means the stream or queue no longer exists or was
	// disabled: the mapping stops.
	ErrSourceGone = errors.New("event source is gone")
)

// FunctionError reports that the function ran and failed: it returned an
// error, crashed or timed out. It triggers retries and bisect, and counts
// against MaximumRetryAttempts.
type FunctionError struct {
	// Kind is the X-Amz-Function-Error value: Handled or Unhandled.
	Kind string
	// Type and Message come from the error body {"errorType","errorMessage"}
	// when there is one.
	Type    string
	Message string
	// StatusCode is the status of the invocation response (200 for Lambda).
	StatusCode      int
	ExecutedVersion string
	// Timeout reports that the function ran out of time.
	Timeout bool
}

func (e *FunctionError) Error() string {
	switch {
	case e.Timeout:
		return "function error: task timed out"
	case e.Type != "" && e.Message != "":
		return fmt.Sprintf("function error: %s: %s", e.Type, e.Message)
	case e.Message != "":
		return "function error: " + e.Message
	case e.Type != "":
		return "function error: " + e.Type
	}
	return fmt.Sprintf("function error: %s (status %d)", e.Kind, e.StatusCode)
}

// ThrottleError reports that the function could not run for lack of
// capacity (Lambda's 429 TooManyRequestsException, an HTTP 429 or 503). It is
// retried without counting attempts, after RetryAfter when that is set.
type ThrottleError struct {
	RetryAfter time.Duration
	StatusCode int
	Err        error
}

func (e *ThrottleError) Error() string {
	if e.Err != nil {
		return "function throttled: " + e.Err.Error()
	}
	return fmt.Sprintf("function throttled (status %d)", e.StatusCode)
}

func (e *ThrottleError) Unwrap() error { return e.Err }

// Observer receives one call per invocation, for metrics such as duration
// and batch size histograms. It is optional; implementations must be safe
// for concurrent use and fast, since lanes call it inline.
type Observer interface {
	Invoked(shard string, d time.Duration, records, bytes int, outcome Outcome)
}

// Outcome classifies an invocation.
type Outcome string

// Invocation outcomes, as the metrics name them.
const (
	OutcomeSuccess       Outcome = "success"
	OutcomeFunctionError Outcome = "function_error"
	OutcomeTimeout       Outcome = "timeout"
	OutcomeThrottle      Outcome = "throttle"
	OutcomeInvokeError   Outcome = "invoke_error"
)

// OutcomeOf classifies the error an Invoker returned.
func OutcomeOf(err error) Outcome {
	var fe *FunctionError
	var te *ThrottleError
	switch {
	case err == nil:
		return OutcomeSuccess
	case errors.As(err, &fe) && fe.Timeout:
		return OutcomeTimeout
	case errors.As(err, &fe):
		return OutcomeFunctionError
	case errors.As(err, &te):
		return OutcomeThrottle
	}
	return OutcomeInvokeError
}
