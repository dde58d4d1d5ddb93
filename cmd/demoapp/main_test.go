package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

func TestHandler(t *testing.T) {
	t.Setenv("DEMO_GREETING", "hello")
	srv := httptest.NewServer(newHandler(options{version: "v7"}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "v7\n" || resp.Header.Get("X-Version") != "v7" {
		t.Fatalf("GET / = %d %q X-Version=%q, want 200 \"v7\\n\" v7", resp.StatusCode, body, resp.Header.Get("X-Version"))
	}
	if got := resp.Header.Get("X-Pid"); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("X-Pid = %q, want %d", got, os.Getpid())
	}

	resp, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /healthz = %d, want 200", resp.StatusCode)
	}

	resp, err = http.Get(srv.URL + "/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Version string
		Env     map[string]string
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.Version != "v7" || info.Env["DEMO_GREETING"] != "hello" {
		t.Errorf("GET /info = %+v, %v; want version v7 and DEMO_GREETING=hello", info, err)
	}

	resp, err = http.Get(srv.URL + "/?sleep=forever")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /?sleep=forever = %d, want 400", resp.StatusCode)
	}
}

func TestFailHealth(t *testing.T) {
	srv := httptest.NewServer(newHandler(options{version: "bad", failHealth: true}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /healthz with --fail-health = %d, want 503", resp.StatusCode)
	}
}

// TestGracefulShutdown cancels run's context (what SIGTERM does) while a
// slow request is in flight: the request completes and run returns nil.
func TestGracefulShutdown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sleeping := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, options{version: "v1", addr: addr, shutdownTimeout: 10 * time.Second, sleeping: sleeping}, log.New(io.Discard, "", 0))
	}()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		// Retry until the server listens; the slow request then sleeps.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var resp *http.Response
		if err := testenv.Poll(ctx, func() (err error) {
			resp, err = http.Get("http://" + addr + "/?sleep=300ms")
			return err
		}); err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	select {
	case <-sleeping:
	case r := <-got:
		t.Fatalf("request finished before it was in flight: %+v", r)
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the handler")
	}
	cancel() // what SIGTERM does
	r := <-got
	if r.err != nil || r.body != "v1\n" {
		t.Fatalf("in-flight request during shutdown = %q, %v; want \"v1\\n\"", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run = %v, want nil after graceful shutdown", err)
	}
}
