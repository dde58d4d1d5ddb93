package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// upstream is an in-process instance: it answers its version in X-Version
// and the body, and blocks on ?block=1 until released.
type upstream struct {
	version string
	srv     *httptest.Server
	served  atomic.Int64
	entered chan struct{} // receives when a ?block=1 request arrives
	release chan struct{} // closed to let blocked requests finish
}

func newUpstream(t testing.TB, version string) *upstream {
	t.Helper()
	u := &upstream{version: version, entered: make(chan struct{}, 16), release: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.served.Add(1)
		if r.URL.Query().Get("block") == "1" {
			u.entered <- struct{}{}
			<-u.release
		}
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Body", string(b))
		}
		for _, k := range seenHeaders {
			if v := r.Header.Get(k); v != "" {
				w.Header().Set("X-Seen-"+k, v)
			}
		}
		w.Header().Set("X-Version", version)
		io.WriteString(w, version)
	}))
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.srv.Close()
	})
	return u
}

// seenHeaders are echoed back by upstreams as X-Seen-<name>.
var seenHeaders = []string{"N-D-Version", "N-D-Version-Weight", "N-D-Region", "N-D-Address", "X-Graylane-Version", "X-Graylane-Key"}

func (u *upstream) addr() string { return u.srv.Listener.Addr().String() }

// deadAddr returns an address that refuses connections.
func deadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func splitOf(ws ...any) traffic.Split {
	var s traffic.Split
	for i := 0; i+1 < len(ws); i += 2 {
		s.Weights = append(s.Weights, traffic.VersionWeight{Version: ws[i].(string), Weight: ws[i+1].(int)})
	}
	return s
}

func mustSplit(t testing.TB, p *proxy.Proxy, s traffic.Split) {
	t.Helper()
	if err := p.SetSplit(s); err != nil {
		t.Fatalf("SetSplit(%+v): %v", s, err)
	}
}

// do sends one request through p's handler and returns the response.
func do(t testing.TB, p *proxy.Proxy, method, target string, header http.Header, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	return rec
}

func versionOf(t testing.TB, p *proxy.Proxy, header http.Header) string {
	t.Helper()
	rec := do(t, p, "GET", "/", header, "")
	if rec.Code != 200 {
		t.Fatalf("GET / with %v = %d %s", header, rec.Code, rec.Body)
	}
	return rec.Header().Get("X-Version")
}

func user(name string) http.Header { return http.Header{proxy.DefaultStickyHeader: {name}} }

func TestBucket(t *testing.T) {
	// The worked examples of Bucket's doc comment: gray.Bucket with the
	// default salt (docs/gray-vectors.json).
	for _, c := range []struct {
		value string
		want  int
	}{
		{"user-1", 4109},
		{"alice", 134},
		{"  alice\t", 134}, // trimmed, as every layer does
		{"bob", 6595},
	} {
		if got := proxy.Bucket(c.value); got != c.want {
			t.Errorf("Bucket(%q) = %d, want %d", c.value, got, c.want)
		}
	}
}

// TestStickyBuckets mirrors the package doc: bucket b (0..9999) goes to the
// first version whose cumulative weight*100 exceeds b.
func TestStickyBuckets(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	v1, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	p.SetEndpoints("v1", []string{v1.addr()})
	p.SetEndpoints("v2", []string{v2.addr()})

	for _, c := range []struct {
		split traffic.Split
		user  string // its bucket in the comment
		want  string
	}{
		{splitOf("v2", 0, "v1", 100), "alice", "v1"},  // 134: nobody on v2
		{splitOf("v2", 1, "v1", 99), "alice", "v1"},   // 134 >= 100
		{splitOf("v2", 2, "v1", 98), "alice", "v2"},   // 134 < 200
		{splitOf("v2", 41, "v1", 59), "user-1", "v1"}, // 4109 >= 4100
		{splitOf("v2", 42, "v1", 58), "user-1", "v2"}, // 4109 < 4200
		{splitOf("v2", 94, "v1", 6), "user-9999", "v1"},
		{splitOf("v2", 95, "v1", 5), "user-9999", "v2"}, // 9451 < 9500
		{splitOf("v1", 66, "v2", 34), "bob", "v1"},      // 6595 < 6600, v1 comes first
		{splitOf("v1", 65, "v2", 35), "bob", "v2"},      // 6595 >= 6500
	} {
		mustSplit(t, p, c.split)
		want := c.want
		for i := 0; i < 3; i++ {
			if got := versionOf(t, p, user(c.user)); got != want {
				t.Fatalf("split %+v: %s (bucket %d) went to %s, want %s", c.split.Weights, c.user, proxy.Bucket(c.user), got, want)
			}
		}
		// The cookie routes the same user the same way.
		if got := versionOf(t, p, http.Header{"Cookie": {"a=b; " + proxy.DefaultStickyCookie + "=" + c.user}}); got != want {
			t.Fatalf("split %+v: %s by cookie went to %s, want %s", c.split.Weights, c.user, got, want)
		}
	}
}

func TestCustomStickyNames(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo", Settings: proxy.Settings{StickyHeader: "x-user", StickyCookie: "uid"}})
	v1, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	p.SetEndpoints("v1", []string{v1.addr()})
	p.SetEndpoints("v2", []string{v2.addr()})
	mustSplit(t, p, splitOf("v2", 2, "v1", 98))
	if got := versionOf(t, p, http.Header{"X-User": {"alice"}}); got != "v2" {
		t.Fatalf("alice by X-User went to %s, want v2", got)
	}
	if got := versionOf(t, p, http.Header{"Cookie": {`uid="alice"`}}); got != "v2" {
		t.Fatalf("alice by cookie uid went to %s, want v2", got)
	}
	if err := p.Configure(proxy.Settings{}); err != nil {
		t.Fatal(err)
	}
	if got := versionOf(t, p, user("alice")); got != "v2" {
		t.Fatalf("after Configure to defaults, alice went to %s, want v2", got)
	}
	// Another salt buckets alice elsewhere (docs/gray-vectors.json: 2609).
	if err := p.Configure(proxy.Settings{Salt: "shop-2025"}); err != nil {
		t.Fatal(err)
	}
	if got := versionOf(t, p, user("alice")); got != "v1" {
		t.Fatalf("with salt shop-2025 alice (bucket 2609) went to %s, want v1", got)
	}
	if err := p.Configure(proxy.Settings{Salt: "not a salt"}); err == nil {
		t.Fatal("an invalid salt was accepted")
	}
}

func TestVersionWithoutEndpointFallsBack(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	v1, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	p.SetEndpoints("v1", []string{v1.addr()})
	p.SetEndpoints("v2", []string{v2.addr()})
	mustSplit(t, p, splitOf("v3", 50, "v2", 25, "v1", 25))
	got := map[string]int{}
	for i := 0; i < 400; i++ {
		got[versionOf(t, p, nil)]++
	}
	if got["v1"]+got["v2"] != 400 || got["v1"] < 120 || got["v2"] < 120 {
		t.Fatalf("with v3 (no endpoint) at 50%%: %v, want v1 and v2 sharing 400 about evenly", got)
	}
	// The rescaled bucket keeps sticky users together.
	for u := 0; u < 50; u++ {
		name := fmt.Sprintf("user-%d", u)
		first := versionOf(t, p, user(name))
		if again := versionOf(t, p, user(name)); again != first {
			t.Fatalf("%s went to %s then %s", name, first, again)
		}
	}
	// When no weighted version has endpoints, no version outside the
	// split serves: 503 (before the first split any version would).
	mustSplit(t, p, splitOf("v3", 100))
	if rec := do(t, p, "GET", "/", nil, ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("with only v3 (no endpoint) weighted: %d from %q, want 503", rec.Code, rec.Header().Get("X-Version"))
	}
}

func TestNoEndpoint(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	mustSplit(t, p, splitOf("v1", 100))
	if rec := do(t, p, "GET", "/", nil, ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("without endpoints: %d, want 503", rec.Code)
	}
}

func TestEmptySplitServesAnyEndpoint(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	v1 := newUpstream(t, "v1")
	p.AddEndpoint("v1", v1.addr())
	rec := do(t, p, "GET", "/", nil, "")
	if rec.Code != 200 || rec.Header().Get(proxy.UpstreamHeader) != v1.addr() {
		t.Fatalf("before any split: %d upstream %q, want 200 from %s", rec.Code, rec.Header().Get(proxy.UpstreamHeader), v1.addr())
	}
}

func TestDeadEndpointIsRetried(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	live := newUpstream(t, "v1")
	dead := deadAddr(t)
	p.SetEndpoints("v1", []string{dead, live.addr()})
	mustSplit(t, p, splitOf("v1", 100))
	for i := 0; i < 50; i++ {
		rec := do(t, p, "GET", "/", nil, "")
		if rec.Code != 200 || rec.Header().Get(proxy.UpstreamHeader) != live.addr() {
			t.Fatalf("request %d: %d from %q, want 200 from %s", i, rec.Code, rec.Header().Get(proxy.UpstreamHeader), live.addr())
		}
	}
	// A POST whose connection failed sent nothing: retried with its body.
	p2 := proxy.New(proxy.Config{App: "demo", DownFor: time.Nanosecond})
	p2.SetEndpoints("v1", []string{dead})
	p2.SetEndpoints("v2", []string{live.addr()})
	mustSplit(t, p2, splitOf("v1", 100))
	for i := 0; i < 10; i++ {
		rec := do(t, p2, "POST", "/", nil, "payload")
		if rec.Code != 200 || rec.Header().Get("X-Body") != "payload" {
			t.Fatalf("POST to a dead v1 with a live v2: %d body %q, want 200 echoing the payload", rec.Code, rec.Header().Get("X-Body"))
		}
	}
	// Only dead endpoints: 502.
	p3 := proxy.New(proxy.Config{App: "demo"})
	p3.SetEndpoints("v1", []string{dead})
	if rec := do(t, p3, "GET", "/", nil, ""); rec.Code != http.StatusBadGateway {
		t.Fatalf("only a dead endpoint: %d, want 502", rec.Code)
	}
}

// TestDroppedConnection: an endpoint that accepts the request and closes the
// connection without answering costs a GET nothing (retried elsewhere) but a
// POST whose body was sent gets 502 (it may have been processed).
func TestDroppedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4096)
				c.Read(buf) // the request, then hang up
				c.Close()
			}()
		}
	}()
	live := newUpstream(t, "v2")
	p := proxy.New(proxy.Config{App: "demo", DownFor: time.Nanosecond})
	p.SetEndpoints("v1", []string{l.Addr().String()})
	p.SetEndpoints("v2", []string{live.addr()})
	mustSplit(t, p, splitOf("v1", 100))
	for i := 0; i < 10; i++ {
		if rec := do(t, p, "GET", "/", nil, ""); rec.Code != 200 || rec.Header().Get("X-Version") != "v2" {
			t.Fatalf("GET %d with v1 hanging up: %d %q, want 200 from v2", i, rec.Code, rec.Header().Get("X-Version"))
		}
	}
	if rec := do(t, p, "POST", "/", nil, "once"); rec.Code != http.StatusBadGateway {
		t.Fatalf("POST with v1 hanging up after reading it: %d, want 502 (not retried)", rec.Code)
	}
}

func TestDrainWaitsForInFlight(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	slow, other := newUpstream(t, "v1"), newUpstream(t, "v1")
	p.SetEndpoints("v1", []string{slow.addr()})
	mustSplit(t, p, splitOf("v1", 100))

	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- do(t, p, "GET", "/?block=1", nil, "") }()
	select {
	case <-slow.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached its endpoint")
	}
	if n := p.InFlight(slow.addr()); n != 1 {
		t.Fatalf("InFlight = %d, want 1", n)
	}
	p.AddEndpoint("v1", other.addr())
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(context.Background(), slow.addr()) }()

	// New requests no longer reach the draining endpoint.
	testenv.Eventually(t, 10*time.Second, "only "+other.addr()+" left", func() error {
		return testenv.Check(len(p.Endpoints("v1")) == 1, "endpoints = %v", p.Endpoints("v1"))
	})
	for i := 0; i < 20; i++ {
		if rec := do(t, p, "GET", "/", nil, ""); rec.Header().Get(proxy.UpstreamHeader) != other.addr() {
			t.Fatalf("request during drain went to %q, want %s", rec.Header().Get(proxy.UpstreamHeader), other.addr())
		}
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v while a request was in flight", err)
	default:
	}
	if n := p.InFlight(slow.addr()); n != 1 {
		t.Fatalf("InFlight during drain = %d, want 1", n)
	}
	close(slow.release)
	if rec := <-done; rec.Code != 200 || rec.Body.String() != "v1" {
		t.Fatalf("the drained request = %d %q, want 200 v1", rec.Code, rec.Body)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return after the request finished")
	}
	if n := p.InFlight(slow.addr()); n != 0 {
		t.Fatalf("InFlight after drain = %d", n)
	}

	// A drain bounded by ctx reports the requests left.
	blocked := newUpstream(t, "v1")
	p.SetEndpoints("v1", []string{blocked.addr()})
	go do(t, p, "GET", "/?block=1", nil, "")
	<-blocked.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx, blocked.addr()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("bounded Drain = %v, want DeadlineExceeded", err)
	}
}

// TestInFlightCoversTheBody: a request stays in flight until its response
// body is fully sent.
func TestInFlightCoversTheBody(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "head ")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "tail")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	p := proxy.New(proxy.Config{App: "demo"})
	p.AddEndpoint("v1", addr)
	front := httptest.NewServer(p)
	defer front.Close()

	resp, err := http.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "head " {
		t.Fatalf("first bytes = %q, %v", buf, err)
	}
	if n := p.InFlight(addr); n != 1 {
		t.Fatalf("InFlight while the body streams = %d, want 1", n)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "tail" {
		t.Fatalf("rest of the body = %q", rest)
	}
	testenv.Eventually(t, 5*time.Second, "nothing in flight after the body", func() error {
		return testenv.Check(p.InFlight(addr) == 0, "InFlight = %d", p.InFlight(addr))
	})
}

func TestSetSplitRejectsInvalid(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	good := splitOf("v2", 10, "v1", 90)
	mustSplit(t, p, good)
	for _, bad := range []traffic.Split{splitOf("v1", 90), splitOf("v1", 50, "v1", 50), splitOf("v1", 120, "v2", -20)} {
		if err := p.SetSplit(bad); err == nil {
			t.Fatalf("SetSplit(%+v) succeeded", bad)
		}
		if got := p.Split(); !got.Equal(good) {
			t.Fatalf("a rejected split changed the split to %+v", got)
		}
	}
	// Split returns a copy.
	s := p.Split()
	s.Weights[0].Weight = 99
	if got := p.Split(); !got.Equal(good) {
		t.Fatalf("mutating Split()'s result changed the proxy: %+v", got)
	}
}

func TestListenMoves(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	defer p.Close()
	v1 := newUpstream(t, "v1")
	p.AddEndpoint("v1", v1.addr())
	a, b := deadAddr(t), deadAddr(t)
	if err := p.Listen(a); err != nil {
		t.Fatal(err)
	}
	get := func(addr string) error {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	if err := get(a); err != nil {
		t.Fatalf("GET via %s: %v", a, err)
	}
	if err := p.Listen(b); err != nil {
		t.Fatal(err)
	}
	if err := get(b); err != nil {
		t.Fatalf("GET via %s: %v", b, err)
	}
	if p.Addr() != b || p.ListenAddr() != b {
		t.Fatalf("Addr = %s, ListenAddr = %s, want %s", p.Addr(), p.ListenAddr(), b)
	}
	if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		c.Close()
		t.Fatalf("the old address %s still accepts connections", a)
	}
	if err := p.Listen(b); err != nil {
		t.Fatalf("Listen on the same address again: %v", err)
	}
	// A busy address is an error naming the app.
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	if err := p.Listen(busy.Addr().String()); err == nil || !strings.Contains(err.Error(), "demo") {
		t.Fatalf("Listen on a busy address = %v, want an error naming the app", err)
	}
}

// TestConcurrentChangesNeverFail sends requests from many goroutines while
// endpoints come and go and the split moves: with a live endpoint always
// present, no request fails.
func TestConcurrentChangesNeverFail(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	front := httptest.NewServer(p)
	defer front.Close()
	var ups []*upstream
	for i := 0; i < 4; i++ {
		ups = append(ups, newUpstream(t, fmt.Sprintf("v%d", i%2+1)))
	}
	p.SetEndpoints("v1", []string{ups[0].addr()})
	p.SetEndpoints("v2", []string{ups[1].addr()})
	mustSplit(t, p, splitOf("v2", 50, "v1", 50))

	stop := make(chan struct{})
	var failures, total atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(front.URL)
				total.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		switch i % 4 {
		case 0:
			p.SetEndpoints("v1", []string{ups[0].addr(), ups[2].addr()})
		case 1:
			p.RemoveEndpoint(ups[0].addr())
			mustSplit(t, p, splitOf("v2", 90, "v1", 10))
		case 2:
			p.SetEndpoints("v2", []string{ups[3].addr()})
			p.AddEndpoint("v1", ups[0].addr())
		case 3:
			p.SetEndpoints("v2", []string{ups[1].addr(), ups[3].addr()})
			mustSplit(t, p, splitOf("v2", 50, "v1", 50))
		}
		// Let some traffic through each configuration.
		start := total.Load()
		testenv.Eventually(t, 30*time.Second, "5 requests through the new configuration", func() error {
			return testenv.Check(total.Load() >= start+5, "traffic stalled after %d requests", total.Load())
		})
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed while endpoints changed", failures.Load(), total.Load())
	}
	t.Logf("%d requests, none failed", total.Load())
}
