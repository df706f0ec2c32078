package mapping

import (
	"context"
	"fmt"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// Queue is an SQS queue as the SQS engine consumes it: receive, delete and
// change visibility, with records already encoded as Lambda's SQS records
// (Record.ID is the messageId, Record.Receipt the receipt handle,
// Record.Key the FIFO message group). Implementations are safe for
// concurrent use.
type Queue interface {
	// Receive asks for up to max (1 to 10) messages, long-polling for at
	// most wait (whole seconds; less than a second is a short poll), and
	// returns them in the order the queue gave them, possibly none. It
	// blocks for the poll; cancelling ctx abandons it, and the messages the
	// queue handed out meanwhile become visible again after their
	// visibility timeout. A queue that does not exist is an error wrapping
	// ErrSourceGone.
	Receive(ctx context.Context, max int, wait time.Duration) ([]event.Record, error)
	// Delete deletes recs by receipt handle, retrying entries that fail. It
	// returns how many were deleted; when some could not be, the error is a
	// *DeleteError naming them.
	Delete(ctx context.Context, recs []event.Record) (int, error)
	// SetVisibility sets the visibility timeout of recs, counted from now;
	// 0 makes them visible at once.
	SetVisibility(ctx context.Context, recs []event.Record, timeout time.Duration) error
	// VisibilityTimeout returns the queue's default visibility timeout.
	VisibilityTimeout(ctx context.Context) (time.Duration, error)
}

// DeleteError reports messages that could not be deleted. They will be
// received again once their visibility timeout passes.
type DeleteError struct {
	// Failed are the messageIds that kept failing, with the reason of each.
	Failed map[string]string
}

func (e *DeleteError) Error() string {
	for id, why := range e.Failed {
		if len(e.Failed) == 1 {
			return fmt.Sprintf("delete message %s: %s", id, why)
		}
		return fmt.Sprintf("delete %d messages failed, e.g. %s: %s", len(e.Failed), id, why)
	}
	return "delete messages failed"
}
