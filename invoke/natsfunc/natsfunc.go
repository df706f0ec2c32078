// Package natsfunc invokes a function that is a NATS service: each event is
// sent as a request on a subject and the reply is the function's answer,
// following the conventions of nats.go's micro package.
//
// Outcomes of one invocation:
//   - a reply without error headers succeeds; its data is the function's
//     response, passed on unchanged;
//   - a reply with the header Nats-Service-Error or Nats-Service-Error-Code
//     is a *mapping.FunctionError. Its type is the error code (or, when the
//     reply data is Lambda's error object, that object's errorType) and its
//     message the Nats-Service-Error description;
//   - no reply within the timeout is a *mapping.FunctionError with Timeout
//     set: the request reached a responder, which did not answer in time;
//   - no responders, a closed connection, or an event over the server's
//     max_payload is a plain (invoke-side) error.
//
// Requests carry the headers Esmd-Request-Id, Esmd-Mapping, Esmd-Attempt and
// Esmd-Deadline-Ms (Unix milliseconds).
package natsfunc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/esmd-dev/esmd/invoke"
	"github.com/esmd-dev/esmd/mapping"
)

var _ mapping.Invoker = (*Invoker)(nil)

// Request headers.
const (
	HeaderRequestID = "Esmd-Request-Id"
	HeaderMapping   = "Esmd-Mapping"
	HeaderAttempt   = "Esmd-Attempt"
	HeaderDeadline  = "Esmd-Deadline-Ms"
)

// Config configures an Invoker.
type Config struct {
	// Subject is where requests are sent.
	Subject string
	// Timeout bounds one request; zero means no limit beyond the request's
	// Deadline and ctx.
	Timeout time.Duration
	// Logger receives debug lines about invocations, without payloads. Nil
	// discards.
	Logger *slog.Logger
}

// Invoker sends events as NATS requests on one connection. It is safe for
// concurrent use.
type Invoker struct {
	nc  *nats.Conn
	cfg Config
	log *slog.Logger
}

// New returns an Invoker that sends requests on nc, which the caller owns
// and closes.
func New(nc *nats.Conn, cfg Config) (*Invoker, error) {
	if nc == nil {
		return nil, errors.New("nats function: no connection")
	}
	if cfg.Subject == "" {
		return nil, errors.New("nats function: no subject")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("nats function %s: negative timeout %s", cfg.Subject, cfg.Timeout)
	}
	inv := &Invoker{nc: nc, cfg: cfg, log: cfg.Logger}
	if inv.log == nil {
		inv.log = slog.New(slog.DiscardHandler)
	}
	return inv, nil
}

// Invoke sends req.Payload as a request and waits for the reply, for at most
// the configured Timeout and until req.Deadline. Cancelling ctx abandons the
// request and returns ctx's error, wrapped. See the package documentation
// for the outcomes.
func (inv *Invoker) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	start := time.Now()
	deadline := req.Deadline
	if inv.cfg.Timeout > 0 {
		if d := start.Add(inv.cfg.Timeout); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	cctx := ctx
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		cctx, cancel = context.WithDeadlineCause(ctx, deadline, invoke.ErrTimedOut)
		defer cancel()
	}
	id := req.RequestID
	if id == "" {
		id = uuid.NewString()
	}
	msg := &nats.Msg{Subject: inv.cfg.Subject, Data: req.Payload, Header: nats.Header{}}
	msg.Header[HeaderRequestID] = []string{id}
	if req.Mapping != "" {
		msg.Header[HeaderMapping] = []string{req.Mapping}
	}
	msg.Header[HeaderAttempt] = []string{strconv.Itoa(req.Attempt)}
	if !deadline.IsZero() {
		msg.Header[HeaderDeadline] = []string{strconv.FormatInt(deadline.UnixMilli(), 10)}
	}

	reply, err := inv.nc.RequestMsgWithContext(cctx, msg)
	var out *mapping.Response
	switch {
	case err == nil:
		out, err = outcome(reply)
	case ctx.Err() != nil:
		err = fmt.Errorf("nats function %s: request %s: %w", inv.cfg.Subject, id, ctx.Err())
	case errors.Is(context.Cause(cctx), invoke.ErrTimedOut):
		err = invoke.TimeoutError(deadline.Sub(start), "")
	default:
		err = fmt.Errorf("nats function %s: request %s: %w", inv.cfg.Subject, id, err)
	}
	if inv.log.Enabled(ctx, slog.LevelDebug) {
		inv.log.LogAttrs(ctx, slog.LevelDebug, "nats function invoked",
			slog.String("subject", inv.cfg.Subject), slog.String("mapping", req.Mapping),
			slog.String("request_id", id), slog.Int("attempt", req.Attempt),
			slog.Duration("duration", time.Since(start)), slog.Bool("ok", err == nil))
	}
	return out, err
}

func outcome(reply *nats.Msg) (*mapping.Response, error) {
	code := reply.Header.Get(micro.ErrorCodeHeader)
	desc := reply.Header.Get(micro.ErrorHeader)
	if code == "" && desc == "" {
		return &mapping.Response{Body: reply.Data, StatusCode: 200}, nil
	}
	fe := &mapping.FunctionError{Kind: "Unhandled", Type: code, Message: desc, StatusCode: 200}
	if le, ok := invoke.ParseError(reply.Data); ok {
		if le.Type != "" {
			fe.Type = le.Type
		}
		if fe.Message == "" {
			fe.Message = le.Message
		}
	}
	fe.Timeout = invoke.IsTimeout(fe.Type, fe.Message)
	return nil, fe
}
