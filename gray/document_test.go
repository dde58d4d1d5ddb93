package gray

import (
	"errors"
	"strings"
	"testing"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

const releaseYAML = `
app: shop
version: v2
replicas: 2
strategy:
  steps: [{setWeight: 20}, {pause: {}}, {setWeight: 100}]
backend: {type: registry}
traffic: {type: gray, stickyHeader: X-User}
gray:
  salt: shop-2025
  rules:
    - name: testers
      match: {headers: [{name: X-Tester, equals: "yes"}]}
      target: canary
    - name: vip
      match: {cookies: [{name: plan, regex: "gold|platinum"}]}
      target: stable
    - name: pinned-v1
      match: {query: [{name: old, equals: "1"}]}
      version: v1
    - name: v3-preview
      match: {labels: {tenant: acme}}
      version: v3
`

func release(t *testing.T) *spec.Release {
	t.Helper()
	rel, err := spec.Parse([]byte(releaseYAML))
	if err != nil {
		t.Fatalf("parse release: %v", err)
	}
	return rel
}

func ruleNames(d Document) []string {
	var out []string
	for _, r := range d.Rules {
		out = append(out, r.Name+"="+r.Version)
	}
	return out
}

func TestBuild(t *testing.T) {
	rel := release(t)
	split := func(ws ...traffic.VersionWeight) traffic.Split { return traffic.Split{Weights: ws} }
	cases := []struct {
		name           string
		split          traffic.Split
		desired        traffic.Replicas
		rules          string
		canary, stable string
	}{
		{"before the first step: testers reach the canary at weight 0",
			split(vw("v1", 100)), traffic.Replicas{"v1": 2, "v2": 1},
			"testers=v2 vip=v1 pinned-v1=v1", "v2", "v1"},
		{"at 20%", split(vw("v2", 20), vw("v1", 80)), traffic.Replicas{"v1": 2, "v2": 1},
			"testers=v2 vip=v1 pinned-v1=v1", "v2", "v1"},
		{"abort: canary at 0 and no instance wanted: every rule to it goes",
			split(vw("v1", 100)), traffic.Replicas{"v1": 2, "v2": 0},
			"vip=v1 pinned-v1=v1", "", "v1"},
		{"desired unknown: rules follow the split alone",
			split(vw("v1", 100)), nil,
			"vip=v1 pinned-v1=v1", "", "v1"},
		{"promoted: stable is the new version; v1 rules live while v1 is kept",
			split(vw("v2", 100)), traffic.Replicas{"v2": 2, "v1": 2},
			"testers=v2 vip=v2 pinned-v1=v1", "v2", "v2"},
		{"after scale-down", split(vw("v2", 100)), traffic.Replicas{"v2": 2},
			"testers=v2 vip=v2", "v2", "v2"},
		{"a preview version is routed", traffic.Split{Weights: split(vw("v1", 100)).Weights, Preview: "v3"}, traffic.Replicas{"v1": 2},
			"vip=v1 pinned-v1=v1 v3-preview=v3", "", "v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Build(BuildInput{Release: rel, Split: c.split, Desired: c.desired})
			if got := strings.Join(ruleNames(d), " "); got != c.rules {
				t.Fatalf("rules = %q, want %q", got, c.rules)
			}
			if d.Canary != c.canary || d.Stable != c.stable {
				t.Fatalf("canary/stable = %q/%q, want %q/%q", d.Canary, d.Stable, c.canary, c.stable)
			}
			if d.UserKey.Header != "X-User" || d.UserKey.Cookie != DefaultUserCookie || d.Bucketing.Salt != "shop-2025" {
				t.Fatalf("user key %+v, bucketing %+v", d.UserKey, d.Bucketing)
			}
			for _, r := range d.Rules {
				if r.Target != "" {
					t.Fatalf("published rule %s keeps target %q", r.Name, r.Target)
				}
			}
			// what Build publishes, Parse reads back identically
			b, err := d.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(Build(...)): %v\n%s", err, b)
			}
			if !back.SameRouting(&d) {
				t.Fatalf("round trip changed the document:\n%s", b)
			}
		})
	}
}

func TestBuildAbortSendsEveryoneToStable(t *testing.T) {
	rel := release(t)
	d := Build(BuildInput{Release: rel, Split: traffic.Split{Weights: []traffic.VersionWeight{vw("v1", 100)}}, Desired: traffic.Replicas{"v1": 2, "v2": 0}})
	tab := Compile(&d, Self{})
	for _, h := range []map[string]string{{"X-Tester": "yes"}, {"X-User": "anyone"}, {}} {
		r := newReq(h)
		in := Input{Req: r}
		if got := tab.Decide(&in).Version; got != "v1" {
			t.Fatalf("after abort, request %v went to %s", h, got)
		}
	}
}

func TestParseRejectsWithFieldPaths(t *testing.T) {
	good := `{"schema":"graylane.gray/v1","app":"shop","generation":3,
	  "userKey":{"header":"X-Gray-User","cookie":"gray_user"},
	  "bucketing":{"hash":"fnv1a64-fmix64","salt":"graylane","buckets":10000},
	  "rules":[{"name":"t","match":{"headers":[{"name":"X-T","equals":"1"}]},"version":"v2"}],
	  "split":[{"version":"v2","weight":10},{"version":"v1","weight":90}]}`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatalf("good document rejected: %v", err)
	}
	cases := []struct{ name, from, to, field string }{
		{"schema", `"graylane.gray/v1"`, `"graylane.gray/v2"`, "schema"},
		{"unknown field", `"generation":3`, `"generation":3,"extra":1`, "extra"},
		{"wrong kind", `"generation":3`, `"generation":"3"`, "generation"},
		{"hash", `"fnv1a64-fmix64"`, `"sha1"`, "bucketing.hash"},
		{"buckets", `"buckets":10000`, `"buckets":100`, "bucketing.buckets"},
		{"salt", `"salt":"graylane"`, `"salt":"gray lane"`, "bucketing.salt"},
		{"bad regex", `"equals":"1"`, `"regex":"("`, "rules[0].match.headers[0].regex"},
		{"two comparisons", `"equals":"1"`, `"equals":"1","prefix":"x"`, "rules[0].match.headers[0]"},
		{"header name", `"name":"X-T"`, `"name":"X T"`, "rules[0].match.headers[0].name"},
		{"unknown match field", `"headers":`, `"header":`, "rules[0].match.header"},
		{"symbolic target published", `"version":"v2"}]`, `"target":"canary"}]`, "rules[0].target"},
		{"bad version", `"version":"v2"}]`, `"version":"v 2"}]`, "rules[0].version"},
		{"weights", `"weight":90`, `"weight":80`, "split"},
		{"weight range", `"weight":90`, `"weight":190`, "split[1].weight"},
		{"user key header", `"header":"X-Gray-User"`, `"header":"X Gray"`, "userKey.header"},
		{"cidr", `"headers":[{"name":"X-T","equals":"1"}]`, `"clientIPs":["10.0.0.0/33"]`, "rules[0].match.clientIPs[0]"},
		{"percent decimals", `"headers":[{"name":"X-T","equals":"1"}]`, `"percent":1.234`, "rules[0].match.percent"},
		{"percent range", `"headers":[{"name":"X-T","equals":"1"}]`, `"percent":101`, "rules[0].match.percent"},
		{"label value", `"headers":[{"name":"X-T","equals":"1"}]`, `"labels":{"tenant":"a,b"}`, "rules[0].match.labels.tenant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := strings.Replace(good, c.from, c.to, 1)
			if bad == good {
				t.Fatalf("replacement %q not found", c.from)
			}
			_, err := Parse([]byte(bad))
			if err == nil {
				t.Fatalf("accepted:\n%s", bad)
			}
			if !errors.Is(err, spec.ErrInvalid) {
				t.Fatalf("error %v is not spec.ErrInvalid", err)
			}
			if f := spec.FieldOf(err); f != c.field {
				t.Fatalf("field = %q, want %q (error: %v)", f, c.field, err)
			}
		})
	}
}
