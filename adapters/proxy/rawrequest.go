package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// The common client request — HTTP/1.1, origin-form target without
// escapes, one plain Host, no body (no Content-Length or
// Transfer-Encoding), no Expect, Upgrade, Pragma or Connection options
// other than close/keep-alive, its head in the connection's buffer — is
// parsed without net/http into the connection's reused http.Request:
// one string holds the head and the header map's keys and values are
// slices of it, so a request costs one allocation instead of
// http.ReadRequest's eleven (docs/benchmarks.md). Every other request is
// read by http.ReadRequest exactly as before: nothing is consumed until
// the fast path is sure it applies.

// connRequest is a client connection's reused request.
type connRequest struct {
	req  http.Request
	url  url.URL
	hdr  http.Header
	vals []string // backing of the header's value slices
}

// peekRequest parses the request at the start of br's buffer into cr and
// consumes its head, or reports false and consumes nothing. The returned
// request is valid until the next call.
func (cr *connRequest) peekRequest(br *bufio.Reader) (*http.Request, bool) {
	b, _ := br.Peek(br.Buffered())
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 || !plainRequestHead(b[:end+2]) {
		return nil, false
	}
	head := string(b[:end+2]) // the one allocation: keys and values are slices of it
	line, rest := cut(head, "\r\n")
	method, line := cut(line, " ")
	target, _ := cut(line, " ")
	if cr.hdr == nil {
		cr.hdr = make(http.Header, 16)
	}
	clear(cr.hdr)
	cr.vals = cr.vals[:0]
	host, hosts, close := "", 0, false
	for rest != "" {
		var l string
		l, rest = cut(rest, "\r\n")
		k, v := cut(l, ":")
		v = trimOWS(v)
		if !canonical(k) {
			k = textproto.CanonicalMIMEHeaderKey(k)
		}
		switch k {
		case "Host":
			host, hosts = v, hosts+1
			continue // promoted to Request.Host, as net/http does
		case "Connection":
			switch {
			case asciiFold(v, "close"):
				close = true
			case asciiFold(v, "keep-alive"):
			default:
				return nil, false
			}
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Pragma", "Trailer":
			return nil, false
		}
		if vs, ok := cr.hdr[k]; ok {
			cr.hdr[k] = append(vs, v)
			continue
		}
		i := len(cr.vals)
		cr.vals = append(cr.vals, v)
		cr.hdr[k] = cr.vals[i : i+1 : i+1]
	}
	if hosts != 1 || !plainHost(host) {
		return nil, false
	}
	path, query := cut(target, "?")
	cr.url = url.URL{Path: path, RawQuery: query}
	cr.req = http.Request{
		Method: method, URL: &cr.url, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: cr.hdr, Body: http.NoBody, Host: host, RequestURI: target, Close: close,
	}
	br.Discard(end + 4)
	return &cr.req, true
}

// plainRequestHead checks the head's bytes: a request line of a token
// method, an origin-form target of visible ASCII without escapes or
// fragment, HTTP/1.1; header lines of a token key, a colon and a value
// without control characters, each ending in CRLF (no obs-fold).
func plainRequestHead(h []byte) bool {
	line, rest, _ := bytes.Cut(h, []byte("\r\n"))
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !validKey(line[:sp]) {
		return false
	}
	target, proto, ok := bytes.Cut(line[sp+1:], []byte(" "))
	if !ok || string(proto) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return false
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '#' {
			return false
		}
	}
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !validKey(l[:colon]) {
			return false
		}
		for _, c := range l[colon+1:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return false
			}
		}
	}
	return true
}

// plainHost reports whether h is a host[:port] of letters, digits and
// . - _ : [ ] only (anything else is left to net/http's checks).
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c >= 0x80 || !tokenChars[c] && c != ':' && c != '[' && c != ']' {
			return false
		}
		if c != '.' && c != '-' && c != '_' && c != ':' && c != '[' && c != ']' && !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// canonical reports whether k is already in canonical MIME header form
// (textproto.CanonicalMIMEHeaderKey would return it unchanged).
func canonical(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// cut is strings.Cut without the found flag.
func cut(s, sep string) (before, after string) {
	before, after, _ = strings.Cut(s, sep)
	return before, after
}
