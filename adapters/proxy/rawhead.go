package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
)

// The common upstream response — HTTP/1.1, a status with a body, one
// Content-Length, no Transfer-Encoding, trailers or Connection options
// other than close/keep-alive, its head in the connection's buffer — is
// read without net/http: the head is parsed where it lies in the bufio
// buffer and its header lines are copied to the client as they are, so
// the proxy allocates nothing for it (no http.Response, header map or
// strings: fewer GC cycles, see docs/benchmarks.md). Every other response
// goes through http.ReadResponse exactly as before: nothing is consumed
// until the fast path is sure it applies.

// rawResponse is an upstream response head in a connection's read
// buffer, valid until the next read on that connection.
type rawResponse struct {
	code   []byte // the three status digits
	status int
	lines  []byte // the header lines, each ending in CRLF, without the empty line
	size   int    // bytes of the whole head, the empty line included
	length int64
	close  bool // the upstream asked to close the connection
}

// peekResponse parses the response head at the start of br's buffer
// without consuming it. ok is false when the response is not the common
// case (or not wholly buffered): read it with http.ReadResponse then. err
// is a read error before any byte of the response.
func peekResponse(br *bufio.Reader, rr *rawResponse) (ok bool, err error) {
	if _, err := br.Peek(1); err != nil {
		return false, err
	}
	b, _ := br.Peek(br.Buffered())
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return false, nil
	}
	head := b[:end+2]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	// "HTTP/1.1 200" and an optional reason
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return false, nil
	}
	code := line[9:12]
	status := 0
	for _, c := range code {
		if c < '0' || c > '9' {
			return false, nil
		}
		status = status*10 + int(c-'0')
	}
	if status < 200 || status == http.StatusNoContent || status == http.StatusNotModified {
		return false, nil
	}
	*rr = rawResponse{code: code, status: status, lines: rest, size: end + 4, length: -1}
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !validKey(l[:colon]) {
			return false, nil // also obs-fold (a line starting with a space) and bare LFs
		}
		k, v := l[:colon], bytes.Trim(l[colon+1:], " \t")
		switch {
		case asciiFold(k, "Content-Length"):
			if rr.length >= 0 {
				return false, nil // a second one: net/http decides
			}
			if rr.length = digits(v); rr.length < 0 {
				return false, nil
			}
		case asciiFold(k, "Connection"):
			switch {
			case asciiFold(v, "close"):
				rr.close = true
			case asciiFold(v, "keep-alive"):
			default:
				return false, nil // it may name headers to drop
			}
		case asciiFold(k, "Transfer-Encoding"), asciiFold(k, "Trailer"):
			return false, nil
		}
	}
	return rr.length >= 0, nil
}

// validKey reports whether k is an HTTP token (RFC 9110 5.6.2).
func validKey(k []byte) bool {
	for _, c := range k {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// digits parses a decimal Content-Length, -1 when it is not one.
func digits(v []byte) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// asciiFold reports whether b equals s ignoring ASCII case.
func asciiFold[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// hopKey reports whether a header line's key is one the forwarder drops
// or sets itself (hopHeaders, in any case).
func hopKey(k []byte) bool {
	for _, h := range hopList {
		if asciiFold(k, h) {
			return true
		}
	}
	return false
}

// hopList is hopHeaders' keys, for hopKey.
var hopList = func() (l []string) {
	for h := range hopHeaders {
		l = append(l, h)
	}
	return l
}()

// errShortBody is an upstream that closed before its Content-Length.
var errShortBody = errors.New("upstream response body shorter than its Content-Length")

// rawResponse writes rr (at the start of uc's read buffer) and its body
// to the client, and reports whether the upstream connection may be
// reused.
func (s *connSink) rawResponse(r *http.Request, uc *upConn, rr *rawResponse, e *endpoint) bool {
	bw := s.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(rr.code)
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(rr.status))
	bw.WriteString("\r\n")
	for rest := rr.lines; len(rest) > 0; {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if hopKey(l[:bytes.IndexByte(l, ':')]) {
			continue
		}
		bw.Write(l)
		bw.WriteString("\r\n")
	}
	writeHeader(bw, UpstreamHeader, e.addr)
	bw.WriteString("Content-Length: ")
	writeInt(bw, rr.length)
	bw.WriteString("\r\n")
	if s.close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	uc.br.Discard(rr.size) // the head was copied: the buffer may be reused now
	uc.body = io.LimitedReader{R: uc.br, N: rr.length}
	buf := bufferPool{}.Get()
	n, err := io.CopyBuffer(bw, &uc.body, buf)
	bufferPool{}.Put(buf)
	if err == nil && n < rr.length {
		err = errShortBody
	}
	if err != nil {
		// the client or the upstream failed mid-body: the client's
		// connection cannot carry another response
		s.close = true
		if s.err == nil && bw.Flush() != nil {
			s.err = errors.New("client gone")
		}
		return false
	}
	return !rr.close && !r.Close
}

// writeInt writes n >= 0 in decimal (strconv.FormatInt allocates for
// numbers of three digits and more, and a buffer given to bw.Write
// escapes).
func writeInt(bw *bufio.Writer, n int64) {
	d := int64(1)
	for d <= n/10 {
		d *= 10
	}
	for ; d > 0; d /= 10 {
		bw.WriteByte(byte('0' + n/d%10))
	}
}
