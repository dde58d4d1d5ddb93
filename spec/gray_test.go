package spec

import (
	"errors"
	"strings"
	"testing"
)

const grayBase = `
app: shop
version: v2
replicas: 2
strategy:
  steps: [{setWeight: 20}, {pause: {}}]
backend: {type: registry}
traffic: {type: gray}
gray:
  salt: shop-2025
  rules:
    - name: testers
      match:
        headers: [{name: X-Tester, equals: "yes"}, {name: X-Team, prefix: core}]
        cookies: [{name: beta, regex: "on|1"}]
        query: [{name: canary, equals: ""}]
        clientIPs: ["10.0.0.0/8", "2001:db8::1", "192.0.2.7"]
        labels: {tenant: acme}
        instanceLabels: {env: prod}
        regions: [eu-west]
        zones: [eu-west-1a]
        percent: 12.5
      target: canary
    - match: {percent: 0.01}
      version: v1
`

func TestGraySectionParses(t *testing.T) {
	r, err := Parse([]byte(grayBase))
	if err != nil {
		t.Fatal(err)
	}
	g := r.Gray
	if g.EffectiveSalt() != "shop-2025" || len(g.Rules) != 2 || g.Rules[0].Target != TargetCanary || g.Rules[1].Version != "v1" {
		t.Fatalf("parsed %+v", g)
	}
	m := g.Rules[0].Match
	if *m.Headers[0].Equals != "yes" || m.Headers[1].Prefix != "core" || m.Cookies[0].Regex != "on|1" || *m.Query[0].Equals != "" {
		t.Fatalf("string matches %+v", m)
	}
	if m.Threshold() != 1250 || g.Rules[1].Match.Threshold() != 1 || (&GrayMatch{}).Threshold() != -1 {
		t.Fatalf("thresholds %d %d", m.Threshold(), g.Rules[1].Match.Threshold())
	}
	if (*Gray)(nil).EffectiveSalt() != DefaultGraySalt {
		t.Fatal("default salt")
	}
	if p, err := ParseClientIP("192.0.2.7"); err != nil || p.Bits() != 32 {
		t.Fatalf("single address %v %v", p, err)
	}
	if r.Traffic.Type != "gray" {
		t.Fatal("traffic.type gray")
	}
}

func TestGraySectionRejections(t *testing.T) {
	cases := []struct{ name, from, to, field string }{
		{"salt", "salt: shop-2025", "salt: shop 2025", "gray.salt"},
		{"target", "target: canary", "target: newest", "gray.rules[0].target"},
		{"version and target", "target: canary", "target: canary\n      version: v3", "gray.rules[0]"},
		{"neither version nor target", "      version: v1\n", "", "gray.rules[1]"},
		{"bad version", "version: v1", "version: v 1", "gray.rules[1].version"},
		{"duplicate name", "    - match: {percent: 0.01}", "    - name: testers\n      match: {percent: 0.01}", "gray.rules[1].name"},
		{"header name", "name: X-Tester", "name: X Tester", "gray.rules[0].match.headers[0].name"},
		{"no comparison", `{name: X-Team, prefix: core}`, `{name: X-Team}`, "gray.rules[0].match.headers[1]"},
		{"two comparisons", `{name: X-Team, prefix: core}`, `{name: X-Team, prefix: core, regex: c}`, "gray.rules[0].match.headers[1]"},
		{"regex", `regex: "on|1"`, `regex: "on|(1"`, "gray.rules[0].match.cookies[0].regex"},
		{"regex not whole-value safe", `regex: "on|1"`, `regex: "a)|(b"`, "gray.rules[0].match.cookies[0].regex"},
		{"regex named group", `regex: "on|1"`, `regex: "(?P<v>on)"`, "gray.rules[0].match.cookies[0].regex"},
		{"regex posix class", `regex: "on|1"`, `regex: "[[:digit:]]+"`, "gray.rules[0].match.cookies[0].regex"},
		{"regex ungreedy flag", `regex: "on|1"`, `regex: "(?U)o.*"`, "gray.rules[0].match.cookies[0].regex"},
		{"query name", "name: canary", "name: can&ary", "gray.rules[0].match.query[0].name"},
		{"cidr", `"10.0.0.0/8"`, `"10.0.0.0/40"`, "gray.rules[0].match.clientIPs[0]"},
		{"ip", `"192.0.2.7"`, `"192.0.2"`, "gray.rules[0].match.clientIPs[2]"},
		{"label value", "tenant: acme", "tenant: 'a,cme'", "gray.rules[0].match.labels.tenant"},
		{"instance label name", "env: prod", "'e nv': prod", "gray.rules[0].match.instanceLabels.e nv"},
		{"region", "[eu-west]", "['eu west']", "gray.rules[0].match.regions[0]"},
		{"percent range", "percent: 12.5", "percent: 100.5", "gray.rules[0].match.percent"},
		{"percent decimals", "percent: 0.01", "percent: 0.001", "gray.rules[1].match.percent"},
		{"unknown match field", "regions:", "region:", "gray.rules[0].match.region"},
		{"wrong kind", "percent: 12.5", "percent: lots", "gray.rules[0].match.percent"},
		{"rules not a list", "  rules:\n", "  rules: 3\n  x:\n", "gray.rules"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(grayBase, c.from, c.to, 1)
			if doc == grayBase {
				t.Fatalf("replacement %q not found", c.from)
			}
			_, err := Parse([]byte(doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", doc)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("not ErrInvalid: %v", err)
			}
			var verr *ValidationError
			errors.As(err, &verr)
			found := false
			for _, fe := range verr.Errors {
				found = found || fe.Path == c.field
			}
			if !found {
				t.Fatalf("no error at %q: %v", c.field, err)
			}
		})
	}
}

// TestCompileRegexWholeValue: a rule regex matches the whole value or is
// refused. "a)|(b" used to be anchored by concatenation into
// "^(?:a)|(b)$", which matched "axyz" and "zzzb".
func TestCompileRegexWholeValue(t *testing.T) {
	if _, err := CompileRegex("a)|(b"); err == nil {
		t.Fatal(`"a)|(b" compiled`)
	}
	re, err := CompileRegex("a|b")
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"a": true, "b": true, "axyz": false, "zzzb": false, "ab": false, "": false} {
		if got := re.MatchString(v); got != want {
			t.Errorf("a|b matches %q: %v, want %v", v, got, want)
		}
	}
	for _, ok := range []string{"(?<v>on)", `\p{L}+`, "(?i)gold", `[a-z]+\d{2}`} {
		if _, err := CompileRegex(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	type inner struct {
		N int `json:"n"`
	}
	type doc struct {
		A []inner `json:"a"`
	}
	var d doc
	if err := DecodeStrict([]byte(`{"a":[{"n":1},{"n":2}]}`), &d); err != nil || len(d.A) != 2 || d.A[1].N != 2 {
		t.Fatalf("decode: %+v %v", d, err)
	}
	for in, field := range map[string]string{
		`{"a":[{"n":1},{"m":2}]}`: "a[1].m",
		`{"a":[{"n":"x"}]}`:       "a[0].n",
		`{"":1}`:                  `""`,
		`{"a":[{"n":"x","n":1}]}`: "",
	} {
		err := DecodeStrict([]byte(in), &d)
		if field == "" {
			if err != nil {
				t.Errorf("%s: %v (duplicate keys: the last one wins)", in, err)
			}
			continue
		}
		if FieldOf(err) != field {
			t.Errorf("%s: field %q, want %q (%v)", in, FieldOf(err), field, err)
		}
	}
	for _, in := range []string{`[]`, `{`, `{} {}`, `1`} {
		var verr *ValidationError
		if err := DecodeStrict([]byte(in), &d); !errors.As(err, &verr) {
			t.Errorf("%s: %v, want a ValidationError", in, err)
		}
	}
}

// FuzzGraySection: any gray section either parses into rules that
// validate again or is rejected with a field path; never a panic.
func FuzzGraySection(f *testing.F) {
	f.Add(grayBase)
	f.Add("app: a\nversion: v1\nbackend: {type: registry}\ngray: {rules: [{match: {headers: [{name: x, regex: '('}]}, version: v1}]}")
	f.Add("app: a\nversion: v1\nbackend: {type: registry}\ngray: {rules: [{match: {percent: .5}}]}")
	f.Fuzz(func(t *testing.T, doc string) {
		r, err := Parse([]byte(doc))
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error is not a ValidationError: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed spec does not validate: %v", err)
		}
		if r.Gray != nil {
			for _, rule := range r.Gray.Rules {
				for _, l := range [][]StringMatch{rule.Match.Headers, rule.Match.Cookies, rule.Match.Query} {
					for _, sm := range l {
						if sm.Regex != "" {
							if _, err := CompileRegex(sm.Regex); err != nil {
								t.Fatalf("accepted a regex that does not compile: %q", sm.Regex)
							}
						}
					}
				}
			}
		}
	})
}
