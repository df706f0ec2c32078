// Package faultproxy is a small TCP proxy for fault-injection tests: it sits
// on a 127.0.0.1 port in front of one server (an AWS emulator, a function)
// and, on demand, delays traffic, resets connections, cuts HTTP responses in
// the middle of their body, or stops listening so that connections are
// refused, and later listens again on the same port.
//
// It knows just enough HTTP/1.1 to cut a response after its headers and half
// of its body (Content-Length) or a few bytes of a chunked body; everything
// else is plain TCP, so it works for any protocol in the other modes.
//
//	p, err := faultproxy.New("127.0.0.1:4567")
//	defer p.Close()
//	endpoint := p.URL() // give this to the client under test
//	p.Stop()            // the server is unreachable: connections are refused
//	p.Start()           // back, on the same port
//	p.SetFault(faultproxy.Reset)
//	p.SetLatency(2 * time.Second)
package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what the proxy does to the connections that pass through it.
type Fault int

const (
	// None passes traffic through unchanged (apart from latency).
	None Fault = iota
	// Reset resets every connection: those open when the fault is set,
	// and each new one as soon as it is accepted (TCP RST, no data).
	Reset
	// CutBody forwards each connection's first HTTP response up to the
	// middle of its body, then closes the connection (FIN, so that the
	// client reads the half body and then an unexpected end). Connections open
	// when the fault is set are reset, so every response after SetFault is
	// cut.
	CutBody
)

func (f Fault) String() string {
	switch f {
	case None:
		return "none"
	case Reset:
		return "reset"
	case CutBody:
		return "cut-body"
	}
	return "fault(" + strconv.Itoa(int(f)) + ")"
}

// Proxy forwards TCP connections from its own 127.0.0.1 port to a target
// address. All methods are safe for concurrent use. Setting a fault or a
// latency affects traffic from the moment of the call.
type Proxy struct {
	target string
	addr   string

	mu     sync.Mutex
	ln     net.Listener // nil while stopped
	conns  map[*pair]struct{}
	fault  Fault
	closed bool

	latency  atomic.Int64 // nanoseconds added before each client-to-server chunk
	accepted atomic.Int64
	faulted  atomic.Int64
	wg       sync.WaitGroup
}

// pair is one proxied connection.
type pair struct {
	client, server net.Conn
	once           sync.Once
}

// reset closes both sides; the client side with SO_LINGER 0, so the client
// sees a connection reset rather than an orderly end.
func (c *pair) reset() {
	c.once.Do(func() {
		abort(c.client)
		if c.server != nil {
			abort(c.server)
		}
	})
}

func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// New starts a proxy to target (host:port) on a free 127.0.0.1 port. It
// returns once the proxy accepts connections. Call Close when done.
func New(target string) (*Proxy, error) {
	if target == "" {
		return nil, errors.New("faultproxy: empty target")
	}
	target = strings.TrimPrefix(strings.TrimPrefix(target, "http://"), "https://")
	target = strings.TrimSuffix(target, "/")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[*pair]struct{}{}}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// Addr is the proxy's host:port. It stays the same across Stop and Start.
func (p *Proxy) Addr() string { return p.addr }

// URL is "http://" + Addr().
func (p *Proxy) URL() string { return "http://" + p.addr }

// Accepted is how many connections the proxy has accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Faulted is how many connections a fault has reset or cut so far.
func (p *Proxy) Faulted() int64 { return p.faulted.Load() }

// SetFault sets the fault for all traffic from now on. Setting Reset or
// CutBody resets every open connection.
func (p *Proxy) SetFault(f Fault) {
	p.mu.Lock()
	p.fault = f
	var open []*pair
	if f != None {
		for c := range p.conns {
			open = append(open, c)
		}
	}
	p.mu.Unlock()
	for _, c := range open {
		p.faulted.Add(1)
		c.reset()
	}
}

// SetLatency delays each chunk of data from a client to the server by d
// (zero for none). With HTTP, one request is usually one chunk, so each
// request reaches the server d late.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Stop makes the server unreachable: the proxy stops listening, so new
// connections are refused, and resets every open connection. It is a no-op
// when stopped already.
func (p *Proxy) Stop() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	open := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, c := range open {
		c.reset()
	}
}

// Start listens again on the same port after Stop. It is a no-op when the
// proxy is listening. It fails when the port was taken meanwhile or the
// proxy is closed.
func (p *Proxy) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: closed")
	}
	if p.ln != nil {
		return nil
	}
	var ln net.Listener
	var err error
	// The port may sit in TIME_WAIT for a moment; Go sets SO_REUSEADDR,
	// so a few quick attempts are enough.
	for i := 0; i < 50; i++ {
		ln, err = net.Listen("tcp", p.addr)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// Close stops the proxy for good and waits for its goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Stop()
	p.wg.Wait()
	return nil
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed by Stop or Close
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers c; it returns false when the proxy stopped meanwhile.
func (p *Proxy) track(c *pair) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return None, false
	}
	p.conns[c] = struct{}{}
	return p.fault, true
}

func (p *Proxy) untrack(c *pair) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	c := &pair{client: client}
	fault, ok := p.track(c)
	defer p.untrack(c)
	if !ok || fault == Reset {
		if ok {
			p.faulted.Add(1)
		}
		c.reset()
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.reset()
		return
	}
	c.server = server
	// A fault set between track and here must still reach this pair.
	p.mu.Lock()
	fault = p.fault
	p.mu.Unlock()
	if fault == Reset {
		p.faulted.Add(1)
		c.reset()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.upstream(c)
	}()
	if fault == CutBody {
		if p.cut(c) {
			p.faulted.Add(1)
		}
		// An orderly close: a reset would make the client's kernel drop
		// the half response it has not read yet.
		c.once.Do(func() {
			_ = c.client.Close()
			abort(c.server)
		})
	} else {
		_, _ = io.Copy(client, server)
		c.reset()
	}
	<-done
}

// upstream copies client to server, each chunk after the current latency.
func (p *Proxy) upstream(c *pair) {
	defer c.reset()
	buf := make([]byte, 32*1024)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := c.server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut forwards the server's first response up to the middle of its body and
// reports whether it cut one (false when the server ended first).
func (p *Proxy) cut(c *pair) bool {
	br := bufio.NewReader(c.server)
	tp := textproto.NewReader(br)
	var head strings.Builder
	length, chunked := -1, false
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return false
		}
		head.WriteString(line)
		head.WriteString("\r\n")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "content-length":
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				length = n
			}
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	h := head.String()
	var body int
	switch {
	case length >= 2:
		body = length / 2
	case chunked:
		body = 3 // into the first chunk's size line or data
	default:
		// Nothing to cut in the body: cut the headers instead.
		_, _ = io.WriteString(c.client, h[:len(h)/2])
		return true
	}
	if _, err := io.WriteString(c.client, h); err != nil {
		return false
	}
	_, _ = io.CopyN(c.client, br, int64(body))
	return true
}
