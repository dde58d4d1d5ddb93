package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// dialError marks a failed connection: nothing was sent, so the request can
// go to another endpoint whatever its method.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// upstreams is the proxy seen as the ReverseProxy's transport: it decides
// the request (route), cleans its steering headers, picks the endpoint of
// each attempt, tells the endpoint the decision in n-d-version and retries
// failed connections.
type upstreams Proxy

func (u *upstreams) RoundTrip(req *http.Request) (*http.Response, error) {
	p := (*Proxy)(u)
	t := p.table.Load()
	c := t.route(req.Header, req.RemoteAddr)
	incoming := ""
	if c.trusted {
		if v := req.Header[ndVersion]; len(v) > 0 {
			incoming = v[0]
		}
	}
	t.r.sanitize(req.Header, c.trusted)
	var body *replayBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &replayBody{rc: req.Body}
		req.Body = body
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
			// Removed since this table was built: take the current one.
			t = p.table.Load()
			continue
		}
		out := req
		if attempts > 0 {
			// A failed attempt's request may still be read by the
			// transport's goroutines: give the next one its own copy.
			out = req.WithContext(req.Context())
			u := *req.URL
			out.URL = &u
			out.Header = req.Header.Clone()
		}
		// The decision travels on: downstream SDK services follow it.
		if incoming != "" {
			out.Header[ndVersion] = []string{mergeVersionHeader(incoming, t.app, e.version)}
		} else if v := t.ndv[e.version]; v != nil {
			out.Header[ndVersion] = v
		}
		attempts++
		out.URL.Host = e.addr
		resp, err := p.tr.RoundTrip(out)
		if err == nil {
			resp.Header[UpstreamHeader] = e.hdr
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// The upgraded connection is the body; it is not counted.
				e.release()
				return resp, nil
			}
			resp.Body = &countedBody{rc: resp.Body, e: e}
			return resp, nil
		}
		e.release()
		lastErr = err
		if req.Context().Err() != nil || !retriable(req.Method, body, err) {
			return nil, err
		}
		e.downUntil.Store(time.Now().Add(p.downFor).UnixNano())
		p.log.Debug("endpoint failed, trying another", "endpoint", e.addr, "version", e.version, "err", err)
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, ErrNoEndpoint
}

// retriable reports whether a failed attempt may be sent to another
// endpoint: always when the connection could not be made (nothing was sent),
// and for idempotent methods whose body, if any, was not read.
func retriable(method string, body *replayBody, err error) bool {
	var de *dialError
	var oe *net.OpError
	if errors.As(err, &de) || (errors.As(err, &oe) && oe.Op == "dial") {
		return body == nil || !body.read.Load()
	}
	if body != nil {
		return false
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// replayBody records whether a request body was read, so an attempt that
// failed before reading it can be sent again. Its Close leaves the client's
// body open (the ReverseProxy closes it) unless it was read.
type replayBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *replayBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *replayBody) Close() error {
	if b.read.Load() {
		return b.rc.Close()
	}
	return nil
}

// countedBody keeps a request counted in flight until its response body is
// closed.
type countedBody struct {
	rc   io.ReadCloser
	e    *endpoint
	done atomic.Bool
}

func (b *countedBody) Read(p []byte) (int, error) { return b.rc.Read(p) }

func (b *countedBody) Close() error {
	err := b.rc.Close()
	if b.done.CompareAndSwap(false, true) {
		b.e.release()
	}
	return err
}
