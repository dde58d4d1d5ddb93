package sdk_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk"
	"github.com/graylane/graylane/sdk/etcdreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// benchRules returns n rules that a typical request does not match, so a
// decision evaluates every one of them and then the split: the worst case.
// Conditions mix header equals/prefix/regex, cookies, query and CIDRs.
func benchRules(n int) []spec.GrayRule {
	var rules []spec.GrayRule
	for i := 0; i < n; i++ {
		var m spec.GrayMatch
		switch i % 5 {
		case 0:
			m.Headers = []spec.StringMatch{{Name: fmt.Sprintf("X-Flag-%d", i), Equals: str("on")}}
		case 1:
			m.Headers = []spec.StringMatch{{Name: "X-Tenant", Prefix: fmt.Sprintf("tenant-%d-", i)}}
		case 2:
			m.Cookies = []spec.StringMatch{{Name: "plan", Regex: fmt.Sprintf("gold-%d|platinum-%d", i, i)}}
		case 3:
			m.Query = []spec.StringMatch{{Name: "beta", Equals: str(fmt.Sprint(i))}}
		case 4:
			m.ClientIPs = []string{fmt.Sprintf("10.%d.0.0/16", i%250)}
		}
		rules = append(rules, spec.GrayRule{Match: m, Version: "v2"})
	}
	return rules
}

func benchRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://shop/items?page=2&sort=asc", nil)
	r.RemoteAddr = "192.168.7.9:52110"
	r.Header.Set("X-Gray-User", "user-12345")
	r.Header.Set("X-Tenant", "acme")
	r.Header.Set("Cookie", "session=abc; plan=silver; gray_user=user-12345")
	r.Header.Set("User-Agent", "bench")
	return r
}

// keyedRules returns n rules the way gray rules are usually written:
// keyed on a few request attributes (a tenant header, a plan cookie, a
// user list), ending with a sticky percentage; the benchmark request
// matches none of them.
func keyedRules(n int) []spec.GrayRule {
	var rules []spec.GrayRule
	for i := 0; i < n-1; i++ {
		var m spec.GrayMatch
		switch i % 3 {
		case 0:
			m.Headers = []spec.StringMatch{{Name: "X-Tenant", Equals: str(fmt.Sprintf("tenant-%d", i))}}
		case 1:
			m.Cookies = []spec.StringMatch{{Name: "plan", Regex: fmt.Sprintf("gold-%d|platinum-%d", i, i)}}
		case 2:
			m.Headers = []spec.StringMatch{{Name: "X-Gray-User", Regex: fmt.Sprintf("tester-%d|qa-%d", i, i)}}
		}
		rules = append(rules, spec.GrayRule{Match: m, Version: "v2"})
	}
	p := 5.0
	return append(rules, spec.GrayRule{Match: spec.GrayMatch{Percent: &p}, Version: "v2"})
}

// BenchmarkDecide is the routing decision of the SDK middleware for one
// app with 1, 10 and 100 rules, for two rule tables: "keyed" (rules on a
// tenant header, a plan cookie and a user list, then a 5% rule: the
// equality index selects candidates with one lookup per attribute) and
// "mixed" (every rule a different header, prefix, regex, query parameter
// or CIDR: the worst case, most rules evaluated). The request matches no
// rule, so the user's bucket picks from the split. Goal: < 100 ns and 0
// allocations with 10 rules.
func BenchmarkDecide(b *testing.B) {
	for _, table := range []struct {
		name  string
		rules func(int) []spec.GrayRule
	}{{"keyed", keyedRules}, {"mixed", benchRules}} {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/rules=%d", table.name, n), func(b *testing.B) {
				benchDecide(b, table.rules(n))
			})
		}
	}
}

func benchDecide(b *testing.B, rules []spec.GrayRule) {
	r := sdk.NewRouter(sdk.RouterConfig{})
	r.Set(doc("shop", rules, vw("v2", 20), vw("v1", 80)))
	req := benchRequest()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r.DecideApp("shop", req).Version == "" {
			b.Fatal("no decision")
		}
	}
}

// BenchmarkMiddleware is the whole per-request cost of the net/http
// middleware with 10 rules per app: the decision for every app with a
// document (1 and 10 apps), the n-d-version header, and the context.
func BenchmarkMiddleware(b *testing.B) {
	for _, apps := range []int{1, 10} {
		b.Run(fmt.Sprintf("apps=%d", apps), func(b *testing.B) {
			r := sdk.NewRouter(sdk.RouterConfig{})
			var docs []*gray.Document
			for a := 0; a < apps; a++ {
				docs = append(docs, doc(fmt.Sprintf("app-%d", a), benchRules(10), vw("v2", 20), vw("v1", 80)))
			}
			r.Replace(docs)
			h := sdk.Middleware(r, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			req := benchRequest()
			w := httptest.NewRecorder()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkRuleChangeEtcd measures, per centre, the time from writing a new
// gray document into the centre to the first request the SDK routes by
// it: each iteration moves v2 between 0% and 100% and sends requests
// through the SDK transport until one reaches the newly chosen version.
// Run with a fixed count, e.g. -benchtime=20x; ms/change is the figure.
func BenchmarkRuleChangeEtcd(b *testing.B) {
	testenv.IntegrationTest(b)
	cli := etcdtest.Start(b).Client()
	reg := etcdreg.New(etcdreg.Config{Client: cli})
	rules := etcdreg.Rules(cli, "")
	b.Cleanup(func() { _ = rules.Close() })
	store := etcdreg.Rules(cli, "")
	b.Cleanup(func() { _ = store.Close() })
	benchRuleChange(b, rules, reg, store)
}

func benchRuleChange(b *testing.B, rules sdk.Rules, reg sdktest.Registry, store grayrouter.Store) {
	ctx := sdktest.Ctx(b, 10*time.Minute)
	for _, v := range []string{"v1", "v2"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		sdktest.Must(b, "listen", err)
		srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, v) })}
		go func() { _ = srv.Serve(ln) }()
		b.Cleanup(func() { _ = srv.Close() })
		_, err = reg.Register(ctx, gray.Instance{App: "bench", Version: v, ID: v, Addr: ln.Addr().String(), Ready: true})
		sdktest.Must(b, "register", err)
	}
	c, err := sdk.Start(ctx, sdk.Config{App: "driver", Version: "v0", Rules: rules, Discovery: reg, Services: []string{"bench"},
		Logger: slog.New(slog.DiscardHandler)})
	sdktest.Must(b, "sdk", err)
	b.Cleanup(func() { _ = c.Close() })
	sdktest.Must(b, "ready", c.Ready(ctx))
	testenv.Eventually(b, time.Minute, "both instances visible", func() error {
		return testenv.Check(len(c.Instances("bench")) == 2, "instances %v", c.Instances("bench"))
	})
	hc := c.HTTPClient()
	call := func() string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://bench/", nil)
		req.Header.Set(gray.DefaultUserHeader, "user-1")
		resp, err := hc.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	publish := func(gen int64, target string) {
		w := 0
		if target == "v2" {
			w = 100
		}
		d := doc("bench", nil, vw("v2", w), vw("v1", 100-w))
		d.Generation = gen
		data, err := d.Marshal()
		sdktest.Must(b, "marshal", err)
		_, err = store.Put(ctx, "bench", data, "")
		sdktest.Must(b, "publish", err)
	}
	// the first document makes the app known to every centre's watch
	publish(1, "v1")
	router := c.Router()
	testenv.Eventually(b, time.Minute, "first document followed", func() error {
		return testenv.Check(router.Generation("bench") == 1, "generation %d", router.Generation("bench"))
	})
	if got := call(); got != "v1" {
		b.Fatalf("the first document routes to v1; a request reached %q", got)
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := "v2"
		if i%2 == 1 {
			target = "v1"
		}
		gen := int64(i + 2)
		start := time.Now()
		publish(gen, target)
		// the change is in force once the router holds its generation;
		// a request then must reach the target (a request alone could hit
		// it by chance: without rules the transport round-robins)
		for router.Generation("bench") < gen {
			if time.Since(start) > time.Minute {
				b.Fatalf("change %d not followed after a minute (generation %d)", i, router.Generation("bench"))
			}
			time.Sleep(100 * time.Microsecond)
		}
		if got := call(); got != target {
			b.Fatalf("change %d: generation %d in force, but a request reached %q, want %q", i, gen, got, target)
		}
		total += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/change")
}
