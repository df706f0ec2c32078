package mapping_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/fakes"
)

// keepFailed is an Invoker that remembers the payload of every invocation
// that fails or answers with PayloadInUse, the buffer itself and a copy of
// it, as an invoker still sending it would hold it.
type keepFailed struct {
	fn   *fakes.Function
	mu   sync.Mutex
	kept []struct{ buf, was []byte }
}

func (k *keepFailed) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	resp, err := k.fn.Invoke(ctx, req)
	if err != nil || resp.PayloadInUse {
		k.mu.Lock()
		k.kept = append(k.kept, struct{ buf, was []byte }{req.Payload, bytes.Clone(req.Payload)})
		k.mu.Unlock()
	}
	return resp, err
}

// TestFailedInvokeKeepsItsPayload checks that the engine writes no later
// event into the buffer of an invocation that failed, or that succeeded with
// PayloadInUse: Request.Payload says an invoker may still be sending it.
func TestFailedInvokeKeepsItsPayload(t *testing.T) {
	tests := []struct {
		name  string
		first *mapping.Response // the answer to each batch's first attempt, when err is nil
		err   error
		calls int
	}{
		{name: "function error", err: &mapping.FunctionError{Kind: "Unhandled", StatusCode: 200}, calls: 8},
		{name: "throttle", err: &mapping.ThrottleError{StatusCode: 429}, calls: 8},
		{name: "invoke-side error", err: errors.New("connection reset"), calls: 8},
		{name: "answered before reading the event", first: &mapping.Response{StatusCode: 200, PayloadInUse: true}, calls: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fakes.NewStream(1)
			for i := range 40 {
				s.Put("shard-0", "k", []byte(fmt.Sprintf("r%02d", i)))
			}
			var mu sync.Mutex
			tried := map[string]bool{}
			fn := &fakes.Function{Handle: func(ctx context.Context, recs []fakes.Rec) (*mapping.Response, error) {
				mu.Lock()
				defer mu.Unlock()
				if first := recs[0].Seq; !tried[first] {
					tried[first] = true
					return tc.first, tc.err
				}
				return &mapping.Response{StatusCode: 200}, nil
			}}
			inv := &keepFailed{fn: fn}
			cfg := baseConfig()
			h := run(t, cfg, mapping.Deps{Source: s, Invoker: inv, Destination: &fakes.Destination{}, Checkpointer: fakes.NewCheckpoints()})
			eventually(t, "every batch done", func() bool { return len(fn.Invocations()) == tc.calls })
			h.drain()
			inv.mu.Lock()
			defer inv.mu.Unlock()
			if len(inv.kept) != 4 {
				t.Fatalf("%d invocations kept, want 4", len(inv.kept))
			}
			for i, k := range inv.kept {
				if !bytes.Equal(k.buf, k.was) {
					t.Errorf("kept invocation %d: its payload was overwritten after Invoke returned", i)
				}
			}
		})
	}
}
