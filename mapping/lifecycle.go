package mapping

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// lifecycle is what every runner shares: the soft-stop signal, the end of
// Run, and AWS's LastProcessingResult. Runner and SQSRunner embed it.
type lifecycle struct {
	name      string
	drainC    chan struct{}
	drainOnce sync.Once
	done      chan struct{} // closed when Run returns
	running   atomic.Bool

	resultMu   sync.Mutex
	lastResult string
}

func newLifecycle(name string) lifecycle {
	return lifecycle{name: name, drainC: make(chan struct{}), done: make(chan struct{}), lastResult: "No records processed"}
}

// LastProcessingResult returns AWS's LastProcessingResult text: "No records
// processed", "OK" or "PROBLEM: Function call failed".
func (l *lifecycle) LastProcessingResult() string {
	l.resultMu.Lock()
	defer l.resultMu.Unlock()
	return l.lastResult
}

// noteResult records the outcome of the latest invocation.
func (l *lifecycle) noteResult(err error) {
	res := "OK"
	if err != nil {
		res = "PROBLEM: Function call failed"
	}
	l.resultMu.Lock()
	l.lastResult = res
	l.resultMu.Unlock()
}

func (l *lifecycle) isDraining() bool {
	select {
	case <-l.drainC:
		return true
	default:
		return false
	}
}

// start marks Run as begun; it fails when Run already ran.
func (l *lifecycle) start() error {
	if !l.running.CompareAndSwap(false, true) {
		return fmt.Errorf("mapping %s: already running", l.name)
	}
	return nil
}

// Drain stops the mapping softly (see the runner's own documentation of
// what it finishes first). It waits until Run returns or ctx ends, and may
// be called more than once.
func (l *lifecycle) Drain(ctx context.Context) error {
	l.drainOnce.Do(func() { close(l.drainC) })
	if !l.running.Load() {
		return nil
	}
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mapping %s: drain: %w", l.name, ctx.Err())
	}
}

// newBackoff returns exponential backoff from initial to max that never
// gives up; one goroutine uses it.
func newBackoff(initial, max time.Duration) *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = initial
	bo.MaxInterval = max
	bo.MaxElapsedTime = 0
	bo.Reset()
	return bo
}

// retryDefaults fills in the retry backoff bounds: 100 ms and 30 s, and a
// maximum no lower than the start.
func retryDefaults(initial, max *time.Duration) {
	if *initial <= 0 {
		*initial = 100 * time.Millisecond
	}
	if *max <= 0 {
		*max = 30 * time.Second
	}
	*max = maxDuration(*max, *initial)
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// sleepDrain waits d; it returns false when ctx ends or drain is closed
// first (a nil drain never is).
func sleepDrain(ctx context.Context, drain <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-drain:
		return false
	case <-ctx.Done():
		return false
	}
}
