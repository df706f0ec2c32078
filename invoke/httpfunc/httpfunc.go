// Package httpfunc invokes a function that is an HTTP endpoint: each event is
// POSTed as JSON, and the response is read the way Lambda's Invoke response
// is read.
//
// Outcomes of one invocation:
//   - a 2xx without X-Amz-Function-Error succeeds; its body is the function's
//     response (for example {"batchItemFailures":[...]}), passed on unchanged;
//   - X-Amz-Function-Error on any status, or a 4xx/5xx other than 429 and
//     503, is a *mapping.FunctionError, with Lambda's {"errorType",
//     "errorMessage"} body parsed when there is one; so is a response larger
//     than Lambda's 6 MB limit, and a function that does not answer within
//     the timeout (Timeout set);
//   - 429 and 503 are a *mapping.ThrottleError carrying Retry-After;
//   - anything that keeps the event from reaching the function (connection
//     refused, DNS, a reset before the response, a redirect) is a plain
//     error, an invoke-side error in the engine's terms.
package httpfunc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/esmd-dev/esmd/invoke"
	"github.com/esmd-dev/esmd/mapping"
)

var _ mapping.Invoker = (*Invoker)(nil)

// MaxResponse is the largest function response accepted, Lambda's
// synchronous response limit (6 MB and a little). A larger one is a function
// error, as on Lambda.
const MaxResponse = 6*1024*1024 + 100

// Request and response headers.
const (
	HeaderRequestID      = "X-Esmd-Request-Id"
	HeaderMapping        = "X-Esmd-Mapping"
	HeaderAttempt        = "X-Esmd-Attempt"
	HeaderDeadline       = "X-Esmd-Deadline-Ms" // Unix milliseconds
	HeaderInvocationType = "X-Amz-Invocation-Type"
	HeaderFunctionError  = "X-Amz-Function-Error"
	HeaderExecuted       = "X-Amz-Executed-Version"
)

// Config configures an Invoker.
type Config struct {
	// URL is the endpoint the events are POSTed to: http or https.
	URL string
	// Timeout bounds one invocation, from sending the request to the end of
	// the response; past it the invocation is a function error (timed out).
	// Zero means no limit beyond the request's Deadline and ctx.
	Timeout time.Duration
	// Headers are added to every request. They cannot replace the headers
	// the invoker sets itself (Content-Type, X-Amz-Invocation-Type and
	// X-Esmd-*); a "Host" entry sets the request's Host.
	Headers map[string]string
	// Client sends the requests. Nil uses a shared client tuned for many
	// concurrent invocations of one host that does not follow redirects.
	Client *http.Client
	// Logger receives debug lines about invocations, without payloads. Nil
	// discards.
	Logger *slog.Logger
}

// Invoker POSTs events to an HTTP endpoint. It is safe for concurrent use and
// keeps connections open between invocations.
type Invoker struct {
	url     string
	name    string // the URL without credentials or query, for errors and logs
	timeout time.Duration
	host    string
	headers []header // fixed headers, set on every request
	client  *http.Client
	log     *slog.Logger
}

type header struct {
	key   string // canonical
	value []string
}

// New checks cfg and returns an Invoker. It does not contact the endpoint.
func New(cfg Config) (*Invoker, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// The parse error repeats the URL, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("http function: url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http function: url %q: want http:// or https:// and a host", redact(u))
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("http function %s: negative timeout %s", redact(u), cfg.Timeout)
	}
	inv := &Invoker{
		url:     u.String(),
		name:    redact(u),
		timeout: cfg.Timeout,
		client:  cfg.Client,
		log:     cfg.Logger,
	}
	if inv.client == nil {
		inv.client = defaultClient()
	}
	if inv.log == nil {
		inv.log = slog.New(slog.DiscardHandler)
	}
	reserved := map[string]bool{
		"Content-Type": true, "Content-Length": true, HeaderInvocationType: true,
		HeaderRequestID: true, HeaderMapping: true, HeaderAttempt: true, HeaderDeadline: true,
	}
	for k, v := range cfg.Headers {
		ck := http.CanonicalHeaderKey(k)
		switch {
		case ck == "" || strings.ContainsAny(ck, " \t\r\n:"):
			return nil, fmt.Errorf("http function %s: invalid header name %q", inv.name, k)
		case strings.ContainsAny(v, "\r\n"):
			return nil, fmt.Errorf("http function %s: header %s: value has a line break", inv.name, ck)
		case reserved[ck]:
			return nil, fmt.Errorf("http function %s: header %s is set by esmd and cannot be configured", inv.name, ck)
		case ck == "Host":
			inv.host = v
		default:
			inv.headers = append(inv.headers, header{ck, []string{v}})
		}
	}
	inv.headers = append(inv.headers,
		header{"Content-Type", []string{"application/json"}},
		header{HeaderInvocationType, []string{"RequestResponse"}},
	)
	return inv, nil
}

// redact returns u without credentials, query or fragment, which may carry
// secrets.
func redact(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// Client returns the client of the Invokers configured without one, shared
// by all of them. It is safe for concurrent use.
func Client() *http.Client { return defaultClient() }

var defaultClient = sync.OnceValue(func() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialPooled,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256, // 10 lanes × many shards invoking one host
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			// Over plain HTTP/1.1, the head and body of an event up
			// to 64 KB go out in one write, where the default 4 KB
			// buffer makes three: a batch of 100 Kinesis records of
			// 100 bytes is 47 KB. A larger body is written through
			// the buffer and then dialPooled's copy. (TLS writes
			// records of 16 KB at most whatever the buffer, and HTTP/2
			// does not use it.) The buffer lives as long as its
			// connection: 64 KB for each, where the default is 4 KB.
			WriteBufferSize: 64 << 10,
		},
		// A redirect is answered as an invoke-side error: the event did
		// not reach a function.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
})

var dialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}

// dialPooled dials a connection that copies request bodies through a pooled
// buffer. net/http writes a body of known length through an io.LimitReader,
// which hides the payload's WriteTo, so a plain TCP connection would copy it
// through a new 32 KB buffer on every request.
func dialPooled(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return pooledConn{c}, nil
}

type pooledConn struct{ net.Conn }

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ReadFrom copies r to the connection through a pooled buffer.
func (c pooledConn) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(writeOnly{c.Conn}, r, *bp)
}

// writeOnly hides the connection's own ReadFrom from io.CopyBuffer.
type writeOnly struct{ io.Writer }

// errTimedOut is the cause of the context of an invocation that ran out of
// time.
var errTimedOut = errors.New("invocation timed out")

// Invoke POSTs req.Payload and waits for the response, for at most the
// configured Timeout and until req.Deadline. The deadline sent in
// X-Esmd-Deadline-Ms is the earlier of the two. Cancelling ctx abandons the
// invocation and returns ctx's error, wrapped; it is not a function error.
// See the package documentation for the outcomes.
func (inv *Invoker) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	start := time.Now()
	deadline := req.Deadline
	if inv.timeout > 0 {
		if d := start.Add(inv.timeout); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	cctx := ctx
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		cctx, cancel = context.WithDeadlineCause(ctx, deadline, errTimedOut)
		defer cancel()
	}
	// connected tells a timeout while the function had the event (a
	// function error) from one while still connecting (invoke-side).
	var connected atomic.Bool
	// wrote tells whether net/http has finished writing the request,
	// whatever the outcome. It may still be writing the body after Do has
	// returned, when the function answered before reading all of it; the
	// engine must then not reuse the payload (Response.PayloadInUse).
	var wrote atomic.Bool
	cctx = httptrace.WithClientTrace(cctx, &httptrace.ClientTrace{
		GotConn:      func(httptrace.GotConnInfo) { connected.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})

	hr, err := http.NewRequestWithContext(cctx, http.MethodPost, inv.url, bytes.NewReader(req.Payload))
	if err != nil {
		return nil, fmt.Errorf("http function %s: build request: %w", inv.name, err)
	}
	hr.ContentLength = int64(len(req.Payload))
	if inv.host != "" {
		hr.Host = inv.host
	}
	for _, h := range inv.headers {
		hr.Header[h.key] = h.value
	}
	id := req.RequestID
	if id == "" {
		id = uuid.NewString()
	}
	hr.Header[HeaderRequestID] = []string{id}
	if req.Mapping != "" {
		hr.Header[HeaderMapping] = []string{req.Mapping}
	}
	hr.Header[HeaderAttempt] = []string{strconv.Itoa(req.Attempt)}
	if !deadline.IsZero() {
		hr.Header[HeaderDeadline] = []string{strconv.FormatInt(deadline.UnixMilli(), 10)}
	}

	resp, err := inv.client.Do(hr)
	var answer []byte
	if err == nil {
		answer, err = readBody(resp)
		_ = resp.Body.Close()
	}
	if err != nil && !errors.Is(err, errTooLarge) {
		return nil, inv.transportError(ctx, cctx, connected.Load(), id, deadline.Sub(start), err)
	}
	out, ierr := inv.outcome(resp, answer, errors.Is(err, errTooLarge))
	if out != nil {
		out.PayloadInUse = !wrote.Load()
	}
	if inv.log.Enabled(ctx, slog.LevelDebug) {
		inv.log.LogAttrs(ctx, slog.LevelDebug, "http function invoked",
			slog.String("function", inv.name), slog.String("mapping", req.Mapping),
			slog.String("request_id", id), slog.Int("attempt", req.Attempt),
			slog.Int("status", resp.StatusCode), slog.Int("bytes", len(answer)),
			slog.Duration("duration", time.Since(start)), slog.Bool("ok", ierr == nil))
	}
	return out, ierr
}

// transportError classifies an error that came before a whole response.
func (inv *Invoker) transportError(ctx, cctx context.Context, connected bool, id string, allowed time.Duration, err error) error {
	// A *url.Error repeats the URL, query and all; name the function instead.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("http function %s: request %s: %w", inv.name, id, ctx.Err())
	}
	if errors.Is(context.Cause(cctx), errTimedOut) {
		if !connected {
			return fmt.Errorf("http function %s: request %s: timed out connecting: %w", inv.name, id, err)
		}
		// Lambda's Invoke answers a timeout with 200 and a function
		// error; the failure record gives that status code.
		return invoke.TimeoutError(allowed, "")
	}
	return fmt.Errorf("http function %s: request %s: %w", inv.name, id, err)
}

// outcome reads a whole response.
func (inv *Invoker) outcome(resp *http.Response, body []byte, tooLarge bool) (*mapping.Response, error) {
	kind := resp.Header.Get(HeaderFunctionError)
	version := resp.Header.Get(HeaderExecuted)
	status := resp.StatusCode
	switch {
	case tooLarge:
		return nil, &mapping.FunctionError{
			Kind:            "Unhandled",
			Type:            "Function.ResponseSizeTooLarge",
			Message:         fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponse),
			StatusCode:      status,
			ExecutedVersion: version,
		}
	case kind != "":
		return nil, functionError(kind, status, version, body)
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		te := &mapping.ThrottleError{RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()), StatusCode: status}
		if fe := parseLambdaError(body); fe.Type != "" || fe.Message != "" {
			te.Err = errors.New(strings.TrimPrefix(fe.Error(), "function error: "))
		}
		return nil, te
	case status >= 200 && status < 300:
		return &mapping.Response{Body: body, StatusCode: status, ExecutedVersion: version}, nil
	case status >= 400:
		return nil, functionError("Unhandled", status, version, body)
	}
	return nil, fmt.Errorf("http function %s: unexpected status %d", inv.name, status)
}

func functionError(kind string, status int, version string, body []byte) *mapping.FunctionError {
	fe := parseLambdaError(body)
	fe.Kind = kind
	fe.StatusCode = status
	fe.ExecutedVersion = version
	if fe.Type == "" && fe.Message == "" {
		fe.Message = bodySnippet(body, status)
	}
	return fe
}

// parseLambdaError reads Lambda's error object {"errorType","errorMessage"}.
func parseLambdaError(body []byte) *mapping.FunctionError {
	var e struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if len(body) > 0 && body[0] == '{' {
		_ = json.Unmarshal(body, &e)
	}
	return &mapping.FunctionError{Type: e.Type, Message: e.Message}
}

// bodySnippet describes an error response that is not Lambda's error object:
// the start of its first line when it is text, else the status.
func bodySnippet(body []byte, status int) string {
	const max = 200
	line, _, _ := bytes.Cut(bytes.TrimSpace(body), []byte("\n"))
	line = bytes.TrimSpace(line)
	if len(line) == 0 || !utf8.Valid(line) {
		if t := http.StatusText(status); t != "" {
			return fmt.Sprintf("HTTP %d %s", status, t)
		}
		return fmt.Sprintf("HTTP %d", status)
	}
	if len(line) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		return string(line[:cut]) + "…"
	}
	return string(line)
}

// retryAfter reads a Retry-After value: delay seconds or an HTTP date.
// Unknown or past values give zero.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		const maxSeconds = int64(24 * time.Hour / time.Second)
		return time.Duration(min(s, maxSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

var errTooLarge = errors.New("response too large")

// readBody reads the whole body, up to MaxResponse bytes; past that it stops
// and returns errTooLarge.
func readBody(resp *http.Response) ([]byte, error) {
	if resp.ContentLength > MaxResponse {
		return nil, errTooLarge
	}
	size := 512
	if resp.ContentLength >= 0 {
		size = int(resp.ContentLength) + 1 // +1 to see EOF without growing
	}
	buf := make([]byte, 0, size)
	lr := io.LimitReader(resp.Body, MaxResponse+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(buf) > MaxResponse {
		return nil, errTooLarge
	}
	return buf, nil
}
