package destinations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// NATS timeouts: a connect, a stream lookup, a publish ack or a flush that
// takes longer fails, and the engine retries it.
const (
	natsConnectTimeout = 5 * time.Second
	natsRequestTimeout = 10 * time.Second
	natsDrainTimeout   = 10 * time.Second
	natsReconnectWait  = 250 * time.Millisecond
)

// NATS publishes failure records to a NATS subject, the failure record's
// JSON as payload (without the records, as for SQS and SNS).
//
// On its first Send it asks JetStream, once, whether a stream captures the
// subject. If one does, each record is published to JetStream and Send waits
// for the stream's ack: the record is stored before Send returns nil, and the
// message id (a hash of the record) lets the stream drop the copy a retry may
// add. If none does, or the server has no JetStream, Send makes a core
// publish followed by a flush: the server has the record when Send returns,
// but core NATS stores nothing and hands it only to the subscribers present
// at that moment, so delivery is at most once, and a record published while
// nobody listens is lost. Create a stream on the subject for at-least-once
// delivery.
//
// The connection is made on the first Send, reconnects on its own, and
// buffers nothing while reconnecting: a Send during an outage fails at once.
// NATS is safe for concurrent use.
type NATS struct {
	servers string // comma-separated nats:// URLs
	user    string
	pass    string
	subject string
	log     *slog.Logger
	refused refusals

	// lock admits one Send at a time into the connection set-up; it guards
	// the fields below.
	lock   chan struct{}
	nc     *nats.Conn
	js     jetstream.JetStream
	done   chan struct{} // closed when nc is closed
	known  bool          // whether stream is decided
	stream string        // the stream that captures subject, or "" for core
	closed bool
}

var _ mapping.Destination = (*NATS)(nil)

// NewNATS returns the destination of target,
// nats://[USER:PASS@]HOST[:PORT][,HOST[:PORT]...]/SUBJECT. The port defaults
// to 4222; the subject must have no wildcards or spaces. It does no I/O.
func NewNATS(target string, logger *slog.Logger) (*NATS, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s; want nats://HOST:PORT/SUBJECT", ErrInvalidTarget, redactUserinfo(target), why)
	}
	rest, ok := strings.CutPrefix(target, "nats://")
	if !ok {
		return nil, bad("not a nats:// URL")
	}
	authority, subject, _ := strings.Cut(rest, "/")
	if !validSubject(subject) {
		return nil, bad("the subject is empty or has wildcards or spaces")
	}
	d := &NATS{subject: subject, lock: make(chan struct{}, 1)}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		d.user, d.pass, _ = strings.Cut(authority[:at], ":")
		authority = authority[at+1:]
	}
	var urls []string
	for _, h := range strings.Split(authority, ",") {
		if h == "" {
			return nil, bad("no server")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), "4222")
		}
		if host, port, err := net.SplitHostPort(h); err != nil || host == "" || port == "" {
			return nil, bad(fmt.Sprintf("server %q is not HOST:PORT", h))
		}
		urls = append(urls, "nats://"+h)
	}
	d.servers = strings.Join(urls, ",")
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d.log = logger.With("destination", "nats", "servers", d.servers, "subject", subject)
	return d, nil
}

// validSubject reports whether s is a subject one can publish to: non-empty
// tokens, no wildcards, no white space.
func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}

// redactUserinfo hides the password of a nats:// target.
func redactUserinfo(target string) string {
	scheme, rest, ok := strings.Cut(target, "://")
	if !ok {
		return target
	}
	authority, path, _ := strings.Cut(rest, "/")
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return target
	}
	user, _, hasPass := strings.Cut(authority[:at], ":")
	if hasPass {
		user += ":xxxxx"
	}
	return scheme + "://" + user + authority[at:] + "/" + path
}

// Subject returns the subject failure records are published to.
func (d *NATS) Subject() string { return d.subject }

// Send publishes f once: to JetStream, waiting for the stream's ack, when a
// stream captures the subject; otherwise with a core publish and a flush
// (at most once). It connects and looks the stream up on first use. It blocks
// for at most about ten seconds per round trip, less when ctx ends first.
// After Close it fails with ErrClosed.
func (d *NATS) Send(ctx context.Context, f *event.Failure) error {
	body, err := marshal(f)
	if err != nil {
		return fmt.Errorf("destination nats %s: encode: %w", d.subject, err)
	}
	nc, js, stream, err := d.prepare(ctx)
	if err != nil {
		return fmt.Errorf("destination nats %s: %w", d.subject, err)
	}
	ctx, cancel := context.WithTimeout(ctx, natsRequestTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: d.subject, Data: body, Header: nats.Header{}}
	msg.Header.Set("Content-Type", "application/json")
	if stream != "" {
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(dedupID(body)), jetstream.WithExpectStream(stream),
			jetstream.WithRetryAttempts(0)) // one attempt: the engine retries
		if err != nil {
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) {
				d.forgetStream(nc) // the stream may be gone: look again next time
			}
			return d.publishError(ctx, f, body, "jetstream publish", err)
		}
		d.log.DebugContext(ctx, "failure record sent", append(logAttrs(f), "stream", ack.Stream, "seq", ack.Sequence, "duplicate", ack.Duplicate)...)
		return nil
	}
	if err := nc.PublishMsg(msg); err != nil {
		return d.publishError(ctx, f, body, "publish", err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("destination nats %s: flush: %w", d.subject, err)
	}
	d.log.DebugContext(ctx, "failure record sent", append(logAttrs(f), "stream", "")...)
	return nil
}

// publishError wraps a publish error; a payload over the server's limit is
// permanent.
func (d *NATS) publishError(ctx context.Context, f *event.Failure, body []byte, op string, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		d.refused.warn(ctx, d.log, "failure record refused: over the server's maximum payload", f, body, "bytes", len(body))
		return fmt.Errorf("destination nats %s: %s: %w", d.subject, op, tooLarge(len(body), 0))
	}
	return fmt.Errorf("destination nats %s: %s: %w", d.subject, op, err)
}

// prepare returns the connection, its JetStream context and the stream that
// captures the subject ("" for core NATS), connecting and asking JetStream
// when not yet done. Concurrent callers wait for one set-up, or for ctx.
func (d *NATS) prepare(ctx context.Context) (*nats.Conn, jetstream.JetStream, string, error) {
	select {
	case d.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, "", ctx.Err()
	}
	defer func() { <-d.lock }()
	if d.closed {
		return nil, nil, "", ErrClosed
	}
	if d.nc == nil || d.nc.IsClosed() {
		if err := d.connect(); err != nil {
			return nil, nil, "", err
		}
	}
	if !d.known {
		lctx, cancel := context.WithTimeout(ctx, natsRequestTimeout)
		name, err := d.js.StreamNameBySubject(lctx, d.subject)
		cancel()
		switch {
		case err == nil:
			d.stream = name
		case errors.Is(err, jetstream.ErrStreamNotFound),
			errors.Is(err, nats.ErrNoResponders),
			errors.Is(err, jetstream.ErrJetStreamNotEnabled),
			errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			d.stream = ""
		default:
			return nil, nil, "", fmt.Errorf("look up the stream of the subject: %w", err)
		}
		d.known = true
		if d.stream == "" {
			d.log.InfoContext(ctx, "no JetStream stream captures the subject: publishing with core NATS, at most once")
		} else {
			d.log.InfoContext(ctx, "publishing to JetStream", "stream", d.stream)
		}
	}
	return d.nc, d.js, d.stream, nil
}

// connect dials the servers. Called with lock held.
func (d *NATS) connect() error {
	done := make(chan struct{})
	opts := []nats.Option{
		nats.Name("esmd on-failure destination"),
		nats.Timeout(natsConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(natsReconnectWait),
		nats.ReconnectBufSize(-1), // fail a publish during an outage rather than hold it in memory
		nats.DrainTimeout(natsDrainTimeout),
		nats.ClosedHandler(func(*nats.Conn) { close(done) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			d.log.Warn("disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { d.log.Info("reconnected") }),
	}
	if d.user != "" {
		opts = append(opts, nats.UserInfo(d.user, d.pass))
	}
	nc, err := nats.Connect(d.servers, opts...)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	d.nc, d.js, d.done, d.known = nc, js, done, false
	return nil
}

// forgetStream makes the next Send on nc look the stream up again.
func (d *NATS) forgetStream(nc *nats.Conn) {
	d.lock <- struct{}{}
	if d.nc == nc {
		d.known = false
	}
	<-d.lock
}

// Close drains the connection, if one was made: it waits for the server to
// take what was published, up to ten seconds, then closes it. Later Sends
// fail with ErrClosed. It is idempotent; a Send in flight may fail.
func (d *NATS) Close() error {
	d.lock <- struct{}{}
	nc, done := d.nc, d.done
	already := d.closed
	d.closed = true
	<-d.lock
	if already || nc == nil {
		return nil
	}
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		nc.Close()
		return fmt.Errorf("destination nats %s: drain: %w", d.subject, err)
	}
	timer := time.NewTimer(natsDrainTimeout + time.Second)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		nc.Close()
		return fmt.Errorf("destination nats %s: drain: not closed within %s", d.subject, natsDrainTimeout)
	}
	return nil
}
