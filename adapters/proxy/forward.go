package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The forwarder is the proxy's request path for plain HTTP/1.x requests
// (everything but protocol upgrades, which go through
// httputil.ReverseProxy): it writes the request to a kept-alive upstream
// connection and reads the response in the request's own goroutine, with
// no per-request goroutine hand-off, no request clone and the
// per-endpoint idle connections kept by the endpoint. That is what lets
// the built-in proxy keep up with nginx (docs/benchmarks.md).

// Limits of the forwarder's connection pool.
const (
	maxIdlePerEndpoint = 256
	idleTimeout        = 90 * time.Second
	peekAfter          = time.Second
	dialTimeout        = 5 * time.Second
)

// hopHeaders are removed when forwarding (RFC 9110 7.6.1), with the
// headers a Connection header names. Keys are canonical.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	// recomputed by the forwarder
	"Content-Length": true, "Expect": true, "Host": true,
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
}

// upConn is a connection to an endpoint.
type upConn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool
	raw    rawResponse      // the last response head, when read by peekResponse
	body   io.LimitedReader // the last raw response's body
}

// connPool is an endpoint's idle connections, most recently used last.
type connPool struct {
	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

// get returns an idle connection. A connection used a moment ago is
// reused at once (an upstream closes idle connections after seconds, not
// milliseconds, and a request without a body that meets a closed one is
// sent again on a new connection, see attempt); older ones, and every one
// for a request with a body (which cannot be sent twice), are first
// peeked.
func (cp *connPool) get(withBody bool) *upConn {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for n := len(cp.idle); n > 0; n = len(cp.idle) {
		uc := cp.idle[n-1]
		cp.idle = cp.idle[:n-1]
		idle := time.Since(uc.idleAt)
		if idle < idleTimeout && (idle < peekAfter && !withBody || usable(uc)) {
			uc.reused = true
			return uc
		}
		uc.c.Close()
	}
	return nil
}

func (cp *connPool) put(uc *upConn) {
	cp.mu.Lock()
	if cp.closed || len(cp.idle) >= maxIdlePerEndpoint {
		cp.mu.Unlock()
		uc.c.Close()
		return
	}
	uc.idleAt = time.Now()
	cp.idle = append(cp.idle, uc)
	cp.mu.Unlock()
}

// close closes the idle connections and refuses new ones (the endpoint
// was removed).
func (cp *connPool) close() {
	cp.mu.Lock()
	idle := cp.idle
	cp.idle, cp.closed = nil, true
	cp.mu.Unlock()
	for _, uc := range idle {
		uc.c.Close()
	}
}

// usable reports whether an idle connection is still open and quiet: a
// peer that closed it (or sent something unasked) makes it unusable. One
// non-blocking peek, so a request never goes out on a connection the
// upstream already closed.
func usable(uc *upConn) bool {
	if uc.br.Buffered() > 0 {
		return false
	}
	sc, ok := uc.c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0: // data nobody asked for
			alive = false
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		default: // EOF (n == 0) or an error
			alive = false
		}
		return true // never wait
	})
	return err == nil && alive
}

var dialer = &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}

// conn returns an idle connection to e, or a new one.
func (e *endpoint) conn(ctx context.Context, fresh, withBody bool) (*upConn, error) {
	if !fresh {
		if uc := e.pool.get(withBody); uc != nil {
			return uc, nil
		}
	}
	c, err := dialer.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, &dialError{err}
	}
	raw := newRawConn(c) // rawconn.go
	return &upConn{c: c, br: bufio.NewReaderSize(raw, 8<<10), bw: bufio.NewWriterSize(raw, 8<<10)}, nil
}

// sink is where a forwarded response goes: the http.ResponseWriter of
// ServeHTTP, or the client connection of the proxy's own server (server.go).
type sink interface {
	// response writes resp, which e sent, and reports whether the
	// upstream connection may be reused (its body was read to the end).
	response(r *http.Request, resp *http.Response, e *endpoint) bool
	// failure answers a request no endpoint served.
	failure(r *http.Request, status int, msg string)
}

// rwSink writes to an http.ResponseWriter.
type rwSink struct {
	p *Proxy
	w http.ResponseWriter
}

func (s rwSink) response(r *http.Request, resp *http.Response, e *endpoint) bool {
	return s.p.respond(s.w, r, resp, e)
}

func (s rwSink) failure(r *http.Request, status int, msg string) {
	if msg == "" {
		s.w.WriteHeader(status)
		return
	}
	http.Error(s.w, msg, status)
}

// forward proxies one request (see the package doc for the routing and
// retries).
func (p *Proxy) forward(out sink, r *http.Request) {
	t := p.table.Load()
	c := t.route(r.Header, r.RemoteAddr)
	var body *replayBody
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body = &replayBody{rc: r.Body}
	}
	var tried [maxTried]*endpoint
	n := 0
	var lastErr error
	for attempts := 0; attempts < p.maxAttempts && n < len(tried); {
		e := t.pick(c, tried[:n], attempts > 0)
		if e == nil {
			break
		}
		tried[n] = e
		n++
		if !e.acquire() {
			t = p.table.Load()
			continue
		}
		attempts++
		done, err := p.attempt(out, r, t, c, e, body)
		e.release()
		if done {
			return
		}
		lastErr = err
		if r.Context().Err() != nil || !retriable(r.Method, body, err) {
			break
		}
		e.downUntil.Store(time.Now().Add(p.downFor).UnixNano())
		p.log.Debug("endpoint failed, trying another", "endpoint", e.addr, "version", e.version, "err", err)
	}
	if lastErr == nil {
		lastErr = ErrNoEndpoint
	}
	p.fail(out, r, lastErr)
}

// fail answers a request no endpoint served: 503 when none is ready, 502
// when they failed (and nothing when the client went away).
func (p *Proxy) fail(out sink, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNoEndpoint):
		out.failure(r, http.StatusServiceUnavailable, "graylane: no ready instance of "+p.app)
	case r.Context().Err() != nil:
		out.failure(r, http.StatusBadGateway, "")
	default:
		p.log.Warn("proxy request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		out.failure(r, http.StatusBadGateway, "graylane: upstream failed")
	}
}

// attempt sends r to e. done reports that a response was written (or the
// client is gone); otherwise nothing was written and err says why. A
// connection that was idle and turns out dead before any answer is
// replaced once by a new one to the same endpoint, when r can be sent
// again.
func (p *Proxy) attempt(out sink, r *http.Request, t *table, c choice, e *endpoint, body *replayBody) (done bool, err error) {
	ctx := r.Context()
	for fresh := false; ; fresh = true {
		uc, err := e.conn(ctx, fresh, body != nil)
		if err != nil {
			return false, err
		}
		// A client that goes away unblocks the upstream reads and writes;
		// the connection is not reused then.
		stop := func() bool { return true }
		if ctx.Done() != nil { // the proxy's own server passes a context that never ends
			stop = context.AfterFunc(ctx, func() { uc.c.SetDeadline(time.Unix(1, 0)) })
		}
		cs, fast := out.(*connSink)
		fast = fast && r.Method != http.MethodHead
		resp, err := p.exchange(uc, r, t, c, e, body, fast)
		if err == nil {
			var reuse bool
			if resp == nil {
				reuse = cs.rawResponse(r, uc, &uc.raw, e)
			} else {
				reuse = out.response(r, resp, e)
			}
			if stop() && reuse {
				e.pool.put(uc)
			} else {
				uc.c.Close()
			}
			return true, nil
		}
		stop()
		uc.c.Close()
		if uc.reused && !fresh && (body == nil || !body.read.Load()) && ctx.Err() == nil {
			continue // a stale kept-alive connection: nothing was processed
		}
		return false, err
	}
}

// exchange writes the request and reads the response's head. With fast,
// a common response is only peeked (rawhead.go): the response is nil then
// and uc.raw holds its head.
func (p *Proxy) exchange(uc *upConn, r *http.Request, t *table, c choice, e *endpoint, body *replayBody, fast bool) (*http.Response, error) {
	if err := writeRequest(uc.bw, r, t, c, e, body, false); err != nil {
		return nil, err
	}
	if fast {
		ok, err := peekResponse(uc.br, &uc.raw)
		if err != nil {
			return nil, err
		}
		if ok {
			return nil, nil
		}
	}
	for {
		resp, err := http.ReadResponse(uc.br, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // 100 Continue, 103 Early Hints: not forwarded
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			resp.Body.Close()
			return nil, errors.New("upstream switched protocols on a plain request")
		}
		return resp, nil
	}
}

// writeRequest writes r as e's request: the original request line and
// headers without hop-by-hop ones, X-Forwarded-* appended, the steering
// headers of an untrusted caller and the trust header removed, and
// n-d-version set to the proxy's decision.
func writeRequest(bw *bufio.Writer, r *http.Request, t *table, c choice, e *endpoint, body *replayBody, upgrade bool) error {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' && uri != "*" {
		uri = r.URL.RequestURI()
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	var incoming string
	for k, vs := range r.Header {
		if upgrade && (k == "Upgrade" || k == "Connection") {
			for _, v := range vs {
				writeHeader(bw, k, v)
			}
			continue
		}
		if hopHeaders[k] || listed(conn, k) || k == t.r.trustHeader || k == ndVersion && !c.trusted {
			continue
		}
		if k == ndVersion {
			if len(vs) > 0 {
				incoming = vs[0]
			}
			continue
		}
		if !c.trusted && isSteering(k) {
			continue
		}
		for _, v := range vs {
			writeHeader(bw, k, v)
		}
	}
	if incoming != "" {
		writeHeader(bw, "N-D-Version", mergeVersionHeader(incoming, t.app, e.version))
	} else if v := t.ndv[e.version]; v != nil {
		writeHeader(bw, "N-D-Version", v[0])
	}
	// X-Forwarded-*, as httputil.ProxyRequest.SetXForwarded sets them
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	bw.WriteString("X-Forwarded-For: ")
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		bw.WriteString(strings.Join(prior, ", "))
		bw.WriteString(", ")
	}
	bw.WriteString(ip)
	bw.WriteString("\r\n")
	writeHeader(bw, "X-Forwarded-Host", r.Host)
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	writeHeader(bw, "X-Forwarded-Proto", proto)
	if body == nil {
		bw.WriteString("\r\n")
		return bw.Flush()
	}
	if r.ContentLength > 0 {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(r.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		if _, err := io.CopyN(bw, body, r.ContentLength); err != nil {
			return fmt.Errorf("request body: %w", err)
		}
		return bw.Flush()
	}
	bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	cw := httputil.NewChunkedWriter(bw)
	if _, err := io.Copy(cw, body); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	cw.Close()
	bw.WriteString("\r\n")
	return bw.Flush()
}

func writeHeader(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// listed reports whether a Connection header names k.
func listed(conn []string, k string) bool {
	for _, line := range conn {
		for line != "" {
			var f string
			f, line, _ = strings.Cut(line, ",")
			if strings.EqualFold(strings.TrimSpace(f), k) {
				return true
			}
		}
	}
	return false
}

func isSteering(k string) bool {
	for _, s := range steeringHeaders {
		if k == s {
			return true
		}
	}
	return false
}

// respond writes the upstream's response to the client and reports
// whether the connection may be reused: its body was read to the end and
// neither side asked to close it.
func (p *Proxy) respond(w http.ResponseWriter, r *http.Request, resp *http.Response, e *endpoint) bool {
	h := w.Header()
	conn := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if k != "Content-Length" && hopHeaders[k] || listed(conn, k) {
			continue
		}
		h[k] = vs
	}
	if len(resp.Trailer) > 0 {
		for k := range resp.Trailer {
			h.Add("Trailer", k)
		}
	}
	h[UpstreamHeader] = e.hdr
	w.WriteHeader(resp.StatusCode)
	var dst io.Writer = writerOnly{w}
	if f, ok := w.(http.Flusher); ok && resp.ContentLength < 0 {
		// a body of unknown length may be a stream (server-sent events,
		// long polling): every piece goes to the client at once, as
		// httputil.ReverseProxy does
		dst = flushWriter{w, f}
	}
	buf := bufferPool{}.Get()
	_, err := io.CopyBuffer(dst, resp.Body, buf)
	bufferPool{}.Put(buf)
	for k, vs := range resp.Trailer {
		h[k] = vs
	}
	if err != nil && r.Context().Err() == nil {
		p.log.Debug("response body cut", "endpoint", e.addr, "err", err)
	}
	return err == nil && !resp.Close && !r.Close && resp.Body.Close() == nil
}

// writerOnly hides the ResponseWriter's ReadFrom, which would copy with
// its own small buffer.
type writerOnly struct{ io.Writer }

// flushWriter flushes after every write.
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw flushWriter) Write(b []byte) (int, error) {
	n, err := fw.w.Write(b)
	fw.f.Flush()
	return n, err
}
