package proxy

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
)

// TestPeekResponse: the common response is parsed in place and nothing
// is consumed; everything else is left to http.ReadResponse.
func TestPeekResponse(t *testing.T) {
	for _, c := range []struct {
		name   string
		head   string
		ok     bool
		status int
		length int64
		close  bool
	}{
		{"common", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nv1", true, 200, 2, false},
		{"no reason", "HTTP/1.1 404\r\ncontent-length: 0\r\n\r\n", true, 404, 0, false},
		{"close", "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 3\r\n\r\nerr", true, 500, 3, true},
		{"keep-alive", "HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 1\r\n\r\nx", true, 200, 1, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", false, 0, 0, false},
		{"no length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", false, 0, 0, false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", false, 0, 0, false},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, 0, 0, false},
		{"connection option", "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n", false, 0, 0, false},
		{"trailer", "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nContent-Length: 0\r\n\r\n", false, 0, 0, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, 0, 0, false},
		{"204", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, 0, 0, false},
		{"100 Continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 0, 0, false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", false, 0, 0, false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", false, 0, 0, false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, 0, 0, false},
		{"incomplete head", "HTTP/1.1 200 OK\r\nContent-Len", false, 0, 0, false},
		{"bad status", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", false, 0, 0, false},
	} {
		br := bufio.NewReader(strings.NewReader(c.head))
		var rr rawResponse
		ok, err := peekResponse(br, &rr)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ok != c.ok {
			t.Errorf("%s: ok = %v, want %v", c.name, ok, c.ok)
			continue
		}
		if br.Buffered() != len(c.head) {
			t.Errorf("%s: %d bytes consumed, want none", c.name, len(c.head)-br.Buffered())
		}
		if !ok {
			continue
		}
		if rr.status != c.status || rr.length != c.length || rr.close != c.close {
			t.Errorf("%s: status %d length %d close %v, want %d %d %v", c.name, rr.status, rr.length, rr.close, c.status, c.length, c.close)
		}
		if want := strings.Index(c.head, "\r\n\r\n") + 4; rr.size != want {
			t.Errorf("%s: head size %d, want %d", c.name, rr.size, want)
		}
	}
	// a connection closed before any byte is a read error, as for
	// http.ReadResponse
	if _, err := peekResponse(bufio.NewReader(strings.NewReader("")), &rawResponse{}); err == nil {
		t.Error("empty connection: no error")
	}
}

func TestWriteInt(t *testing.T) {
	for _, n := range []int64{0, 7, 10, 99, 100, 12345, 1 << 40} {
		var b strings.Builder
		bw := bufio.NewWriter(&b)
		writeInt(bw, n)
		bw.Flush()
		if want := strconv.FormatInt(n, 10); b.String() != want {
			t.Errorf("writeInt(%d) = %q", n, b.String())
		}
	}
}
