package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
)

// Limits and defaults of the gray section.
const (
	// DefaultGraySalt seeds the user bucketing hash when gray.salt is not
	// set. Services that must put the same users on their canaries (a call
	// chain released together) must share the salt.
	DefaultGraySalt = "graylane"
	// MaxGrayRules bounds the rules of one app.
	MaxGrayRules = 1000
	// MaxGrayRegex bounds the length of one regular expression.
	MaxGrayRegex = 1024
)

// Symbolic rule targets (GrayRule.Target).
const (
	// TargetCanary is the version being rolled out: the spec's version.
	TargetCanary = "canary"
	// TargetStable is the version that holds the rest of the traffic: the
	// last version of the split with a weight.
	TargetStable = "stable"
)

var (
	// GraySaltPattern is what gray.salt may look like.
	GraySaltPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	// GrayLabelPattern is what a label name, region, zone or rule name may
	// look like.
	GrayLabelPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)
	// headerTokenPattern is an HTTP field name (RFC 9110 token).
	headerTokenPattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
	// queryNamePattern is a query parameter name that needs no escaping.
	queryNamePattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,256}$`)
)

// Gray holds the app's gray rules: which requests reach which version,
// evaluated once at the edge of a call chain by graylane's SDK (or a
// gateway that reads the published rules, see docs/gray.md), in order,
// first match wins. Requests no rule matches follow the canary weight (the
// split), by a sticky per-user bucket. Rules take effect with
// traffic.type gray.
//
//	gray:
//	  salt: shop-2025          # bucketing seed shared by the services of a chain
//	  rules:
//	    - name: testers
//	      match: {headers: [{name: X-Tester, equals: "yes"}]}
//	      target: canary
//	    - name: vip-stays
//	      match: {cookies: [{name: plan, regex: "gold|platinum"}]}
//	      target: stable
//	    - name: beta-users
//	      match: {percent: 5}  # 5% of users, the same ones in every service
//	      target: canary
type Gray struct {
	// Salt seeds the user bucketing hash (default "graylane").
	Salt string `json:"salt,omitempty"`
	// Rules are evaluated in order; the first rule whose match holds
	// decides the version.
	Rules []GrayRule `json:"rules,omitempty"`
}

// GrayRule sends the requests its match selects to one version. Exactly one
// of Version and Target is set.
type GrayRule struct {
	// Name identifies the rule in logs and in the published document.
	Name string `json:"name,omitempty"`
	// Match selects requests; every condition set must hold. An empty
	// match selects every request.
	Match GrayMatch `json:"match"`
	// Version is a literal code version.
	Version string `json:"version,omitempty"`
	// Target is symbolic: "canary" (the version being rolled out) or
	// "stable" (the version the rest of the traffic is on), resolved each
	// time graylane publishes the rules.
	Target string `json:"target,omitempty"`
}

// GrayMatch is a rule's conditions. Every condition that is set must hold;
// within one list (headers, cookies, query) every entry must hold, within
// clientIPs, regions and zones any one entry is enough.
type GrayMatch struct {
	// Headers match request headers (the first value of each).
	Headers []StringMatch `json:"headers,omitempty"`
	// Cookies match request cookies.
	Cookies []StringMatch `json:"cookies,omitempty"`
	// Query matches query parameters (the first value of each).
	Query []StringMatch `json:"query,omitempty"`
	// ClientIPs are IP addresses or CIDR prefixes of the client.
	ClientIPs []string `json:"clientIPs,omitempty"`
	// Labels are request labels (header X-Graylane-Labels: k=v,k2=v2 or
	// the SDK's request labeller); every one must be present and equal.
	Labels map[string]string `json:"labels,omitempty"`
	// InstanceLabels are labels of the instance deciding (the edge: a
	// gateway or the first service), e.g. env, group; all must be equal.
	InstanceLabels map[string]string `json:"instanceLabels,omitempty"`
	// Regions and Zones match the deciding instance's region and zone.
	Regions []string `json:"regions,omitempty"`
	Zones   []string `json:"zones,omitempty"`
	// Percent selects a sticky share of users: those whose bucket (0..9999,
	// from the user key) is below round(percent*100). The same users, in
	// every service with the same salt, for the life of the release.
	// At most two decimals (0.01% granularity).
	Percent *float64 `json:"percent,omitempty"`
}

// StringMatch compares one named value. Exactly one of Equals, Prefix and
// Regex is set. A value that is absent never matches.
type StringMatch struct {
	Name string `json:"name"`
	// Equals compares exactly (case-sensitive).
	Equals *string `json:"equals,omitempty"`
	// Prefix matches values that start with it.
	Prefix string `json:"prefix,omitempty"`
	// Regex must match the whole value (RE2 syntax; keep to the subset
	// Java's java.util.regex reads the same way if a gateway applies it).
	Regex string `json:"regex,omitempty"`
}

// EffectiveSalt returns Salt with its default.
func (g *Gray) EffectiveSalt() string {
	if g == nil || g.Salt == "" {
		return DefaultGraySalt
	}
	return g.Salt
}

// Threshold returns Percent in buckets of 10000: round(percent*100), or
// -1 when Percent is not set.
func (m *GrayMatch) Threshold() int {
	if m.Percent == nil {
		return -1
	}
	return int(math.Round(*m.Percent * 100))
}

// CompileRegex compiles a StringMatch regex that must match the whole
// value: the pattern must parse on its own (so "a)|(b" is refused instead of
// becoming "^(?:a)|(b)$", which matches "axyz" and "zzzb"), then it is
// anchored as ^(?:pattern)$. Patterns using syntax that RE2 and Java's
// java.util.regex read differently are refused too (a gateway in Java must
// decide like graylane): named groups (?P<...>), POSIX classes [[:alpha:]]
// and the (?U) flag (ungreedy in RE2, Unicode classes in Java).
func CompileRegex(re string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(re); err != nil {
		return nil, err
	}
	for _, bad := range []struct{ syntax, why string }{
		{`(?P<`, "named groups (?P<name>...) are RE2-only (write (?<name>...))"},
		{`[[:`, "POSIX classes like [[:alpha:]] are RE2-only (write [A-Za-z] or \\p{L})"},
		{`(?U`, "the U flag means ungreedy in RE2 but Unicode classes in Java"},
	} {
		if strings.Contains(re, bad.syntax) {
			return nil, fmt.Errorf("%s: refused because java.util.regex would read the pattern differently", bad.why)
		}
	}
	return regexp.Compile(`^(?:` + re + `)$`)
}

func (g *Gray) validate(path string, e *errs) {
	if g.Salt != "" && !GraySaltPattern.MatchString(g.Salt) {
		e.add(join(path, "salt"), "%q is not a salt (A-Z a-z 0-9 . _ -, 1 to 64)", g.Salt)
	}
	ValidateGrayRules(join(path, "rules"), g.Rules, true, e.add)
}

// ValidateGrayRules checks rules at path, reporting each problem with its
// field path through add. symbolic says whether Target may be used (the
// spec) or only literal versions (a published document).
func ValidateGrayRules(path string, rules []GrayRule, symbolic bool, add func(path, format string, args ...any)) {
	if len(rules) > MaxGrayRules {
		add(path, "%d rules, over the limit of %d", len(rules), MaxGrayRules)
		return
	}
	names := map[string]int{}
	for i, r := range rules {
		p := index(path, i)
		if r.Name != "" {
			if !GrayLabelPattern.MatchString(r.Name) {
				add(join(p, "name"), "%q is not a rule name (A-Z a-z 0-9 . _ -, at most 63)", r.Name)
			} else if j, ok := names[r.Name]; ok {
				add(join(p, "name"), "%q duplicates rules[%d]", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		switch {
		case r.Version != "" && r.Target != "":
			add(p, "set exactly one of version and target")
		case r.Version != "":
			if err := CheckVersion(r.Version); err != nil {
				add(join(p, "version"), "%v", err)
			}
		case r.Target != "":
			if !symbolic {
				add(join(p, "target"), "a published rule names a version, not a target")
			} else if r.Target != TargetCanary && r.Target != TargetStable {
				add(join(p, "target"), "%q is not a target (canary or stable)", r.Target)
			}
		default:
			if symbolic {
				add(p, "set exactly one of version and target")
			} else {
				add(join(p, "version"), "is required")
			}
		}
		r.Match.validate(join(p, "match"), add)
	}
}

func (m *GrayMatch) validate(path string, add func(path, format string, args ...any)) {
	checkList := func(field string, l []StringMatch, names *regexp.Regexp, what string) {
		for i, sm := range l {
			p := index(join(path, field), i)
			if !names.MatchString(sm.Name) {
				add(join(p, "name"), "%q is not a %s name", sm.Name, what)
			}
			n := 0
			if sm.Equals != nil {
				n++
				if len(*sm.Equals) > 4096 {
					add(join(p, "equals"), "is %d bytes, over 4096", len(*sm.Equals))
				}
			}
			if sm.Prefix != "" {
				n++
				if len(sm.Prefix) > 4096 {
					add(join(p, "prefix"), "is %d bytes, over 4096", len(sm.Prefix))
				}
			}
			if sm.Regex != "" {
				n++
				if len(sm.Regex) > MaxGrayRegex {
					add(join(p, "regex"), "is %d bytes, over %d", len(sm.Regex), MaxGrayRegex)
				} else if _, err := CompileRegex(sm.Regex); err != nil {
					add(join(p, "regex"), "%q is refused: %v", sm.Regex, err)
				}
			}
			if n != 1 {
				add(p, "set exactly one of equals, prefix and regex")
			}
		}
	}
	checkList("headers", m.Headers, headerTokenPattern, "header")
	checkList("cookies", m.Cookies, headerTokenPattern, "cookie")
	checkList("query", m.Query, queryNamePattern, "query parameter (A-Z a-z 0-9 . _ ~ -)")
	for i, c := range m.ClientIPs {
		if _, err := ParseClientIP(c); err != nil {
			add(index(join(path, "clientIPs"), i), "%v", err)
		}
	}
	checkLabels := func(field string, l map[string]string) {
		for k, v := range l {
			p := join(join(path, field), k)
			if !GrayLabelPattern.MatchString(k) {
				add(p, "%q is not a label name (A-Z a-z 0-9 . _ -, at most 63)", k)
			}
			if len(v) > 256 || strings.ContainsAny(v, ",;= \t\r\n\"") {
				add(p, "%q is not a label value (at most 256, no , ; = quotes or spaces)", v)
			}
		}
	}
	checkLabels("labels", m.Labels)
	checkLabels("instanceLabels", m.InstanceLabels)
	for _, l := range []struct {
		field string
		v     []string
	}{{"regions", m.Regions}, {"zones", m.Zones}} {
		for i, v := range l.v {
			if !GrayLabelPattern.MatchString(v) {
				add(index(join(path, l.field), i), "%q is not a region or zone name", v)
			}
		}
	}
	if m.Percent != nil {
		p := *m.Percent
		switch {
		case math.IsNaN(p) || p < 0 || p > 100:
			add(join(path, "percent"), "%v is outside 0..100", p)
		case math.Abs(p*100-math.Round(p*100)) > 1e-6:
			add(join(path, "percent"), "%v has more than two decimals (the granularity is 0.01%%)", p)
		}
	}
}

// ParseClientIP parses an IP address or a CIDR prefix into a prefix (a
// single address becomes a /32 or /128).
func ParseClientIP(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// DecodeStrict decodes one JSON document into v the way Parse decodes a
// release: unknown fields and wrong kinds are reported with their field
// paths, as a *ValidationError. Package gray decodes published gray
// documents with it, so their errors read like the spec's.
func DecodeStrict(data []byte, v any) error {
	if len(data) > MaxSpecBytes {
		return &ValidationError{Errors: []FieldError{{Msg: fmt.Sprintf("document is %d bytes, over the %d byte limit", len(data), MaxSpecBytes)}}}
	}
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		return &ValidationError{Errors: []FieldError{{Msg: "not valid JSON: " + err.Error()}}}
	}
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer {
		return fmt.Errorf("spec: DecodeStrict needs a pointer, got %T", v)
	}
	if _, ok := generic.(map[string]any); !ok && t.Elem().Kind() == reflect.Struct {
		return &ValidationError{Errors: []FieldError{{Msg: fmt.Sprintf("got %s, want a mapping", jsonKind(generic))}}}
	}
	var e errs
	if m, ok := generic.(map[string]any); ok {
		if _, empty := m[""]; empty {
			e.add(`""`, "a field name is empty")
			delete(m, "")
		}
	}
	checkShape(generic, t.Elem(), "", &e)
	if err := e.err(); err != nil {
		return err
	}
	// Decode what checkShape judged (duplicate keys resolved the same way,
	// last one wins), so the two cannot disagree.
	canonical, err := json.Marshal(generic)
	if err != nil {
		return &ValidationError{Errors: []FieldError{{Msg: "not valid JSON: " + err.Error()}}}
	}
	d := json.NewDecoder(bytes.NewReader(canonical))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		path := "document"
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			path = te.Field
		}
		return &ValidationError{Errors: []FieldError{{Path: path, Msg: err.Error()}}}
	}
	return nil
}
