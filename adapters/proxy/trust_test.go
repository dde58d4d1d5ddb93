package proxy_test

import (
	"net/http"
	"testing"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/traffic"
)

// trustProxy has v1 (weight 100), v2 (the preview, weight 0) and v3
// (weight 0, not routed); httptest requests come from 192.0.2.1.
func trustProxy(t *testing.T, trust proxy.Trust) *proxy.Proxy {
	t.Helper()
	p := proxy.New(proxy.Config{App: "demo", Settings: proxy.Settings{Trust: trust}})
	for _, v := range []string{"v1", "v2", "v3"} {
		p.SetEndpoints(v, []string{newUpstream(t, v).addr()})
	}
	mustSplit(t, p, traffic.Split{Weights: splitOf("v1", 100, "v3", 0).Weights, Preview: "v2"})
	return p
}

var steering = http.Header{
	"X-Graylane-Version": {"v2"},
	"N-D-Version":        {`{"demo":"v3","stock":"v9"}`},
	"N-D-Version-Weight": {`{"demo":"v3=100"}`},
	"N-D-Region":         {"eu-west"},
	"N-D-Address":        {"10.0.0.1:80"},
}

// TestUntrustedCannotSteer: an outside client's X-Graylane-Version and
// Nepxion headers are ignored and removed; the request carries the
// proxy's decision in n-d-version instead.
func TestUntrustedCannotSteer(t *testing.T) {
	for name, trust := range map[string]proxy.Trust{
		"nobody trusted":   {},
		"other network":    {ClientIPs: []string{"10.0.0.0/8"}},
		"wrong secret":     {Header: "X-Graylane-Key", Secret: "s3cret"},
		"no secret header": {Header: "X-Graylane-Key", Secret: "s3cret", ClientIPs: []string{"::1"}},
	} {
		t.Run(name, func(t *testing.T) {
			p := trustProxy(t, trust)
			h := steering.Clone()
			h.Set("X-Graylane-Key", "guess")
			rec := do(t, p, "GET", "/", h, "")
			if rec.Code != 200 || rec.Header().Get("X-Version") != "v1" {
				t.Fatalf("steering headers from an untrusted caller: %d from %q, want 200 from v1", rec.Code, rec.Header().Get("X-Version"))
			}
			if got := rec.Header().Get("X-Seen-N-D-Version"); got != `{"demo":"v1"}` {
				t.Errorf("upstream saw n-d-version %q, want the proxy's decision {\"demo\":\"v1\"}", got)
			}
			removed := []string{"N-D-Version-Weight", "N-D-Region", "N-D-Address", "X-Graylane-Version"}
			if trust.Header != "" {
				removed = append(removed, trust.Header)
			}
			for _, k := range removed {
				if got := rec.Header().Get("X-Seen-" + k); got != "" {
					t.Errorf("upstream saw %s: %q, want it removed", k, got)
				}
			}
		})
	}
}

// TestTrustedCallers: a caller trusted by address or by the secret header
// reaches the preview, pins a routed version through n-d-version, and its
// headers travel on (the secret header never does).
func TestTrustedCallers(t *testing.T) {
	for name, c := range map[string]struct {
		trust  proxy.Trust
		header http.Header
	}{
		"by address": {proxy.Trust{ClientIPs: []string{"192.0.2.0/24"}}, http.Header{}},
		"by secret":  {proxy.Trust{Header: "X-Graylane-Key", Secret: "s3cret"}, http.Header{"X-Graylane-Key": {"s3cret"}}},
	} {
		t.Run(name, func(t *testing.T) {
			p := trustProxy(t, c.trust)
			h := c.header.Clone()
			h.Set("X-Graylane-Version", "v2")
			rec := do(t, p, "GET", "/", h, "")
			if got := rec.Header().Get("X-Version"); got != "v2" {
				t.Fatalf("trusted preview request went to %q, want v2", got)
			}
			if got := rec.Header().Get("X-Seen-X-Graylane-Key"); got != "" {
				t.Errorf("the secret header was forwarded: %q", got)
			}
			// A pin to a version the split routes to (the preview) holds;
			// one to v3 (weight 0) does not.
			for pin, want := range map[string]string{"v2": "v2", "v3": "v1"} {
				h := c.header.Clone()
				h.Set("N-D-Version", `{"demo":"`+pin+`","stock":"v9"}`)
				h.Set("N-D-Region", "eu-west")
				rec := do(t, p, "GET", "/", h, "")
				if got := rec.Header().Get("X-Version"); got != want {
					t.Errorf("trusted pin to %s went to %q, want %s", pin, got, want)
				}
				if got := rec.Header().Get("X-Seen-N-D-Version"); got != `{"demo":"`+want+`","stock":"v9"}` {
					t.Errorf("upstream saw n-d-version %q, want the caller's entries with demo=%s", got, want)
				}
				if got := rec.Header().Get("X-Seen-N-D-Region"); got != "eu-west" {
					t.Errorf("a trusted caller's n-d-region was not passed on: %q", got)
				}
			}
			// A preview header naming something else than the preview is
			// plain routing.
			h = c.header.Clone()
			h.Set("X-Graylane-Version", "v3")
			if got := versionOf(t, p, h); got != "v1" {
				t.Errorf("X-Graylane-Version: v3 (not the preview) went to %s, want v1", got)
			}
		})
	}
}

func TestInvalidTrustRejected(t *testing.T) {
	p := proxy.New(proxy.Config{App: "demo"})
	for _, tr := range []proxy.Trust{{ClientIPs: []string{"10.0.0.0/99"}}, {Header: "X-Key"}, {Secret: "s"}} {
		if err := p.Configure(proxy.Settings{Trust: tr}); err == nil {
			t.Errorf("trust %+v was accepted", tr)
		}
	}
}
