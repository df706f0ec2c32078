package destinations

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// defaultHTTPTimeout bounds a POST when no client is given.
const defaultHTTPTimeout = 30 * time.Second

// HTTP posts failure records to a URL, the failure record's JSON as body
// (without the records, as for SQS and SNS). A 2xx response means delivered;
// any other status, and any transport error, is a transient error the engine
// retries. It is safe for concurrent use.
type HTTP struct {
	client *http.Client
	url    string
	name   string // the URL without its password, for errors and logs
	log    *slog.Logger
}

var _ mapping.Destination = (*HTTP)(nil)

// NewHTTP returns the destination posting to target, an http:// or https://
// URL. Credentials in the URL are sent as basic auth and never shown. A nil
// client means one with a 30 s timeout. It does no I/O.
func NewHTTP(target string, client *http.Client, logger *slog.Logger) (*HTTP, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTarget, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w %q: want http(s)://host/path", ErrInvalidTarget, u.Redacted())
	}
	if client == nil {
		client = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	name := u.Redacted()
	return &HTTP{client: client, url: target, name: name, log: logger.With("destination", "http", "url", name)}, nil
}

// Send posts f once. It blocks until the response arrives and returns ctx's
// error when ctx ends first.
func (d *HTTP) Send(ctx context.Context, f *event.Failure) error {
	body, err := marshal(f)
	if err != nil {
		return fmt.Errorf("destination http %s: encode: %w", d.name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("destination http %s: %w", d.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("destination http %s: post: %w", d.name, err)
	}
	defer resp.Body.Close()
	// Read a little of the body: enough to reuse the connection and to
	// quote a short reason; never more.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("destination http %s: post: status %d: %q", d.name, resp.StatusCode, bytes.TrimSpace(snippet))
	}
	d.log.DebugContext(ctx, "failure record sent", append(logAttrs(f), "status", resp.StatusCode)...)
	return nil
}
