package mapping

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// Config holds a stream mapping's effective settings, already defaulted and
// validated by the config package and mapped by the CLI.
type Config struct {
	// Name identifies the mapping in logs, metrics and checkpoints.
	Name string
	// UUID is the mapping's stable identifier.
	UUID string
	// Kind is the source type: event.Kinesis or event.DynamoDB, or event.SQS
	// for SQS-shaped generated records (the SQS runner has its own).
	Kind event.Kind
	// SourceARN is the stream ARN, written into failure records.
	SourceARN string
	// FunctionARN names the function in failure records.
	FunctionARN string

	BatchSize             int
	BatchWindow           time.Duration
	ParallelizationFactor int
	// MaxRecordAge is MaximumRecordAgeInSeconds; negative means infinite.
	MaxRecordAge time.Duration
	// Retention is how long the stream keeps records; 0 when unknown.
	// Lambda retries a failing batch at most until its records leave the
	// stream, whatever MaxRecordAge says, and then discards them as too
	// old: a day on DynamoDB Streams, the stream's retention on Kinesis.
	Retention time.Duration
	// MaxRetryAttempts is MaximumRetryAttempts; negative means infinite.
	MaxRetryAttempts        int
	BisectOnError           bool
	ReportBatchItemFailures bool

	// StartingPosition is where a shard without a checkpoint begins when the
	// mapping first sees it; shards that appear later (children of a
	// reshard) always begin at TRIM_HORIZON.
	StartingPosition event.Start

	// MaxPayload caps the invoke payload; 0 means event.MaxPayload (6 MB).
	MaxPayload int
	// DiscoveryInterval is how often shards are listed again; 0 means 30 s.
	DiscoveryInterval time.Duration
	// CheckpointInterval is how often positions are saved; 0 saves after
	// every completed batch.
	CheckpointInterval time.Duration
	// RetryInitial and RetryMax bound the exponential backoff between
	// retries; 0 means 100 ms and 30 s.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ProgressInterval is how often a progress line is logged; 0 means 30 s,
	// negative disables it.
	ProgressInterval time.Duration
	// InvokeTimeout bounds one invocation as the engine waits for it; 0
	// leaves it to the invoker.
	InvokeTimeout time.Duration
}

// Deps are the parts a Runner drives.
type Deps struct {
	Source       Source
	Invoker      Invoker
	Destination  Destination // nil: given-up batches are dropped (logged)
	Checkpointer Checkpointer
	Logger       *slog.Logger
	// Observer, when set, is told of every invocation.
	Observer Observer
}

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.ParallelizationFactor <= 0 {
		c.ParallelizationFactor = 1
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = event.MaxPayload
	}
	if c.DiscoveryInterval <= 0 {
		c.DiscoveryInterval = 30 * time.Second
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 30 * time.Second
	}
	retryDefaults(&c.RetryInitial, &c.RetryMax)
	if c.StartingPosition.Type == "" {
		c.StartingPosition.Type = event.TrimHorizon
	}
	if c.Kind == "" {
		c.Kind = event.Kinesis
	}
}

func (c *Config) validate(d Deps) error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("mapping has no name"))
	}
	if d.Source == nil {
		errs = append(errs, errors.New("no source"))
	}
	if d.Invoker == nil {
		errs = append(errs, errors.New("no invoker"))
	}
	if d.Checkpointer == nil {
		errs = append(errs, errors.New("no checkpointer"))
	}
	if c.ParallelizationFactor > 10 {
		errs = append(errs, fmt.Errorf("ParallelizationFactor %d is above 10", c.ParallelizationFactor))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mapping %q: %w", c.Name, err)
	}
	return nil
}
