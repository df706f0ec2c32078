package kinesis

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cenkalti/backoff/v4"
)

// errClass is what a reader does about an error.
type errClass int

const (
	errFatal    errClass = iota // return it
	errThrottle                 // back off and retry
	errServer                   // 5xx: back off, renew the iterator, retry
	errNetwork                  // no response: back off and retry
	errExpired                  // renew the iterator and retry
	errGone                     // the stream (or consumer) no longer exists
	errCanceled                 // the caller's context ended
)

// classify sorts an error from a Kinesis call.
func classify(err error) errClass {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errCanceled
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ProvisionedThroughputExceededException", "LimitExceededException",
			"KMSThrottlingException", "ThrottlingException",
			// SubscribeToShard refuses a second subscription to a shard
			// for a few seconds after the previous one.
			"ResourceInUseException":
			return errThrottle
		case "ExpiredIteratorException":
			return errExpired
		case "ResourceNotFoundException":
			return errGone
		case "InternalFailureException", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException":
			return errServer
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		if re.HTTPStatusCode() >= 500 {
			return errServer
		}
		return errFatal
	}
	if ae != nil {
		return errFatal
	}
	// No HTTP response at all: the connection failed or broke.
	return errNetwork
}

// retrier paces the retries of one reader (or one Shards call): capped
// exponential backoff, one Warn when an outage starts and one Info when it
// ends. It is used by one goroutine at a time.
type retrier struct {
	b     *backoff.ExponentialBackOff
	log   *slog.Logger
	op    string
	since time.Time // start of the current outage; zero when none
	tries int
	// failing is read by other goroutines (status, readiness).
	failing atomic.Bool
}

func newRetrier(cfg Config, log *slog.Logger, op string) *retrier {
	return &retrier{
		b: backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(cfg.minBackoff),
			backoff.WithMaxInterval(cfg.maxBackoff),
			backoff.WithMaxElapsedTime(0),
		),
		log: log,
		op:  op,
	}
}

// wait logs the start of an outage and blocks for the next backoff interval,
// or until ctx ends.
func (r *retrier) wait(ctx context.Context, err error) error {
	if r.tries == 0 {
		r.since = time.Now()
		r.failing.Store(true)
		r.log.Warn("kinesis call failing; retrying with backoff", "op", r.op, "err", err)
	}
	r.tries++
	return sleep(ctx, r.b.NextBackOff())
}

// ok ends an outage, if there was one.
func (r *retrier) ok() {
	if r.tries == 0 {
		return
	}
	r.log.Info("kinesis call recovered", "op", r.op, "attempts", r.tries, "outage", time.Since(r.since).Round(time.Millisecond))
	r.failing.Store(false)
	r.tries = 0
	r.b.Reset()
}

// sleep blocks for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
