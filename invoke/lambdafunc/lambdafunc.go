// Package lambdafunc invokes a function through the Lambda Invoke API
// (synchronous RequestResponse invocations), on AWS or on any endpoint that
// speaks it: LocalStack, `sam local start-lambda`, moto, or AWS's Runtime
// Interface Emulator (RIE) with the RIE compatibility switch.
//
// Outcomes of one invocation:
//   - a response without X-Amz-Function-Error succeeds; its payload is the
//     function's response (for example {"batchItemFailures":[...]}), passed
//     on unchanged, with X-Amz-Executed-Version;
//   - X-Amz-Function-Error (Handled or Unhandled) is a *mapping.FunctionError
//     with errorType and errorMessage read from the payload; Lambda's
//     Sandbox.Timedout or "Task timed out" marks it a timeout;
//   - no response within the configured timeout is a *mapping.FunctionError
//     with Timeout set;
//   - TooManyRequestsException (429) is a *mapping.ThrottleError, with
//     Retry-After when Lambda gives one;
//   - any other error (ResourceNotFound, a service error, the network) is a
//     plain, invoke-side error.
//
// The SDK's own retries are turned off for Invoke: the engine retries, and
// an SDK retry after a 5xx could run the function again unseen.
//
// # RIE compatibility
//
// The Runtime Interface Emulator serves only the function name "function",
// reports a handler's error in a 200 body ({"errorMessage","errorType"})
// without X-Amz-Function-Error, answers a handler panic with a bare 502, a
// timeout with a 200 text body "Task timed out after N seconds", and crashes
// when invoked concurrently. With Config.RIECompat the invoker sends every
// call to "function" without a qualifier, reads such bodies and 502s as
// function errors, and makes one call at a time: a call that ctx abandons
// keeps the emulator until it answers.
package lambdafunc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/esmd-dev/esmd/invoke"
	"github.com/esmd-dev/esmd/mapping"
)

var _ mapping.Invoker = (*Invoker)(nil)

// API is the part of the Lambda client the invoker uses; *lambda.Client
// satisfies it.
type API interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// Config configures an Invoker.
type Config struct {
	// FunctionName is a function name, name:alias, or a full or partial ARN.
	FunctionName string
	// Qualifier is an optional version or alias.
	Qualifier string
	// Timeout bounds one invocation on the client side; it should exceed
	// the function's own timeout. Zero means no limit beyond the request's
	// Deadline and ctx.
	Timeout time.Duration
	// RIECompat talks to the Runtime Interface Emulator: see the package
	// documentation.
	RIECompat bool
	// Logger receives debug lines about invocations, without payloads. Nil
	// discards.
	Logger *slog.Logger
}

// RIEFunctionName is the only function name the emulator serves.
const RIEFunctionName = "function"

// rieHold bounds how long one call may hold the emulator: Lambda's longest
// function timeout and a minute.
const rieHold = 16 * time.Minute

// Invoker calls the Lambda Invoke API. It is safe for concurrent use; with
// RIECompat it makes one call at a time, in the order callers arrive.
type Invoker struct {
	api    API
	cfg    Config
	name   string
	qual   *string
	serial chan struct{} // RIECompat: a one-slot semaphore
	opts   []func(*lambda.Options)
	log    *slog.Logger
}

// New returns an Invoker calling api. It does not contact the service.
func New(api API, cfg Config) (*Invoker, error) {
	if api == nil {
		return nil, errors.New("lambda function: no client")
	}
	if cfg.FunctionName == "" {
		return nil, errors.New("lambda function: no function name")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("lambda function %s: negative timeout %s", cfg.FunctionName, cfg.Timeout)
	}
	inv := &Invoker{api: api, cfg: cfg, name: cfg.FunctionName, log: cfg.Logger}
	if cfg.Qualifier != "" {
		inv.qual = aws.String(cfg.Qualifier)
	}
	if inv.log == nil {
		inv.log = slog.New(slog.DiscardHandler)
	}
	noRetry := func(o *lambda.Options) { o.Retryer = aws.NopRetryer{} }
	inv.opts = []func(*lambda.Options){noRetry}
	if cfg.RIECompat {
		inv.name, inv.qual = RIEFunctionName, nil
		inv.serial = make(chan struct{}, 1)
		inv.opts = append(inv.opts, func(o *lambda.Options) {
			o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
				return st.Deserialize.Add(rieFixup, middleware.After)
			})
		})
	}
	return inv, nil
}

type result struct {
	out *lambda.InvokeOutput
	err error
}

// Invoke calls the function with req.Payload and waits for its answer, for
// at most the configured Timeout and until req.Deadline. Cancelling ctx
// abandons the invocation and returns ctx's error, wrapped. See the package
// documentation for the outcomes.
func (inv *Invoker) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	begin := time.Now()
	in := &lambda.InvokeInput{
		FunctionName:   aws.String(inv.name),
		Qualifier:      inv.qual,
		InvocationType: types.InvocationTypeRequestResponse,
		Payload:        req.Payload,
	}
	var r result
	var cctx context.Context
	var start, deadline time.Time
	if inv.serial == nil {
		start, deadline = inv.deadline(req)
		var cancel context.CancelFunc
		cctx, cancel = withDeadline(ctx, deadline)
		defer cancel()
		r.out, r.err = inv.api.Invoke(cctx, in, inv.opts...)
	} else {
		select {
		case inv.serial <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("lambda function %s: waiting for the emulator: %w", inv.cfg.FunctionName, ctx.Err())
		}
		// The function's time starts when the emulator is ours.
		start, deadline = inv.deadline(req)
		// The call outlives an abandoning ctx, and the client's timeout,
		// and holds the emulator until it answers: a second call while it
		// runs would crash it. The emulator ends the handler at the
		// function's own timeout; rieHold only bounds a hung emulator.
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rieHold)
		done := make(chan result, 1)
		go func() {
			defer cancel()
			out, err := inv.api.Invoke(callCtx, in, inv.opts...)
			<-inv.serial
			done <- result{out, err}
		}()
		var expired <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			expired = t.C
		}
		var timedOut context.CancelCauseFunc
		cctx, timedOut = context.WithCancelCause(ctx)
		defer timedOut(nil)
		select {
		case r = <-done:
		case <-expired:
			timedOut(invoke.ErrTimedOut)
			r.err = invoke.ErrTimedOut
		case <-ctx.Done():
			r.err = ctx.Err()
		}
	}
	out, err := inv.outcome(ctx, cctx, r, deadline.Sub(start))
	if inv.log.Enabled(ctx, slog.LevelDebug) {
		inv.log.LogAttrs(ctx, slog.LevelDebug, "lambda function invoked",
			slog.String("function", inv.cfg.FunctionName), slog.String("mapping", req.Mapping),
			slog.String("request_id", req.RequestID), slog.Int("attempt", req.Attempt),
			slog.Duration("duration", time.Since(begin)), slog.Bool("ok", err == nil))
	}
	return out, err
}

// deadline returns now and the deadline of an invocation starting now: the
// configured timeout, or the request's Deadline when that comes first.
func (inv *Invoker) deadline(req *mapping.Request) (start, deadline time.Time) {
	start = time.Now()
	deadline = req.Deadline
	if inv.cfg.Timeout > 0 {
		if d := start.Add(inv.cfg.Timeout); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	return start, deadline
}

func withDeadline(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadlineCause(ctx, deadline, invoke.ErrTimedOut)
}

func (inv *Invoker) outcome(ctx, cctx context.Context, r result, allowed time.Duration) (*mapping.Response, error) {
	if err := r.err; err != nil {
		var tmr *types.TooManyRequestsException
		var re *awshttp.ResponseError
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("lambda function %s: invoke: %w", inv.cfg.FunctionName, ctx.Err())
		case errors.Is(context.Cause(cctx), invoke.ErrTimedOut):
			return nil, invoke.TimeoutError(allowed, "")
		case errors.As(err, &tmr):
			te := &mapping.ThrottleError{StatusCode: http.StatusTooManyRequests, Err: err}
			if te.RetryAfter = retryAfter(aws.ToString(tmr.RetryAfterSeconds)); te.RetryAfter == 0 && errors.As(err, &re) {
				te.RetryAfter = retryAfter(re.Response.Header.Get("Retry-After"))
			}
			return nil, te
		case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusTooManyRequests:
			return nil, &mapping.ThrottleError{StatusCode: http.StatusTooManyRequests, Err: err,
				RetryAfter: retryAfter(re.Response.Header.Get("Retry-After"))}
		}
		return nil, fmt.Errorf("lambda function %s: invoke: %w", inv.cfg.FunctionName, err)
	}
	out := r.out
	version := aws.ToString(out.ExecutedVersion)
	if kind := aws.ToString(out.FunctionError); kind != "" {
		return nil, invoke.FunctionError(kind, int(out.StatusCode), version, out.Payload)
	}
	if len(out.Payload) > invoke.MaxResponse {
		return nil, invoke.TooLargeError(version)
	}
	return &mapping.Response{Body: out.Payload, StatusCode: int(out.StatusCode), ExecutedVersion: version}, nil
}

// retryAfter reads a Retry-After value in delay seconds; anything else gives
// zero.
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(min(s, 86400)) * time.Second
}

const headerFunctionError = "X-Amz-Function-Error"

// rieFixup makes the emulator's answers read like Lambda's: it runs next to
// the transport, before the SDK reads the response.
var rieFixup = middleware.DeserializeMiddlewareFunc("EsmdRIECompat", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if !ok || resp.Header.Get(headerFunctionError) != "" || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadGateway) {
		return out, md, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, invoke.MaxResponse+1))
	_ = resp.Body.Close()
	if rerr != nil {
		return out, md, fmt.Errorf("read emulator response: %w", rerr)
	}
	failed := resp.StatusCode == http.StatusBadGateway
	if _, isErr := invoke.ParseError(body); isErr {
		failed = true
	} else if t := bytes.TrimSpace(body); bytes.HasPrefix(t, []byte("Task timed out after")) {
		failed = true
		body = fmt.Appendf(nil, `{"errorType":"Sandbox.Timedout","errorMessage":%q}`, t)
	}
	if failed {
		resp.StatusCode = http.StatusOK
		resp.Header.Set(headerFunctionError, "Unhandled")
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return out, md, err
})
