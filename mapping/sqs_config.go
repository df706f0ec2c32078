package mapping

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// SQSConfig holds an SQS mapping's effective settings, already defaulted
// and validated by the config package and mapped by the CLI. Zero values
// take the defaults named on each field.
type SQSConfig struct {
	// Name identifies the mapping in logs and metrics.
	Name string
	UUID string
	// QueueARN is the source queue.
	QueueARN string
	// FIFO selects FIFO semantics: one batch per message group at a time,
	// in order; BatchSize at most 10 and no batching window.
	FIFO bool

	// BatchSize is 1 to 10,000 (10 for FIFO); default 10.
	BatchSize int
	// BatchWindow is MaximumBatchingWindowInSeconds; it starts with the
	// first message of a batch.
	BatchWindow time.Duration
	// MaxPayload caps the invoke payload; 0 means event.MaxPayload (6 MB).
	MaxPayload              int
	ReportBatchItemFailures bool

	// MaxConcurrency is ScalingConfig.MaximumConcurrency, the most batches
	// in flight at once; default 1000.
	MaxConcurrency int
	// InitialConcurrency is how many pollers start; default 5 (Lambda's).
	InitialConcurrency int
	// MinConcurrency is the floor when the queue is idle or the function
	// fails; default 2.
	MinConcurrency int
	// ScaleUpPerMinute is how many pollers may be added per minute while
	// messages keep arriving; default 300 (Lambda's).
	ScaleUpPerMinute int
	// ScaleInterval is how often concurrency is reconsidered; default 1 s.
	ScaleInterval time.Duration
	// ProgressInterval is how often a progress line is logged; 0 means
	// 30 s, negative disables it.
	ProgressInterval time.Duration

	// VisibilityOnError, when set, is the visibility timeout given to
	// messages of a failed batch (0: visible again at once).
	VisibilityOnError *time.Duration
	// Heartbeat extends the visibility of messages while their batch is
	// being invoked, every HeartbeatInterval (default a third of the
	// queue's visibility timeout), by the queue's visibility timeout.
	Heartbeat         bool
	HeartbeatInterval time.Duration

	// WaitTime is the long poll of an idle receive; default 20 s.
	WaitTime time.Duration
	// InvokeTimeout bounds one invocation as the engine waits for it; 0
	// leaves it to the invoker.
	InvokeTimeout time.Duration
	// RetryInitial and RetryMax bound the backoff after a failed receive;
	// default 100 ms and 30 s.
	RetryInitial time.Duration
	RetryMax     time.Duration
}

// SQSDeps are the parts an SQSRunner drives.
type SQSDeps struct {
	Queue   Queue
	Invoker Invoker
	Logger  *slog.Logger
}

// SQSStats are an SQS mapping's counters: the common ones and what only
// queues have. Every field is safe to read concurrently.
type SQSStats struct {
	Stats
	// DeletedEvents counts messages deleted from the queue.
	DeletedEvents atomic.Int64
	// DeleteFailures counts messages whose deletion kept failing; they are
	// received again.
	DeleteFailures atomic.Int64
	// ReturnedEvents counts messages left to reappear: of failed batches
	// and reported as failed.
	ReturnedEvents atomic.Int64
	// Concurrency is the number of pollers now (each has at most one batch
	// in flight, or one per message group for FIFO); PeakConcurrency its
	// highest value.
	Concurrency     atomic.Int64
	PeakConcurrency atomic.Int64
}

func (c *SQSConfig) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 10
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = event.MaxPayload
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = 1000
	}
	if c.InitialConcurrency <= 0 {
		c.InitialConcurrency = 5
	}
	if c.MinConcurrency <= 0 {
		c.MinConcurrency = 2
	}
	c.MinConcurrency = min(c.MinConcurrency, c.MaxConcurrency)
	c.InitialConcurrency = min(max(c.InitialConcurrency, c.MinConcurrency), c.MaxConcurrency)
	if c.ScaleUpPerMinute <= 0 {
		c.ScaleUpPerMinute = 300
	}
	if c.ScaleInterval <= 0 {
		c.ScaleInterval = time.Second
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 30 * time.Second
	}
	if c.WaitTime <= 0 {
		c.WaitTime = 20 * time.Second
	}
	retryDefaults(&c.RetryInitial, &c.RetryMax)
}

func (c *SQSConfig) validate(d SQSDeps) error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("mapping has no name"))
	}
	if d.Queue == nil {
		errs = append(errs, errors.New("no queue"))
	}
	if d.Invoker == nil {
		errs = append(errs, errors.New("no invoker"))
	}
	if c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("BatchSize %d is above 10000", c.BatchSize))
	}
	if c.FIFO && c.BatchSize > 10 {
		errs = append(errs, fmt.Errorf("BatchSize %d is above 10, the FIFO limit", c.BatchSize))
	}
	if c.FIFO && c.BatchWindow > 0 {
		errs = append(errs, errors.New("FIFO queues take no batching window"))
	}
	if v := c.VisibilityOnError; v != nil && (*v < 0 || *v > 12*time.Hour) {
		errs = append(errs, fmt.Errorf("visibilityOnError %s is outside 0 to 12h", *v))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mapping %q: %w", c.Name, err)
	}
	return nil
}

// scaleStep is how many pollers one scale tick may add.
func (c *SQSConfig) scaleStep() int {
	return max(1, int(int64(c.ScaleUpPerMinute)*int64(c.ScaleInterval)/int64(time.Minute)))
}
