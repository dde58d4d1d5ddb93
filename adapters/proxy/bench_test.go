package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/graylane/graylane/adapters/proxy"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmarks
// count the proxy's allocations, not a recorder's.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func benchProxy(b *testing.B) *proxy.Proxy {
	b.Helper()
	p := proxy.New(proxy.Config{App: "bench"})
	for _, v := range []string{"v1", "v2"} {
		var addrs []string
		for i := 0; i < 2; i++ {
			addrs = append(addrs, newUpstream(b, v).addr())
		}
		p.SetEndpoints(v, addrs)
	}
	mustSplit(b, p, splitOf("v2", 20, "v1", 80))
	return p
}

// BenchmarkServeHTTP measures one proxied request through the handler: the
// routing decision, the round trip to an in-process upstream over loopback
// (keep-alive) and copying the response.
func BenchmarkServeHTTP(b *testing.B) {
	p := benchProxy(b)
	for _, c := range []struct {
		name   string
		header http.Header
	}{
		{"random", nil},
		{"sticky", http.Header{proxy.DefaultStickyHeader: {"user-7"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "/", nil)
				for k, v := range c.header {
					req.Header[k] = v
				}
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					p.ServeHTTP(w, req)
				}
			})
		})
	}
}

// cannedTransport answers every request at once without I/O, so
// BenchmarkProxyOverhead counts only the proxy's own work.
type cannedTransport struct{}

type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: emptyBody{}, ContentLength: 0, Request: r}, nil
}

// BenchmarkProxyOverhead measures the proxy alone: routing, the
// ReverseProxy's request rewrite and response copy, with a transport that
// answers at once.
func BenchmarkProxyOverhead(b *testing.B) {
	p := proxy.New(proxy.Config{App: "bench", Transport: cannedTransport{}})
	p.SetEndpoints("v1", []string{"127.0.0.1:1001", "127.0.0.1:1002"})
	p.SetEndpoints("v2", []string{"127.0.0.1:2001"})
	mustSplit(b, p, splitOf("v2", 20, "v1", 80))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(proxy.DefaultStickyHeader, "user-7")
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			p.ServeHTTP(w, req)
		}
	})
}

// BenchmarkEndToEnd measures requests from a real client through the
// listening proxy to the upstreams.
func BenchmarkEndToEnd(b *testing.B) {
	p := benchProxy(b)
	front := httptest.NewServer(p)
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(front.URL)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
