package spec

import (
	"strings"
	"testing"
)

const proxyOnWebhook = `
app: hooked
version: v1
backend:
  type: webhook
  webhook: {url: "http://deploy.example/deploy", statusURL: "http://deploy.example/status"}
traffic:
  type: proxy
  proxy: {listen: 127.0.0.1:8085}
`

// The built-in proxy serves any backend: traffic.proxy.listen is its
// address; backend.process.proxy keeps working for the process backend.
func TestProxyTraffic(t *testing.T) {
	r, err := Parse([]byte(proxyOnWebhook))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ProxyListen(); got != "127.0.0.1:8085" {
		t.Fatalf("ProxyListen = %q", got)
	}
	old, err := Parse([]byte(base))
	if err != nil || old.ProxyListen() != "127.0.0.1:8081" {
		t.Fatalf("backend.process.proxy: ProxyListen = %q, %v", old.ProxyListen(), err)
	}
	both, err := Parse([]byte(strings.Replace(base, "health:", "traffic: {type: proxy, proxy: {listen: 127.0.0.1:8081}}\nhealth:", 1)))
	if err != nil || both.ProxyListen() != "127.0.0.1:8081" {
		t.Fatalf("both spellings agreeing: %v", err)
	}
	for _, c := range []struct {
		name, from, to string
		field, msg     string
	}{
		{"no address", "  proxy: {listen: 127.0.0.1:8085}\n", "", "traffic.proxy.listen", "is required with traffic.type proxy on backend webhook"},
		{"bad address", "listen: 127.0.0.1:8085", "listen: nowhere", "traffic.proxy.listen", "not host:port"},
		{"bad port", "listen: 127.0.0.1:8085", "listen: 127.0.0.1:99999", "traffic.proxy.listen", "no valid port"},
		{"other router", "type: proxy", "type: none", "traffic.proxy", "traffic.type is \"none\""},
		{"unknown field", "listen: 127.0.0.1:8085", "listen: 127.0.0.1:8085, port: 1", "traffic.proxy.port", "unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(proxyOnWebhook, c.from, c.to, 1)
			if doc == proxyOnWebhook {
				t.Fatalf("replacement %q not found", c.from)
			}
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), c.field+": ") || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %s: ...%s...", err, c.field, c.msg)
			}
		})
	}
	_, err = Parse([]byte(strings.Replace(base, "health:", "traffic: {proxy: {listen: 127.0.0.1:9999}}\nhealth:", 1)))
	if err == nil || !strings.Contains(err.Error(), "traffic.proxy.listen: \"127.0.0.1:9999\" disagrees with backend.process.proxy") {
		t.Fatalf("disagreeing addresses: %v", err)
	}
}
