package proxy

import (
	"bufio"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestPeekRequest: a common request parsed in place is the request
// http.ReadRequest reads (method, target, host, headers, close); any other
// is left whole to http.ReadRequest.
func TestPeekRequest(t *testing.T) {
	for _, c := range []struct {
		name string
		head string
		ok   bool
	}{
		{"wrk", "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Gray-User: user-1\r\n\r\n", true},
		{"query, odd case, repeats, spaces", "GET /a/b?x=1&y=2 HTTP/1.1\r\nhost: example.com\r\nx-gray-user:  alice \r\nAccept: a\r\naccept: b\r\nCookie: gray_user=bob; other=1\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n", true},
		{"close", "DELETE /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", true},
		{"keep-alive", "GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n", true},
		{"non-ASCII value", "GET / HTTP/1.1\r\nHost: h\r\nX-Gray-User: \xe7\x94\xa8\xe6\x88\xb7\r\n\r\n", true},
		{"body", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", false},
		{"chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"no host", "GET / HTTP/1.1\r\nAccept: a\r\n\r\n", false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
		{"odd host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", false},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: h\r\n\r\n", false},
		{"absolute form", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"escape", "GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"upgrade", "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false},
		{"connection option", "GET / HTTP/1.1\r\nHost: h\r\nConnection: X-A\r\nX-A: 1\r\n\r\n", false},
		{"expect", "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", false},
		{"pragma", "GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n", false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", false},
		{"control in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\x002\r\n\r\n", false},
		{"space in key", "GET / HTTP/1.1\r\nHost: h\r\nX A: 1\r\n\r\n", false},
		{"bare LF", "GET / HTTP/1.1\nHost: h\n\n", false},
		{"incomplete", "GET / HTTP/1.1\r\nHost: h\r\n", false},
		{"garbage", "NOT HTTP\r\n\r\n", false},
	} {
		br := bufio.NewReader(strings.NewReader(c.head))
		br.Peek(1)
		var cr connRequest
		got, ok := cr.peekRequest(br)
		if ok != c.ok {
			t.Errorf("%s: ok = %v, want %v", c.name, ok, c.ok)
			continue
		}
		if !ok {
			if br.Buffered() != len(c.head) {
				t.Errorf("%s: %d bytes consumed, want none", c.name, len(c.head)-br.Buffered())
			}
			continue
		}
		if br.Buffered() != 0 {
			t.Errorf("%s: %d bytes of the head left", c.name, br.Buffered())
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(c.head)))
		if err != nil {
			t.Fatalf("%s: net/http refuses it: %v", c.name, err)
		}
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host || got.Close != want.Close ||
			got.URL.Path != want.URL.Path || got.URL.RawQuery != want.URL.RawQuery || got.ContentLength != want.ContentLength ||
			got.Proto != want.Proto || !got.ProtoAtLeast(1, 1) {
			t.Errorf("%s: got %s %s host %q close %v path %q query %q, net/http %s %s host %q close %v path %q query %q", c.name,
				got.Method, got.RequestURI, got.Host, got.Close, got.URL.Path, got.URL.RawQuery,
				want.Method, want.RequestURI, want.Host, want.Close, want.URL.Path, want.URL.RawQuery)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Errorf("%s: header %v, net/http %v", c.name, got.Header, want.Header)
		}
	}
}

// TestPeekRequestReuse: the next request on the connection does not
// inherit the previous one's headers.
func TestPeekRequestReuse(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("GET /1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-B: 2\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nX-A: 3\r\n\r\n"))
	br.Peek(1)
	var cr connRequest
	if r, ok := cr.peekRequest(br); !ok || r.Header.Get("X-B") != "2" {
		t.Fatalf("first request: %v %v", r, ok)
	}
	r, ok := cr.peekRequest(br)
	if !ok || r.RequestURI != "/2" || r.Header.Get("X-A") != "3" || r.Header["X-B"] != nil {
		t.Fatalf("second request: %v %v", r, ok)
	}
}
