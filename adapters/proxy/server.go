package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The proxy's own HTTP/1.1 server loop for its listener. Per request it
// reads the request, forwards it (forward.go) and writes the response on
// the connection's buffered writer, all in the connection's goroutine:
// compared with net/http's server it saves a background read goroutine, a
// context and a response object per request, which matters when the proxy
// is measured against nginx (docs/benchmarks.md). ServeHTTP (an
// http.Handler) stays for embedding the proxy in another server.

// Timeouts of the server loop.
const (
	readHeaderTimeout = 10 * time.Second
	serverIdleTimeout = 2 * time.Minute
)

// connServer serves one listener.
type connServer struct {
	p   *Proxy
	ln  net.Listener
	log *slog.Logger

	mu      sync.Mutex
	conns   map[*serverConn]bool // -> active (serving a request)
	closing bool
	wg      sync.WaitGroup
}

type serverConn struct {
	c      net.Conn
	remote string
}

func newConnServer(p *Proxy, ln net.Listener) *connServer {
	return &connServer{p: p, ln: ln, log: p.log, conns: map[*serverConn]bool{}}
}

// serve accepts connections until the listener closes.
func (s *connServer) serve() error {
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		sc := &serverConn{c: c, remote: c.RemoteAddr().String()}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[sc] = false
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(sc)
	}
}

// setActive marks sc serving a request (true) or waiting for one; it
// reports false when the server is shutting down and sc should close.
func (s *connServer) setActive(sc *serverConn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[sc] = active
	return !s.closing
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
)

func (s *connServer) serveConn(sc *serverConn) {
	defer s.wg.Done()
	br := readers.Get().(*bufio.Reader)
	bw := writers.Get().(*bufio.Writer)
	raw := newRawConn(sc.c) // rawconn.go
	br.Reset(raw)
	bw.Reset(raw)
	defer func() {
		sc.c.Close()
		br.Reset(nil)
		bw.Reset(nil)
		readers.Put(br)
		writers.Put(bw)
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
	}()
	out := &connSink{p: s.p, bw: bw}
	var cr connRequest
	for {
		// wait for the next request (idle), then read it (active)
		sc.c.SetReadDeadline(time.Now().Add(serverIdleTimeout))
		if _, err := br.Peek(1); err != nil {
			return
		}
		if !s.setActive(sc, true) {
			return
		}
		// the common request is parsed in place (rawrequest.go), any
		// other by net/http
		req, ok := cr.peekRequest(br)
		if !ok {
			sc.c.SetReadDeadline(time.Now().Add(readHeaderTimeout))
			var err error
			if req, err = http.ReadRequest(br); err != nil {
				if !errors.Is(err, io.EOF) {
					io.WriteString(sc.c, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				}
				return
			}
		}
		sc.c.SetReadDeadline(time.Time{})
		req.RemoteAddr = sc.remote
		out.close = req.Close
		if req.Header["Upgrade"] != nil {
			s.p.upgrade(sc.c, br, bw, req)
			return
		}
		if expectContinue(req) {
			bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if bw.Flush() != nil {
				return
			}
		}
		s.p.forward(out, req)
		if out.err == nil {
			out.err = bw.Flush()
		}
		// a request body the upstream did not read leaves the connection
		// out of step: close it
		if out.err != nil || out.close || req.Body != nil && !drained(req.Body) {
			return
		}
		if !s.setActive(sc, false) {
			return
		}
	}
}

func expectContinue(r *http.Request) bool {
	e := r.Header["Expect"]
	return len(e) > 0 && (e[0] == "100-continue" || e[0] == "100-Continue") && r.ContentLength != 0
}

// drained reports whether a request body was read to the end (reading
// what little may be left).
func drained(body io.ReadCloser) bool {
	if body == http.NoBody {
		return true
	}
	n, err := io.CopyN(io.Discard, body, 4<<10)
	return n < 4<<10 && err == io.EOF || err == nil && n == 0
}

// shutdown stops accepting, closes the connections waiting for a request
// and waits for the others to finish theirs (until ctx ends: then they
// are closed too).
func (s *connServer) shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for sc, active := range s.conns {
			if !active {
				sc.c.Close()
			}
		}
		s.mu.Unlock()
		select {
		case <-done:
			return
		case <-ctx.Done():
			s.mu.Lock()
			for sc := range s.conns {
				sc.c.Close()
			}
			s.mu.Unlock()
			<-done
			return
		case <-tick.C:
		}
	}
}

// connSink writes responses on a client connection.
type connSink struct {
	p     *Proxy
	bw    *bufio.Writer
	close bool  // close the connection after this response
	err   error // a write to the client failed
}

func (s *connSink) response(r *http.Request, resp *http.Response, e *endpoint) bool {
	bw := s.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(resp.StatusCode))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(resp.StatusCode))
	bw.WriteString("\r\n")
	conn := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if hopHeaders[k] || listed(conn, k) {
			continue
		}
		for _, v := range vs {
			writeHeader(bw, k, v)
		}
	}
	writeHeader(bw, UpstreamHeader, e.addr)
	noBody := r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	chunked := false
	switch {
	case noBody:
		if resp.ContentLength >= 0 {
			writeHeader(bw, "Content-Length", strconv.FormatInt(resp.ContentLength, 10))
		}
	case resp.ContentLength >= 0:
		writeHeader(bw, "Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	case r.ProtoAtLeast(1, 1):
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(resp.Trailer) > 0 {
			for k := range resp.Trailer {
				writeHeader(bw, "Trailer", k)
			}
		}
	default:
		s.close = true // HTTP/1.0 without a length: the end of the connection ends the body
	}
	if s.close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if noBody {
		return resp.Body.Close() == nil
	}
	var err error
	buf := bufferPool{}.Get()
	switch {
	case chunked:
		// a body of unknown length may be a stream: each piece is sent on
		cw := httputil.NewChunkedWriter(bw)
		_, err = io.CopyBuffer(flushWriter{cw, bufFlusher{bw}}, resp.Body, buf)
		if err == nil {
			cw.Close()
			for k, vs := range resp.Trailer {
				for _, v := range vs {
					writeHeader(bw, k, v)
				}
			}
			bw.WriteString("\r\n")
		}
	default:
		_, err = io.CopyBuffer(bw, resp.Body, buf)
	}
	bufferPool{}.Put(buf)
	if err != nil {
		// the client or the upstream failed mid-body: the client's
		// connection cannot carry another response
		s.close = true
		if s.err == nil && bw.Flush() != nil {
			s.err = errors.New("client gone")
		}
		return false
	}
	return !resp.Close && !r.Close && resp.Body.Close() == nil
}

func (s *connSink) failure(r *http.Request, status int, msg string) {
	bw := s.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(status))
	bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(msg) + 1))
	bw.WriteString("\r\n")
	if s.close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	bw.WriteString(msg)
	bw.WriteString("\n")
}

// bufFlusher flushes a bufio.Writer as an http.Flusher.
type bufFlusher struct{ bw *bufio.Writer }

func (f bufFlusher) Flush() { f.bw.Flush() }

// upgrade passes a protocol upgrade (WebSocket) through: the request goes
// to an endpoint with its Upgrade and Connection headers, and after a 101
// the two connections are joined both ways until either closes.
func (p *Proxy) upgrade(client net.Conn, cbr *bufio.Reader, cbw *bufio.Writer, r *http.Request) {
	t := p.table.Load()
	c := t.route(r.Header, r.RemoteAddr)
	out := &connSink{p: p, bw: cbw, close: true}
	e := t.pick(c, nil, false)
	if e == nil || !e.acquire() {
		p.fail(out, r, ErrNoEndpoint)
		cbw.Flush()
		return
	}
	defer e.release()
	up, err := dialer.Dial("tcp", e.addr)
	if err != nil {
		p.fail(out, r, err)
		cbw.Flush()
		return
	}
	defer up.Close()
	ubw := bufio.NewWriter(up)
	if err := writeRequest(ubw, r, t, c, e, nil, true); err != nil {
		p.fail(out, r, err)
		cbw.Flush()
		return
	}
	ubr := bufio.NewReader(up)
	resp, err := http.ReadResponse(ubr, r)
	if err != nil {
		p.fail(out, r, err)
		cbw.Flush()
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		out.response(r, resp, e)
		cbw.Flush()
		return
	}
	cbw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for k, vs := range resp.Header {
		for _, v := range vs {
			writeHeader(cbw, k, v)
		}
	}
	cbw.WriteString("\r\n")
	if cbw.Flush() != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, cbr); closeWrite(up); done <- struct{}{} }()
	go func() { io.Copy(client, ubr); closeWrite(client); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
