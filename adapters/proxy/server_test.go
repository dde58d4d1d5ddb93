package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/testsupport/testenv"
)

// listening returns the address of a listening proxy in front of h.
func listening(t *testing.T, h http.Handler) string {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	p := proxy.New(proxy.Config{App: "demo"})
	p.AddEndpoint("v1", up.Listener.Addr().String())
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if err := p.Listen(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return addr
}

// raw sends raw bytes on a new connection and returns the connection's
// reader.
func raw(t *testing.T, addr, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	return c, bufio.NewReader(c)
}

// TestServerLoop: the proxy's own server speaks HTTP/1.1 (keep-alive,
// HEAD, 100-continue, chunked streaming) and HTTP/1.0, and refuses what
// does not parse.
func TestServerLoop(t *testing.T) {
	addr := listening(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			io.WriteString(w, "first ")
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
			io.WriteString(w, "second")
		default:
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Body", string(b))
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	}))

	// keep-alive: two requests on one connection
	_, br := raw(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n")
	get, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || get.StatusCode != 200 {
		t.Fatalf("first response: %v %v", get, err)
	}
	if b, _ := io.ReadAll(get.Body); string(b) != "hello" {
		t.Fatalf("first body %q", b)
	}
	head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || head.StatusCode != 200 || head.ContentLength != 5 {
		t.Fatalf("HEAD on the same connection: %v %v", head, err)
	}

	// Expect: 100-continue gets its interim answer before the body is sent
	c, br := raw(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue first, got %q", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "body")
	post, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil || post.Header.Get("X-Body") != "body" {
		t.Fatalf("after 100-continue: %v %v", post, err)
	}

	// a streamed body reaches the client piece by piece
	_, br = raw(t, addr, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	st, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 6)
	if _, err := io.ReadFull(st.Body, first); err != nil || string(first) != "first " {
		t.Fatalf("first piece %q, %v", first, err)
	}
	if rest, _ := io.ReadAll(st.Body); string(rest) != "second" {
		t.Fatalf("rest %q", rest)
	}

	// HTTP/1.0 without keep-alive: the answer, then the connection closes
	_, br = raw(t, addr, "GET /a HTTP/1.0\r\n\r\n")
	old, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || old.StatusCode != 200 {
		t.Fatalf("HTTP/1.0: %v %v", old, err)
	}
	io.ReadAll(old.Body)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("HTTP/1.0 connection stays open: %v", err)
	}

	// garbage
	_, br = raw(t, addr, "NOT HTTP\r\n\r\n")
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Fatalf("garbage answered %q, want 400", line)
	}
}

// rawServer answers each request head on a connection with the next of
// replies, as raw bytes (upstreams net/http would never produce), and
// closes the connection after the last.
func rawServer(t *testing.T, replies ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for _, reply := range replies {
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
					}
					io.WriteString(c, reply)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestServerLoopRawResponses: a common response read in place (rawhead.go)
// reaches the client with its headers in the upstream's case, without
// hop-by-hop ones, the connection kept; a body shorter than its
// Content-Length closes the client's connection rather than leaving it
// out of step.
func TestServerLoopRawResponses(t *testing.T) {
	up := rawServer(t,
		"HTTP/1.1 201 Created\r\nx-app: a\r\nkeep-alive: timeout=5\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
	p := proxy.New(proxy.Config{App: "demo"})
	p.AddEndpoint("v1", up)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if err := p.Listen(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	_, br := raw(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	var head []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		head = append(head, strings.TrimSpace(line))
	}
	want := []string{"HTTP/1.1 201 Created", "x-app: a", proxy.UpstreamHeader + ": " + up, "Content-Length: 2"}
	if strings.Join(head, "|") != strings.Join(want, "|") {
		t.Fatalf("response head\n%q\nwant\n%q", head, want)
	}
	body := make([]byte, 2)
	if _, err := io.ReadFull(br, body); err != nil || string(body) != "ok" {
		t.Fatalf("body %q %v", body, err)
	}
	// the second response on the same client connection: short
	short, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("second response: %v", err)
	}
	if b, err := io.ReadAll(short.Body); err == nil {
		t.Fatalf("a short upstream body reached the client whole: %q", b)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the client connection stays open after a short body")
	}
}
