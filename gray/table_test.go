package gray

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

func str(s string) *string   { return &s }
func pct(p float64) *float64 { return &p }

func doc(rules []spec.GrayRule, split ...traffic.VersionWeight) *Document {
	return &Document{
		Schema: Schema, App: "shop", Generation: 1,
		UserKey:   UserKey{Header: DefaultUserHeader, Cookie: DefaultUserCookie},
		Bucketing: Bucketing{Hash: HashName, Salt: spec.DefaultGraySalt, Buckets: Buckets},
		Rules:     rules, Split: split,
	}
}

func vw(v string, w int) traffic.VersionWeight { return traffic.VersionWeight{Version: v, Weight: w} }

// userIn returns a user key whose bucket (default salt) is inside [lo, hi).
func userIn(t *testing.T, lo, hi int) string {
	t.Helper()
	for i := 0; i < 1000000; i++ {
		k := fmt.Sprintf("user-%d", i)
		if b, _ := Bucket(spec.DefaultGraySalt, k); b >= lo && b < hi {
			return k
		}
	}
	t.Fatalf("no user with a bucket in [%d,%d)", lo, hi)
	return ""
}

func TestDecideTable(t *testing.T) {
	canaryUser := userIn(t, 0, 500)      // in the first 5%
	midUser := userIn(t, 1500, 1999)     // in 20% but not in 15%
	stableUser := userIn(t, 9000, 10000) // in no canary below 90%
	rules := []spec.GrayRule{
		{Name: "testers", Match: spec.GrayMatch{Headers: []spec.StringMatch{{Name: "x-tester", Equals: str("yes")}}}, Version: "v2"},
		{Name: "beta-cookie", Match: spec.GrayMatch{Cookies: []spec.StringMatch{{Name: "beta", Prefix: "on"}}}, Version: "v2"},
		{Name: "query", Match: spec.GrayMatch{Query: []spec.StringMatch{{Name: "canary", Regex: "1|true"}}}, Version: "v2"},
		{Name: "office", Match: spec.GrayMatch{ClientIPs: []string{"10.1.0.0/16", "192.0.2.7"}}, Version: "v2"},
		{Name: "tenant", Match: spec.GrayMatch{Labels: map[string]string{"tenant": "acme", "plan": "gold"}}, Version: "v3"},
		{Name: "vip", Match: spec.GrayMatch{Headers: []spec.StringMatch{{Name: "X-Plan", Regex: "gold|platinum"}}}, Version: "v1"},
		{Name: "five-percent", Match: spec.GrayMatch{Percent: pct(5)}, Version: "v2"},
	}
	d := doc(rules, vw("v2", 20), vw("v1", 80))
	d.Preview = "v3"
	tab := Compile(d, Self{})

	type req struct {
		header  map[string]string
		cookie  string
		query   string
		remote  string
		labels  string
		xff     string
		ipHdr   string
		noInput bool
	}
	cases := []struct {
		name   string
		r      req
		want   string
		reason Reason
		rule   int
	}{
		{"header equals", req{header: map[string]string{"X-Tester": "yes"}}, "v2", ByRule, 0},
		{"header name is case-insensitive", req{header: map[string]string{"x-TESTER": "yes"}}, "v2", ByRule, 0},
		{"header value is case-sensitive", req{header: map[string]string{"X-Tester": "YES", "X-Gray-User": stableUser}}, "v1", BySplit, 0},
		{"cookie prefix", req{cookie: "a=1; beta=on-please", header: map[string]string{"X-Gray-User": stableUser}}, "v2", ByRule, 1},
		{"quoted cookie", req{cookie: `beta="only"`, header: map[string]string{"X-Gray-User": stableUser}}, "v2", ByRule, 1},
		{"cookie prefix miss", req{cookie: "beta=off", header: map[string]string{"X-Gray-User": stableUser}}, "v1", BySplit, 0},
		{"query regex is anchored", req{query: "canary=true&x=1", header: map[string]string{"X-Gray-User": stableUser}}, "v2", ByRule, 2},
		{"query regex partial does not match", req{query: "canary=truest", header: map[string]string{"X-Gray-User": stableUser}}, "v1", BySplit, 0},
		{"escaped query value", req{query: "x=1&canary=tru%65", header: map[string]string{"X-Gray-User": stableUser}}, "v2", ByRule, 2},
		{"client IP in CIDR", req{remote: "10.1.2.3:5555", header: map[string]string{"X-Gray-User": stableUser}}, "v2", ByRule, 3},
		{"client IP exact", req{remote: "192.0.2.7:1", header: map[string]string{"X-Gray-User": stableUser}}, "v2", ByRule, 3},
		{"IPv4-mapped IPv6 client", req{remote: "[::ffff:10.1.9.9]:1", header: map[string]string{"X-Gray-User": stableUser}}, "v2", ByRule, 3},
		{"client IP outside", req{remote: "10.2.0.1:1", header: map[string]string{"X-Gray-User": stableUser}}, "v1", BySplit, 0},
		{"client IP from a trusted header", req{remote: "127.0.0.1:1", ipHdr: "X-Forwarded-For", xff: "10.1.0.9, 127.0.0.1", header: map[string]string{"X-Gray-User": stableUser}}, "v2", ByRule, 3},
		{"labels all present", req{labels: "tenant=acme, plan=gold", header: map[string]string{"X-Gray-User": stableUser}}, "v3", ByRule, 4},
		{"labels partly present", req{labels: "tenant=acme", header: map[string]string{"X-Gray-User": stableUser}}, "v1", BySplit, 0},
		{"earlier rule wins", req{header: map[string]string{"X-Tester": "yes", "X-Plan": "gold"}}, "v2", ByRule, 0},
		{"vip stays on v1 even in the canary bucket", req{header: map[string]string{"X-Plan": "platinum", "X-Gray-User": canaryUser}}, "v1", ByRule, 5},
		{"percent rule by header user", req{header: map[string]string{"X-Gray-User": canaryUser}}, "v2", ByRule, 6},
		{"percent rule by cookie user", req{cookie: "gray_user=" + canaryUser}, "v2", ByRule, 6},
		{"user key is trimmed", req{header: map[string]string{"X-Gray-User": "  " + canaryUser + "\t"}}, "v2", ByRule, 6},
		{"split by bucket: in 20%", req{header: map[string]string{"X-Gray-User": midUser}}, "v2", BySplit, 0},
		{"split by bucket: outside", req{header: map[string]string{"X-Gray-User": stableUser}}, "v1", BySplit, 0},
		{"preview header", req{header: map[string]string{"X-Graylane-Version": "v3", "X-Gray-User": stableUser}}, "v3", ByPreview, 0},
		{"preview header for another version is ignored", req{header: map[string]string{"X-Graylane-Version": "v9", "X-Gray-User": stableUser}}, "v1", BySplit, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := "http://shop/"
			if c.r.query != "" {
				target += "?" + c.r.query
			}
			r := httptest.NewRequest(http.MethodGet, target, nil)
			r.RemoteAddr = "203.0.113.1:4000"
			if c.r.remote != "" {
				r.RemoteAddr = c.r.remote
			}
			for k, v := range c.r.header {
				r.Header.Set(k, v)
			}
			if c.r.cookie != "" {
				r.Header.Set("Cookie", c.r.cookie)
			}
			if c.r.xff != "" {
				r.Header.Set("X-Forwarded-For", c.r.xff)
			}
			in := Input{Req: r, ClientIPHeader: c.r.ipHdr, Labels: c.r.labels}
			got := tab.Decide(&in)
			if got.Version != c.want || got.Reason != c.reason || (c.reason == ByRule && got.Rule != c.rule) {
				t.Fatalf("Decide = %+v, want version %s by %s (rule %d)", got, c.want, c.reason, c.rule)
			}
		})
	}
}

func TestDecideWithoutUserKeyIsRandomButFixedPerInput(t *testing.T) {
	tab := Compile(doc(nil, vw("v2", 50), vw("v1", 50)), Self{})
	counts := map[string]int{}
	for i := 0; i < 4000; i++ {
		r := httptest.NewRequest(http.MethodGet, "http://shop/", nil)
		in := Input{Req: r}
		first := tab.Decide(&in).Version
		if again := tab.Decide(&in).Version; again != first {
			t.Fatalf("one Input decided %s then %s", first, again)
		}
		counts[first]++
	}
	if counts["v2"] < 1800 || counts["v2"] > 2200 {
		t.Fatalf("keyless requests at 50/50 went %v", counts)
	}
	in := Input{Req: httptest.NewRequest(http.MethodGet, "http://shop/", nil)}
	in.SetRandom(4999)
	if got := tab.Decide(&in).Version; got != "v2" {
		t.Fatalf("random bucket 4999 at v2 50%% went to %s", got)
	}
}

func TestSelfConditionsAreResolvedAtCompile(t *testing.T) {
	rules := []spec.GrayRule{
		{Match: spec.GrayMatch{Regions: []string{"eu-west"}, Zones: []string{"a", "b"}}, Version: "v2"},
		{Match: spec.GrayMatch{InstanceLabels: map[string]string{"env": "staging"}}, Version: "v3"},
	}
	d := doc(rules, vw("v1", 100))
	r := httptest.NewRequest(http.MethodGet, "http://shop/", nil)
	for _, c := range []struct {
		self Self
		want string
	}{
		{Self{Region: "eu-west", Zone: "b"}, "v2"},
		{Self{Region: "eu-west", Zone: "c"}, "v1"},
		{Self{Region: "us-east", Labels: map[string]string{"env": "staging"}}, "v3"},
		{Self{}, "v1"},
	} {
		in := Input{Req: r}
		if got := Compile(d, c.self).Decide(&in).Version; got != c.want {
			t.Errorf("self %+v: got %s, want %s", c.self, got, c.want)
		}
	}
}

// TestStickyAsWeightGrows: every user on the canary at w% is still on it
// at every higher weight, and the share follows the weight.
func TestStickyAsWeightGrows(t *testing.T) {
	const users = 20000
	prev := map[int]bool{}
	for _, w := range []int{1, 5, 10, 20, 50, 80, 100} {
		tab := Compile(doc(nil, vw("v2", w), vw("v1", 100-w)), Self{})
		cur := map[int]bool{}
		for u := 0; u < users; u++ {
			r := httptest.NewRequest(http.MethodGet, "http://shop/", nil)
			r.Header.Set(DefaultUserHeader, fmt.Sprintf("user-%d", u))
			in := Input{Req: r}
			if tab.Decide(&in).Version == "v2" {
				cur[u] = true
			}
		}
		for u := range prev {
			if !cur[u] {
				t.Fatalf("user-%d left the canary when its weight grew to %d%%", u, w)
			}
		}
		if share := float64(len(cur)) / users * 100; share < float64(w)-1 || share > float64(w)+1 {
			t.Fatalf("at %d%%, %.2f%% of users are on the canary", w, share)
		}
		prev = cur
	}
}

func TestCookieAndQueryScanners(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; b = two ;c=\"three\"", "d=4"}}
	for name, want := range map[string]string{"a": "1", "b": "two", "c": "three", "d": "4"} {
		if v, ok := CookieValue(h, name); !ok || v != want {
			t.Errorf("CookieValue(%s) = %q %v, want %q", name, v, ok, want)
		}
	}
	if _, ok := CookieValue(h, "e"); ok {
		t.Error("found a cookie that is not there")
	}
	for _, c := range []struct{ raw, name, want string }{
		{"a=1&b=2", "b", "2"}, {"a=x+y", "a", "x y"}, {"a=%41", "a", "A"}, {"a&b=", "b", ""}, {"a", "a", ""},
	} {
		if v, ok := QueryValue(c.raw, c.name); !ok || v != c.want {
			t.Errorf("QueryValue(%q, %s) = %q %v, want %q", c.raw, c.name, v, ok, c.want)
		}
	}
	if _, ok := QueryValue("a=%zz", "a"); ok {
		t.Error("a malformed escape matched")
	}
}

func TestVersionHeader(t *testing.T) {
	got := ParseVersionHeader(`{"shop":"v2","stock":"1.0;1.1","bad key":"v1","x":""}`)
	want := []AppVersion{{"shop", "v2"}, {"stock", "1.0"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ParseVersionHeader = %v, want %v", got, want)
	}
	if s := EncodeVersionHeader(want); s != `{"shop":"v2","stock":"1.0"}` {
		t.Fatalf("EncodeVersionHeader = %s", s)
	}
	if got := ParseVersionHeader("1.1"); len(got) != 1 || got[0] != (AppVersion{AllApps, "1.1"}) {
		t.Fatalf("plain form = %v", got)
	}
	for _, bad := range []string{"", "{", `{"a":1}`, `"x"`, "a b"} {
		if got := ParseVersionHeader(bad); got != nil {
			t.Errorf("ParseVersionHeader(%q) = %v, want nil", bad, got)
		}
	}
}

func TestDecideAllocatesNothing(t *testing.T) {
	var rules []spec.GrayRule
	for i := 0; i < 10; i++ {
		rules = append(rules, spec.GrayRule{Match: spec.GrayMatch{
			Headers: []spec.StringMatch{{Name: fmt.Sprintf("X-H%d", i), Equals: str("on")}},
			Cookies: []spec.StringMatch{{Name: "c", Prefix: "p"}},
		}, Version: "v2"})
	}
	rules = append(rules, spec.GrayRule{Match: spec.GrayMatch{Percent: pct(1), ClientIPs: []string{"10.0.0.0/8"}}, Version: "v2"})
	tab := Compile(doc(rules, vw("v2", 20), vw("v1", 80)), Self{})
	r := httptest.NewRequest(http.MethodGet, "http://shop/?q=1", nil)
	r.Header.Set("Cookie", "c=x; gray_user=someone")
	r.Header.Set("X-Gray-User", "user-7")
	allocs := testing.AllocsPerRun(1000, func() {
		in := Input{Req: r}
		if tab.Decide(&in).Version == "" {
			t.Fatal("no decision")
		}
	})
	if allocs != 0 {
		t.Fatalf("Decide allocates %.1f times per request, want 0", allocs)
	}
}

func TestLiteralSet(t *testing.T) {
	for re, want := range map[string]string{
		"gold|platinum":     "gold platinum",
		"v[12]":             "v1 v2",
		"(eu|us)-west-[ab]": "eu-west-a eu-west-b us-west-a us-west-b",
		"beta-?1":           "beta-1 beta1",
		"abc|abd":           "abc abd",
		"":                  "",
	} {
		set, ok := literalSet(re)
		if !ok {
			t.Errorf("literalSet(%q) not expanded", re)
			continue
		}
		sort.Strings(set)
		if got := strings.Join(set, " "); got != want {
			t.Errorf("literalSet(%q) = %q, want %q", re, got, want)
		}
	}
	for _, re := range []string{"a+", "a.*", "(?i)gold", "^a$", "[a-z]{3}", "x[^a]", "[\\x00-\\x{10FFFF}]"} {
		if set, ok := literalSet(re); ok {
			t.Errorf("literalSet(%q) = %q, want no expansion", re, set)
		}
	}
}

// TestIndexKeepsFirstMatchOrder: with rules filed under equality groups,
// the first rule in document order that matches still wins, whichever
// group or list it comes from.
func TestIndexKeepsFirstMatchOrder(t *testing.T) {
	rules := []spec.GrayRule{
		{Name: "r0", Match: spec.GrayMatch{Headers: []spec.StringMatch{{Name: "X-Tenant", Equals: str("acme")}}, Percent: pct(0)}, Version: "v9"}, // never: 0%
		{Name: "r1", Match: spec.GrayMatch{Query: []spec.StringMatch{{Name: "q", Equals: str("1")}}}, Version: "v1"},
		{Name: "r2", Match: spec.GrayMatch{Headers: []spec.StringMatch{{Name: "X-Tenant", Equals: str("acme")}}}, Version: "v2"},
		{Name: "r3", Match: spec.GrayMatch{Cookies: []spec.StringMatch{{Name: "plan", Regex: "gold|silver"}}}, Version: "v3"},
		{Name: "r4", Match: spec.GrayMatch{Headers: []spec.StringMatch{{Name: "X-Tenant", Prefix: "ac"}}}, Version: "v4"},
		{Name: "r5", Match: spec.GrayMatch{Headers: []spec.StringMatch{{Name: "X-Tenant", Equals: str("acme")}}}, Version: "v5"},
	}
	tab := Compile(doc(rules, vw("v0", 100)), Self{})
	if len(tab.groups) != 3 || len(tab.unindexed) != 1 {
		t.Fatalf("groups %d unindexed %v", len(tab.groups), tab.unindexed)
	}
	for _, c := range []struct {
		url    string
		header map[string]string
		want   string
	}{
		{"http://a/?q=1", map[string]string{"X-Tenant": "acme", "Cookie": "plan=gold"}, "v1"},
		{"http://a/", map[string]string{"X-Tenant": "acme", "Cookie": "plan=gold"}, "v2"},
		{"http://a/", map[string]string{"X-Tenant": "acmx", "Cookie": "plan=silver"}, "v3"},
		{"http://a/", map[string]string{"X-Tenant": "acmx", "Cookie": "plan=bronze"}, "v4"},
		{"http://a/", map[string]string{"X-Tenant": "zzz"}, "v0"},
	} {
		r := httptest.NewRequest(http.MethodGet, c.url, nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		in := Input{Req: r}
		if got := tab.Decide(&in).Version; got != c.want {
			t.Errorf("%s %v: %s, want %s", c.url, c.header, got, c.want)
		}
	}
}

// TestIndexAgreesWithLinearScan: over random rule tables and requests, the
// indexed decision equals evaluating every rule in order.
func TestIndexAgreesWithLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"X-A", "X-B"}
	values := []string{"1", "2", "3"}
	cond := func() spec.StringMatch {
		sm := spec.StringMatch{Name: names[rng.IntN(len(names))]}
		switch rng.IntN(3) {
		case 0:
			sm.Equals = str(values[rng.IntN(len(values))])
		case 1:
			sm.Prefix = values[rng.IntN(len(values))]
		default:
			sm.Regex = values[rng.IntN(len(values))] + "|" + values[rng.IntN(len(values))]
		}
		return sm
	}
	for round := 0; round < 300; round++ {
		var rules []spec.GrayRule
		for i := 0; i < 1+rng.IntN(8); i++ {
			var m spec.GrayMatch
			for j := 0; j < rng.IntN(3); j++ {
				switch rng.IntN(3) {
				case 0:
					m.Headers = append(m.Headers, cond())
				case 1:
					m.Cookies = append(m.Cookies, cond())
				default:
					c := cond()
					c.Name = strings.ToLower(c.Name)
					m.Query = append(m.Query, c)
				}
			}
			rules = append(rules, spec.GrayRule{Match: m, Version: fmt.Sprintf("v%d", i)})
		}
		tab := Compile(doc(rules, vw("base", 100)), Self{})
		for k := 0; k < 30; k++ {
			q := ""
			r := httptest.NewRequest(http.MethodGet, "http://a/", nil)
			for _, n := range names {
				if rng.IntN(2) == 0 {
					r.Header.Set(n, values[rng.IntN(len(values))])
				}
				if rng.IntN(2) == 0 {
					r.Header.Add("Cookie", n+"="+values[rng.IntN(len(values))])
				}
				if rng.IntN(2) == 0 {
					q += strings.ToLower(n) + "=" + values[rng.IntN(len(values))] + "&"
				}
			}
			r.URL.RawQuery = q
			in := Input{Req: r}
			got := tab.Decide(&in).Version
			want := "base"
			for i := range tab.rules {
				lin := Input{Req: r}
				if tab.rules[i].matches(tab, &lin) {
					want = tab.rules[i].version
					break
				}
			}
			if got != want {
				t.Fatalf("round %d: rules %+v, request %v ?%s: indexed %s, linear %s", round, rules, r.Header, q, got, want)
			}
		}
	}
}

// The fast cookie scan and the pair-by-pair split agree, including on
// names that occur inside other names or values.
func TestCookieValueFastScanCases(t *testing.T) {
	for _, c := range []struct {
		lines      []string
		name, want string
		ok         bool
	}{
		{[]string{"xplan=1; plan=2"}, "plan", "2", true},
		{[]string{"plan2=1; plan=3"}, "plan", "3", true},
		{[]string{"a=plan; plan=4"}, "plan", "4", true},
		{[]string{"a=x;plan=5"}, "plan", "5", true},
		{[]string{"  plan\t =  6 ;x=1"}, "plan", "6", true},
		{[]string{"plan"}, "plan", "", false},
		{[]string{"plan;plan=7"}, "plan", "7", true},
		{[]string{"plan=\"8\""}, "plan", "8", true},
		{[]string{"a=1", "plan=9"}, "plan", "9", true},
		{[]string{"plan="}, "plan", "", true},
		{[]string{"a=1; b=2"}, "plan", "", false},
	} {
		h := http.Header{"Cookie": c.lines}
		v, ok := CookieValue(h, c.name)
		if v != c.want || ok != c.ok {
			t.Errorf("CookieValue(%q, %s) = %q %v, want %q %v", c.lines, c.name, v, ok, c.want, c.ok)
		}
		if sv, sok := cookieValueSplit(h, c.name); sv != v || sok != ok {
			t.Errorf("split(%q, %s) = %q %v, fast scan %q %v", c.lines, c.name, sv, sok, v, ok)
		}
	}
}

func FuzzCookieValue(f *testing.F) {
	f.Add("session=abc; plan=silver; gray_user=u1", "plan")
	f.Add("xplan=1; plan = 2", "plan")
	f.Add("a=plan;plan", "plan")
	f.Add("=x; a=\"\"", "a")
	f.Fuzz(func(t *testing.T, line, name string) {
		h := http.Header{"Cookie": {line}}
		v, ok := CookieValue(h, name)
		sv, sok := cookieValueSplit(h, name)
		if v != sv || ok != sok {
			t.Fatalf("CookieValue(%q, %q) = %q %v; split says %q %v", line, name, v, ok, sv, sok)
		}
	})
}
