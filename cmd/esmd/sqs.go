package main

import (
	"fmt"
	"log/slog"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	sqspoller "github.com/esmd-dev/esmd/pollers/sqs"
)

// newSQSRunner builds the runner of the SQS mapping s, which invokes inv.
// The queue is read with the shared SQS client; nothing is called until the
// runner runs. log is the daemon's logger: the runner adds the mapping's
// name itself.
func newSQSRunner(s config.Settings, cfg *config.Config, inv mapping.Invoker, cl *clients, log *slog.Logger) (*mapping.SQSRunner, error) {
	q, err := sqspoller.New(cl.SQS(), sqspoller.Config{
		QueueARN: s.Source.ARN,
		Encoder:  event.NewSQSEncoder(s.Source.Region, s.Source.ARN),
		Logger:   log.With("mapping", s.Name),
	})
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", s.Name, err)
	}
	mc := mapping.SQSConfig{
		Name:                    s.Name,
		UUID:                    s.UUID,
		QueueARN:                s.Source.ARN,
		FIFO:                    s.Source.FIFO,
		BatchSize:               s.BatchSize,
		BatchWindow:             s.BatchingWindow,
		ReportBatchItemFailures: s.ReportBatchItemFailures,
		MaxConcurrency:          s.MaximumConcurrency,
		InitialConcurrency:      s.InitialPollers,
		MinConcurrency:          s.MinPollers,
		ScaleInterval:           s.ScaleInterval,
		WaitTime:                s.WaitTime,
		VisibilityOnError:       s.VisibilityOnError,
		Heartbeat:               s.VisibilityHeartbeat,
		RetryInitial:            s.RetryInitial,
		RetryMax:                s.RetryMax,
	}
	if f, ok := cfg.Functions[s.Function]; ok {
		mc.InvokeTimeout = f.Timeout()
	}
	return mapping.NewSQSRunner(mc, mapping.SQSDeps{Queue: q, Invoker: inv, Logger: log})
}
