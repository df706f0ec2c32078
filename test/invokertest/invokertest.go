// Package invokertest is the conformance suite every esmd invoker passes:
// Run drives one mapping.Invoker, wired to a test function from package
// functions, through success, function error, panic, process exit, timeout,
// throttle, partial batch response, a 6 MB event, cancellation and
// concurrent calls, and asserts the outcome model of mapping.Invoker.
// Measure times a no-op function for the benchmark table.
package invokertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/functions"
)

// MaxEvent is the size of the large-event case: Lambda's 6 MB synchronous
// invocation payload limit.
const MaxEvent = 6 * 1024 * 1024

// Target is an invoker under test, wired to a function that follows the
// functions protocol.
type Target struct {
	Invoker mapping.Invoker
	// Timeout is the time the function is given; the timeout case sleeps
	// well past it. Zero skips the case.
	Timeout time.Duration
	// Throttles says the function answers functions.DoThrottle with a
	// throttle (Retry-After: 2).
	Throttles bool
	// Exits says functions.DoExit ends a process that esmd supervises or
	// waits for, so that it must surface as a function error.
	Exits bool
	// ErrorType is the errorType expected for functions.DoError; "" means
	// functions.ErrorType.
	ErrorType string
	// Concurrent is the number of concurrent calls of the concurrency case;
	// zero means 8.
	Concurrent int
	// Recovery bounds how long the function may take to serve again after
	// a panic, exit or timeout; zero means 20 s.
	Recovery time.Duration
}

// Invoke calls inv with payload as a fresh request.
func Invoke(ctx context.Context, inv mapping.Invoker, payload []byte) (*mapping.Response, error) {
	return inv.Invoke(ctx, &mapping.Request{
		Payload:   payload,
		RequestID: uuid.NewString(),
		Mapping:   "conformance",
		Attempt:   1,
	})
}

// Run runs the conformance cases against tg, one after the other.
func Run(t *testing.T, tg Target) {
	t.Helper()
	recovery := tg.Recovery
	if recovery == 0 {
		recovery = 20 * time.Second
	}
	errType := tg.ErrorType
	if errType == "" {
		errType = functions.ErrorType
	}
	call := func(t *testing.T, c functions.Command, within time.Duration) (*mapping.Response, time.Duration, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), within)
		defer cancel()
		start := time.Now()
		resp, err := Invoke(ctx, tg.Invoker, functions.Event(c, 0))
		return resp, time.Since(start), err
	}
	// serves checks that the function answers an ok event again.
	serves := func(t *testing.T) {
		t.Helper()
		resp, _, err := call(t, functions.Command{Do: functions.DoOK}, recovery)
		if err != nil {
			t.Fatalf("the function does not serve again: %v", err)
		}
		wantJSON(t, resp.Body, `{}`)
	}

	t.Run("success", func(t *testing.T) {
		resp, _, err := call(t, functions.Command{Do: functions.DoOK}, recovery)
		if err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		wantJSON(t, resp.Body, `{}`)
		if resp.StatusCode != 200 {
			t.Errorf("StatusCode = %d, want 200", resp.StatusCode)
		}
	})

	t.Run("function error", func(t *testing.T) {
		_, _, err := call(t, functions.Command{Do: functions.DoError, Message: "boom 42"}, recovery)
		fe := wantFunctionError(t, err)
		if fe.Type != errType || fe.Message != "boom 42" || fe.Timeout {
			t.Errorf("FunctionError = %+v, want Type %q, Message %q, no timeout", fe, errType, "boom 42")
		}
		serves(t)
	})

	t.Run("panic", func(t *testing.T) {
		_, _, err := call(t, functions.Command{Do: functions.DoPanic, Message: "oh no"}, recovery)
		fe := wantFunctionError(t, err)
		if fe.Timeout {
			t.Errorf("FunctionError = %+v: a panic is not a timeout", fe)
		}
		serves(t)
	})

	t.Run("exit", func(t *testing.T) {
		if !tg.Exits {
			t.Skip("the function's process is not esmd's to watch")
		}
		_, _, err := call(t, functions.Command{Do: functions.DoExit}, recovery)
		fe := wantFunctionError(t, err)
		if fe.Timeout {
			t.Errorf("FunctionError = %+v: an exit is not a timeout", fe)
		}
		serves(t)
	})

	t.Run("timeout", func(t *testing.T) {
		if tg.Timeout == 0 {
			t.Skip("no timeout configured")
		}
		sleep := 3 * tg.Timeout
		_, took, err := call(t, functions.Command{Do: functions.DoSleep, Ms: int(sleep / time.Millisecond)}, tg.Timeout+recovery)
		fe := wantFunctionError(t, err)
		if !fe.Timeout {
			t.Errorf("FunctionError = %+v, want Timeout", fe)
		}
		if took < tg.Timeout || took > tg.Timeout+5*time.Second {
			t.Errorf("timed out after %s, want about %s", took, tg.Timeout)
		}
		serves(t)
	})

	t.Run("throttle", func(t *testing.T) {
		if !tg.Throttles {
			t.Skip("the function cannot throttle")
		}
		_, _, err := call(t, functions.Command{Do: functions.DoThrottle}, recovery)
		var te *mapping.ThrottleError
		if !errors.As(err, &te) {
			t.Fatalf("err = %v (%T), want *mapping.ThrottleError", err, err)
		}
		if te.RetryAfter != 2*time.Second {
			t.Errorf("RetryAfter = %s, want 2s", te.RetryAfter)
		}
	})

	t.Run("partial response", func(t *testing.T) {
		partial := `{"batchItemFailures":[{"itemIdentifier":"49590338271490256608559692538361571095921575989136588898"},{"itemIdentifier":"49590338271490256608559692540925702759324208523137515618"}]}`
		resp, _, err := call(t, functions.Command{Do: functions.DoPartial, Response: json.RawMessage(partial)}, recovery)
		if err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		wantJSON(t, resp.Body, partial)
	})

	t.Run("6 MB event", func(t *testing.T) {
		ev := functions.EventOfSize(functions.Command{Do: functions.DoSize}, MaxEvent)
		if len(ev) != MaxEvent {
			t.Fatalf("event is %d bytes, want %d", len(ev), MaxEvent)
		}
		ctx, cancel := context.WithTimeout(t.Context(), recovery)
		defer cancel()
		resp, err := Invoke(ctx, tg.Invoker, ev)
		if err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		var got struct {
			Bytes  int    `json:"bytes"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(resp.Body, &got); err != nil {
			t.Fatalf("response %q: %v", resp.Body, err)
		}
		if got.Bytes != MaxEvent || got.SHA256 != sha(ev) {
			t.Errorf("the function got %d bytes with sha256 %s, want %d bytes with %s", got.Bytes, got.SHA256, MaxEvent, sha(ev))
		}
	})

	t.Run("cancellation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		timer := time.AfterFunc(200*time.Millisecond, cancel)
		defer timer.Stop()
		start := time.Now()
		_, err := Invoke(ctx, tg.Invoker, functions.Event(functions.Command{Do: functions.DoSleep, Ms: 3000}, 0))
		took := time.Since(start)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v (%T), want one wrapping context.Canceled", err, err)
		}
		var fe *mapping.FunctionError
		var te *mapping.ThrottleError
		if errors.As(err, &fe) || errors.As(err, &te) {
			t.Errorf("err = %v: a cancelled invocation is neither a function error nor a throttle", err)
		}
		if took > 1500*time.Millisecond {
			t.Errorf("Invoke returned %s after start, want soon after the cancel at 200ms", took)
		}
		serves(t)
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Invoke(ctx, tg.Invoker, functions.Event(functions.Command{Do: functions.DoOK}, 0))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want one wrapping context.Canceled", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		n := tg.Concurrent
		if n == 0 {
			n = 8
		}
		var wg sync.WaitGroup
		var ok atomic.Int32
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				resp, _, err := call(t, functions.Command{Do: functions.DoPartial, Response: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}, recovery)
				if err != nil {
					errs <- err
					return
				}
				if !jsonEqual(resp.Body, fmt.Sprintf(`{"i":%d}`, i)) {
					errs <- fmt.Errorf("call %d got %s", i, resp.Body)
					return
				}
				ok.Add(1)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if int(ok.Load()) != n {
			t.Errorf("%d of %d concurrent calls succeeded", ok.Load(), n)
		}
	})
}

func wantFunctionError(t *testing.T, err error) *mapping.FunctionError {
	t.Helper()
	var fe *mapping.FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want *mapping.FunctionError", err, err)
	}
	return fe
}

func wantJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	if !jsonEqual(got, want) {
		t.Errorf("response = %s, want %s", got, want)
	}
}

func jsonEqual(a []byte, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return bytes.Equal(a, []byte(b))
	}
	return cmp.Equal(x, y)
}

// Result is what Measure measured.
type Result struct {
	Calls    int
	Errors   int
	Duration time.Duration
	PerSec   float64
	P50, P99 time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%8.0f/s  p50 %8s  p99 %8s  (%d calls, %d errors, %s)",
		r.PerSec, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Calls, r.Errors, r.Duration.Round(time.Millisecond))
}

// Measure invokes inv with payload from conc goroutines until calls
// invocations were made or d passed, whichever is first, and reports the rate
// and latency percentiles of the successful ones.
func Measure(ctx context.Context, inv mapping.Invoker, payload []byte, conc, calls int, d time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next atomic.Int64
	lat := make([][]time.Duration, conc)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(calls) && ctx.Err() == nil {
				t0 := time.Now()
				_, err := Invoke(ctx, inv, payload)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := Result{Calls: len(all), Errors: int(errs.Load()), Duration: el}
	if len(all) > 0 {
		r.PerSec = float64(len(all)) / el.Seconds()
		r.P50 = all[len(all)*50/100]
		r.P99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
