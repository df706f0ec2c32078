package faultproxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newTarget(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// get fetches url with a fresh connection each time and returns the body.
func get(url string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestProxyFaults(t *testing.T) {
	body := strings.Repeat("0123456789", 1000)
	srv := newTarget(t, body)
	p := newProxy(t, srv.URL)
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") {
		t.Fatalf("proxy listens on %s, want 127.0.0.1", p.Addr())
	}

	tests := []struct {
		name  string
		setup func()
		check func(t *testing.T, got string, err error)
	}{
		{"pass", func() {}, func(t *testing.T, got string, err error) {
			if err != nil || got != body {
				t.Fatalf("got %d bytes, %v; want the whole body", len(got), err)
			}
		}},
		{"reset", func() { p.SetFault(Reset) }, func(t *testing.T, got string, err error) {
			if err == nil {
				t.Fatalf("got %d bytes, want an error", len(got))
			}
		}},
		{"cut", func() { p.SetFault(CutBody) }, func(t *testing.T, got string, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("err = %v, want unexpected EOF or reset", err)
			}
			if len(got) != len(body)/2 {
				t.Fatalf("got %d body bytes, want half (%d)", len(got), len(body)/2)
			}
		}},
		{"stopped", func() { p.Stop() }, func(t *testing.T, got string, err error) {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("err = %v, want connection refused", err)
			}
		}},
		{"started again", func() {
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, got string, err error) {
			if err != nil || got != body {
				t.Fatalf("got %d bytes, %v; want the whole body on the same port", len(got), err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.SetFault(None)
			tt.setup()
			got, err := get(p.URL())
			tt.check(t, got, err)
		})
	}
}

func TestProxyLatency(t *testing.T) {
	srv := newTarget(t, "ok")
	p := newProxy(t, srv.URL)
	p.SetLatency(300 * time.Millisecond)
	start := time.Now()
	if got, err := get(p.URL()); err != nil || got != "ok" {
		t.Fatalf("got %q, %v", got, err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("request took %s, want at least the 300ms latency", d)
	}
	p.SetLatency(0)
	start = time.Now()
	if _, err := get(p.URL()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Fatalf("request took %s after the latency was removed", d)
	}
}

func TestSetFaultResetsOpenConnections(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "late")
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	p := newProxy(t, srv.URL)
	errc := make(chan error, 1)
	go func() {
		_, err := get(p.URL())
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for p.Accepted() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the request reach the server
	p.SetFault(Reset)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("an open request succeeded across a reset")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an open request was not reset")
	}
	if p.Faulted() < 1 {
		t.Fatalf("Faulted() = %d", p.Faulted())
	}
}

func TestCutChunkedBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		_, _ = io.WriteString(w, strings.Repeat("x", 100_000))
	}))
	t.Cleanup(srv.Close)
	p := newProxy(t, srv.URL)
	p.SetFault(CutBody)
	if got, err := get(p.URL()); err == nil {
		t.Fatalf("a chunked response cut in its body succeeded with %d bytes", len(got))
	}
}

func TestCutWithoutBodyCutsHeaders(t *testing.T) {
	srv := newTarget(t, "")
	p := newProxy(t, srv.URL)
	p.SetFault(CutBody)
	if _, err := get(p.URL()); err == nil {
		t.Fatal("a response with its headers cut succeeded")
	}
}

func TestCloseRefusesStart(t *testing.T) {
	srv := newTarget(t, "ok")
	p := newProxy(t, srv.URL)
	_ = p.Close()
	if err := p.Start(); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}
