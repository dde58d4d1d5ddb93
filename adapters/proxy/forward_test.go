package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/proxy"
)

// echoServer answers with what it received: method, body, some headers.
func echoServer(t *testing.T, idle time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	conns := &atomic.Int64{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Body", string(b))
		w.Header().Set("X-Got-Forwarded-For", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Got-Foo", r.Header.Get("X-Foo"))
		w.Header().Set("X-Got-Host", r.Host)
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "ok")
		w.Header().Set("X-Sum", "42")
	}))
	srv.Config.IdleTimeout = idle
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns
}

func frontOf(t *testing.T, upstream string) string {
	t.Helper()
	p := proxy.New(proxy.Config{App: "demo"})
	p.AddEndpoint("v1", upstream)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front.URL
}

// TestForwarderRequestsAndResponses: bodies of known and unknown length,
// X-Forwarded-For appended, headers a Connection header names dropped, the
// Host kept, trailers passed on, connections to the upstream kept alive.
func TestForwarderRequestsAndResponses(t *testing.T) {
	up, conns := echoServer(t, 0)
	front := frontOf(t, up.Listener.Addr().String())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

	req, _ := http.NewRequest("POST", front+"/x?y=1", strings.NewReader("payload"))
	req.Host = "shop.example"
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	req.Header.Set("Connection", "X-Foo")
	req.Header.Set("X-Foo", "hop")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Method") != "POST" || resp.Header.Get("X-Body") != "payload" || string(body) != "ok" {
		t.Fatalf("POST: %v %q", resp.Header, body)
	}
	if got := resp.Header.Get("X-Got-Forwarded-For"); got != "192.0.2.1, 127.0.0.1" {
		t.Errorf("X-Forwarded-For upstream = %q, want the client appended", got)
	}
	if got := resp.Header.Get("X-Got-Foo"); got != "" {
		t.Errorf("a header the Connection header names was forwarded: %q", got)
	}
	if got := resp.Header.Get("X-Got-Host"); got != "shop.example" {
		t.Errorf("Host upstream = %q", got)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("trailer = %q, want 42", got)
	}

	// a body of unknown length (chunked)
	pr, pw := io.Pipe()
	go func() { io.WriteString(pw, "chunked "); io.WriteString(pw, "body"); pw.Close() }()
	req, _ = http.NewRequest("PUT", front+"/", pr)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Body"); got != "chunked body" {
		t.Fatalf("chunked request body upstream = %q", got)
	}

	for i := 0; i < 20; i++ {
		resp, err := client.Get(front + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := conns.Load(); n > 3 {
		t.Errorf("22 sequential requests opened %d upstream connections: not kept alive", n)
	}
}

// TestForwarderStaleConnection: an upstream that closes idle connections
// (keep-alive timeout) never costs a request.
func TestForwarderStaleConnection(t *testing.T) {
	up, conns := echoServer(t, 20*time.Millisecond)
	front := frontOf(t, up.Listener.Addr().String())
	for i := 0; i < 10; i++ {
		resp, err := http.Post(front+"/", "text/plain", strings.NewReader("p"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Body") != "p" {
			t.Fatalf("request %d after the upstream closed the idle connection: %s %q", i, resp.Status, resp.Header.Get("X-Body"))
		}
		time.Sleep(60 * time.Millisecond) // the upstream closes the idle connection meanwhile
	}
	if n := conns.Load(); n < 5 {
		t.Fatalf("only %d upstream connections: the idle ones were not closed, the test proves nothing", n)
	}
	// requests without a body reuse a recent connection without peeking:
	// one that turns out closed is replaced at once
	for i := 0; i < 10; i++ {
		resp, err := http.Get(front + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %d after the upstream closed the idle connection: %s", i, resp.Status)
		}
		time.Sleep(40 * time.Millisecond)
	}
}

// TestUpgradeIsProxied: a protocol upgrade (WebSocket-like) is passed
// through both ways.
func TestUpgradeIsProxied(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want an upgrade", 400)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	}))
	defer up.Close()
	front := frontOf(t, up.Listener.Addr().String())
	c, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade answer: %v %v", resp, err)
	}
	io.WriteString(c, "hello\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || line != "echo: hello\n" {
		t.Fatalf("through the upgraded connection: %q, %v", line, err)
	}
}
