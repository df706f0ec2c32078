package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultListen is where the server listens when Config.Listen is empty.
const DefaultListen = "127.0.0.1:9400"

// ErrTokenRequired is returned by Start when the server would listen on a
// non-loopback address without an auth token.
var ErrTokenRequired = errors.New("server.authToken is required when server.listen is not a loopback address")

// Config configures a Server.
type Config struct {
	// Listen is host:port; empty means DefaultListen. A host that is not
	// a loopback address (127.0.0.0/8, ::1, localhost), or no host at all,
	// requires AuthToken.
	Listen string
	// AuthToken, when set, is required on every request as
	// "Authorization: Bearer <token>".
	AuthToken string
	// Logger receives the server's lifecycle and errors; nil discards.
	Logger *slog.Logger
	// Histograms, when set, are exposed on /metrics too.
	Histograms *Histograms
	// Pprof serves net/http/pprof's profiles under /debug/pprof/.
	Pprof bool
}

// Server serves /metrics, /healthz, /readyz, /mappings and /mappings/{uuid}.
// Start and Shutdown may be called from any goroutine; handlers read the
// Source concurrently.
type Server struct {
	cfg   Config
	src   Source
	log   *slog.Logger
	token *[sha256.Size]byte
	h     http.Handler

	mu  sync.Mutex
	srv *http.Server
}

// New returns a Server over src; it listens on nothing until Start.
func New(cfg Config, src Source) *Server {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, src: src, log: cfg.Logger}
	if cfg.AuthToken != "" {
		sum := sha256.Sum256([]byte(cfg.AuthToken))
		s.token = &sum
	}
	s.h = s.routes()
	return s
}

// Handler returns the server's handler, auth included, for tests and for
// mounting elsewhere.
func (s *Server) Handler() http.Handler { return s.h }

// Start listens on the configured address and serves in the background
// until Shutdown. ctx bounds the listen only. It returns the address it
// listens on (useful with port 0), or an error when the address is taken,
// or ErrTokenRequired when a non-loopback address has no token.
func (s *Server) Start(ctx context.Context) (string, error) {
	host, _, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("admin server: listen %q: %w", s.cfg.Listen, err)
	}
	if s.token == nil && !isLoopback(host) {
		return "", fmt.Errorf("admin server: listen %q: %w", s.cfg.Listen, ErrTokenRequired)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return "", errors.New("admin server: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("admin server: %w", err)
	}
	srv := &http.Server{
		Handler:           s.h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.srv = srv
	addr := ln.Addr().String()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "addr", addr, "err", err)
		}
	}()
	s.log.Info("admin server listening", "addr", addr, "auth", s.token != nil)
	return addr, nil
}

// Shutdown stops the server: it stops listening and waits, within ctx, for
// requests in progress. It is a no-op before Start and idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("admin server: shutdown: %w", err)
	}
	return nil
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (s *Server) routes() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(s.src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.cfg.Histograms != nil {
		reg.MustRegister(s.cfg.Histograms.collectors()...)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /mappings", s.list)
	mux.HandleFunc("GET /mappings/{uuid}", s.get)
	if s.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Type: "ResourceNotFoundException", Message: "no such endpoint: " + r.URL.Path})
	})
	return s.auth(mux)
}

// auth requires the bearer token on every request when one is set. The
// comparison is of SHA-256 sums in constant time, so neither the token's
// bytes nor its length leak through timing.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.token == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const prefix = "Bearer "
		h := r.Header.Get("Authorization")
		ok := false
		if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
			sum := sha256.Sum256([]byte(h[len(prefix):]))
			ok = subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="esmd"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Type: "UnauthorizedException", Message: "a valid bearer token is required"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiError is an error body in the form of AWS's JSON errors.
type apiError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// Readiness is the body of /readyz.
type Readiness struct {
	Ready bool `json:"ready"`
	// NotReady lists the enabled mappings that are not Enabled and
	// healthy.
	NotReady []NotReady `json:"notReady,omitempty"`
}

// NotReady is one mapping that keeps esmd from being ready.
type NotReady struct {
	Name    string `json:"name"`
	UUID    string `json:"uuid"`
	State   string `json:"state"`
	Healthy bool   `json:"healthy"`
	// FailingShards are the shards whose reads are failing.
	FailingShards []string `json:"failingShards,omitempty"`
}

// readyz answers 200 when every enabled mapping is Enabled and healthy,
// else 503 naming the ones that are not.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	var body Readiness
	for _, m := range s.src.Mappings() {
		if !m.Enabled {
			continue
		}
		st := m.status()
		if st.Healthy && st.State == "Enabled" {
			continue
		}
		nr := NotReady{Name: m.Name, UUID: m.UUID, State: st.State, Healthy: st.Healthy}
		for _, sh := range st.Shards {
			if sh.ReadFailing {
				nr.FailingShards = append(nr.FailingShards, sh.ID)
			}
		}
		body.NotReady = append(body.NotReady, nr)
	}
	body.Ready = len(body.NotReady) == 0
	code := http.StatusOK
	if !body.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}

func (s *Server) list(w http.ResponseWriter, _ *http.Request) {
	ms := s.src.Mappings()
	out := make([]map[string]any, 0, len(ms))
	for i := range ms {
		out = append(out, render(&ms[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"EventSourceMappings": out})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("uuid")
	ms := s.src.Mappings()
	for i := range ms {
		if ms[i].UUID == id {
			writeJSON(w, http.StatusOK, render(&ms[i]))
			return
		}
	}
	writeJSON(w, http.StatusNotFound, apiError{Type: "ResourceNotFoundException", Message: fmt.Sprintf("The resource you requested does not exist: event source mapping %q", id)})
}
