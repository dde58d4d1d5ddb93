package gray

import (
	"maps"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/graylane/graylane/spec"
)

// Self describes the instance that decides (the edge of a call chain): the
// rule conditions instanceLabels, regions and zones compare against it.
type Self struct {
	Region, Zone string
	// Labels are the instance's labels, including the Nepxion metadata
	// keys (version, group, env) it registered with.
	Labels map[string]string
}

// Table is a compiled document: what a router consults for every request.
// It is immutable and safe for concurrent use. Compile builds it.
type Table struct {
	doc        *Document
	userHeader string // canonical
	userCookie string
	salt       string
	saltState  uint64 // FNV-1a state after salt and ':'
	preview    string
	rules      []rule
	groups     []group // equality index over rules
	unindexed  []int32 // rules no group can select, in order
	cuts       []cut
	versions   []string
	fallback   []string
}

type rule struct {
	index   int
	name    string
	version string
	headers []strMatch
	cookies []strMatch
	query   []strMatch
	nets    []netip.Prefix
	labels  []kv
	percent int // threshold in buckets; -1: no percent condition
}

type strMatch struct {
	name  string
	kind  uint8
	value string
	set   []string
	re    *regexp.Regexp
}

const (
	matchEquals uint8 = iota
	matchPrefix
	matchRegex
	matchSet // a regex whose language is a small finite set
)

type kv struct{ k, v string }

// group indexes the rules whose key condition compares one header,
// cookie or query parameter for equality (or a small literal set): the
// request's value selects the candidate rules with one map lookup.
type group struct {
	source  uint8 // fromHeader, fromCookie, fromQuery
	name    string
	byValue map[string][]int32 // value -> rule positions, ascending
	// values and rules mirror byValue when it is small: a few string
	// comparisons beat hashing the value.
	values []string
	rules  [][]int32
	// lens has bit len(value)%64 set for every value of values: most
	// requests' values have a length no rule value has, and skip the scan.
	lens uint64
}

// smallGroup is the size up to which a group is scanned, not hashed.
const smallGroup = 8

func (g *group) candidates(v string) []int32 {
	if g.values != nil {
		if g.lens&(1<<(len(v)&63)) == 0 {
			return nil
		}
		for i, x := range g.values {
			if x == v {
				return g.rules[i]
			}
		}
		return nil
	}
	return g.byValue[v]
}

const (
	fromHeader uint8 = iota
	fromCookie
	fromQuery
)

func (g *group) value(in *Input) (string, bool) {
	switch g.source {
	case fromHeader:
		return in.header(g.name)
	case fromCookie:
		return CookieValue(in.Req.Header, g.name)
	default:
		return QueryValue(in.Req.URL.RawQuery, g.name)
	}
}

type cut struct {
	version string
	upto    int
}

var previewHeader = http.CanonicalHeaderKey(HeaderPreview)

// Compile prepares a valid document (see Parse, Build) for deciding.
// Conditions on the deciding instance (instanceLabels, regions, zones) are
// evaluated here against self: a rule that cannot hold for this instance
// is left out.
func Compile(d *Document, self Self) *Table {
	t := &Table{
		doc:        d,
		userHeader: http.CanonicalHeaderKey(d.UserKey.Header),
		userCookie: d.UserKey.Cookie,
		salt:       d.Bucketing.Salt,
		saltState:  saltState(d.Bucketing.Salt),
		preview:    d.Preview,
		versions:   d.Versions(),
	}
	if d.UserKey.Header == "" {
		t.userHeader = ""
	}
	for i, r := range d.Rules {
		if !selfMatches(&r.Match, self) {
			continue
		}
		cr := rule{index: i, name: r.Name, version: r.Version, percent: r.Match.Threshold()}
		cr.headers = compileList(r.Match.Headers, true)
		cr.cookies = compileList(r.Match.Cookies, false)
		cr.query = compileList(r.Match.Query, false)
		for _, c := range r.Match.ClientIPs {
			if p, err := spec.ParseClientIP(c); err == nil {
				cr.nets = append(cr.nets, p)
			}
		}
		for k, v := range r.Match.Labels {
			cr.labels = append(cr.labels, kv{k, v})
		}
		slices.SortFunc(cr.labels, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		t.rules = append(t.rules, cr)
	}
	t.index()
	upto := 0
	for _, w := range d.Split {
		if w.Weight <= 0 {
			continue
		}
		upto += w.Weight * 100
		t.cuts = append(t.cuts, cut{version: w.Version, upto: upto})
	}
	for i := len(t.cuts) - 1; i >= 0; i-- {
		t.fallback = append(t.fallback, t.cuts[i].version)
	}
	for _, v := range t.versions {
		if !slices.Contains(t.fallback, v) {
			t.fallback = append(t.fallback, v)
		}
	}
	return t
}

// index builds the equality index: each rule is filed under its first
// header, cookie or query condition that is an equality or a literal set;
// the others are evaluated for every request.
func (t *Table) index() {
	find := func(source uint8, name string) *group {
		for i := range t.groups {
			if t.groups[i].source == source && t.groups[i].name == name {
				return &t.groups[i]
			}
		}
		t.groups = append(t.groups, group{source: source, name: name, byValue: map[string][]int32{}})
		return &t.groups[len(t.groups)-1]
	}
	for i := range t.rules {
		r := &t.rules[i]
		filed := false
		for _, l := range []struct {
			source uint8
			ms     []strMatch
		}{{fromHeader, r.headers}, {fromCookie, r.cookies}, {fromQuery, r.query}} {
			for _, m := range l.ms {
				if m.kind != matchEquals && m.kind != matchSet {
					continue
				}
				g := find(l.source, m.name)
				values := m.set
				if m.kind == matchEquals {
					values = []string{m.value}
				}
				for _, v := range values {
					g.byValue[v] = append(g.byValue[v], int32(i))
				}
				filed = true
				break
			}
			if filed {
				break
			}
		}
		if !filed {
			t.unindexed = append(t.unindexed, int32(i))
		}
	}
	for gi := range t.groups {
		g := &t.groups[gi]
		if len(g.byValue) > smallGroup {
			continue
		}
		for _, v := range slices.Sorted(maps.Keys(g.byValue)) {
			g.values = append(g.values, v)
			g.rules = append(g.rules, g.byValue[v])
			g.lens |= 1 << (len(v) & 63)
		}
	}
}

func selfMatches(m *spec.GrayMatch, self Self) bool {
	for k, v := range m.InstanceLabels {
		if self.Labels[k] != v {
			return false
		}
	}
	if len(m.Regions) > 0 && !slices.Contains(m.Regions, self.Region) {
		return false
	}
	if len(m.Zones) > 0 && !slices.Contains(m.Zones, self.Zone) {
		return false
	}
	return true
}

func compileList(l []spec.StringMatch, header bool) []strMatch {
	var out []strMatch
	for _, sm := range l {
		m := strMatch{name: sm.Name}
		if header {
			m.name = http.CanonicalHeaderKey(sm.Name)
		}
		switch {
		case sm.Equals != nil:
			m.kind, m.value = matchEquals, *sm.Equals
		case sm.Prefix != "":
			m.kind, m.value = matchPrefix, sm.Prefix
		default:
			if set, ok := literalSet(sm.Regex); ok {
				m.kind, m.set = matchSet, set
				break
			}
			re, err := spec.CompileRegex(sm.Regex)
			if err != nil {
				re = regexp.MustCompile(`^\b\B$`) // never matches; Parse rejects this anyway
			}
			m.kind, m.re = matchRegex, re
		}
		out = append(out, m)
	}
	return out
}

// Document returns the document the table was compiled from.
func (t *Table) Document() *Document { return t.doc }

// App returns the document's app.
func (t *Table) App() string { return t.doc.App }

// Generation returns the document's generation.
func (t *Table) Generation() int64 { return t.doc.Generation }

// UserHeader and UserCookie name where the user key is read.
func (t *Table) UserHeader() string { return t.userHeader }

// UserCookie names the cookie the user key is read from.
func (t *Table) UserCookie() string { return t.userCookie }

// Routes reports whether the document routes to version v (a version
// pinned by an incoming n-d-version header is honoured only then).
func (t *Table) Routes(v string) bool {
	for _, x := range t.versions {
		if x == v {
			return true
		}
	}
	return false
}

// Fallback lists the versions to try, in order, when the decided version
// has no instance: the split's versions from stable to newest, then the
// others the document routes to.
func (t *Table) Fallback() []string { return t.fallback }

// Reason says which step of a document decided.
type Reason int8

// Reasons.
const (
	// ByNothing: the document has no split and no rule matched.
	ByNothing Reason = iota
	// ByPreview: the request asked for the preview version.
	ByPreview
	// ByRule: a rule matched (Result.Rule is its index in the document).
	ByRule
	// BySplit: the user's bucket fell in the split.
	BySplit
	// ByPin: an incoming n-d-version header pinned the version (set by
	// callers that honour it; Decide never returns it).
	ByPin
)

func (r Reason) String() string {
	return [...]string{"nothing", "preview", "rule", "split", "pin"}[r]
}

// Result is one decision.
type Result struct {
	Version string
	Reason  Reason
	// Rule is the index of the matching rule in the document (ByRule).
	Rule int
}

// Decide routes one request. It allocates nothing (a query parameter
// value that needs unescaping is the exception).
func (t *Table) Decide(in *Input) Result {
	if t.preview != "" && !in.IgnorePreview && in.Req != nil && first(in.Req.Header[previewHeader]) == t.preview {
		return Result{Version: t.preview, Reason: ByPreview}
	}
	// the first matching rule: the smallest position among the candidates
	// each group selects and the unindexed rules
	best := len(t.rules)
	for gi := range t.groups {
		g := &t.groups[gi]
		v, ok := g.value(in)
		if !ok {
			continue
		}
		for _, j := range g.candidates(v) {
			if int(j) >= best {
				break
			}
			if t.rules[j].matches(t, in) {
				best = int(j)
				break
			}
		}
	}
	for _, j := range t.unindexed {
		if int(j) >= best {
			break
		}
		if t.rules[j].matches(t, in) {
			best = int(j)
			break
		}
	}
	if best < len(t.rules) {
		r := &t.rules[best]
		return Result{Version: r.version, Reason: ByRule, Rule: r.index}
	}
	if len(t.cuts) == 0 {
		return Result{}
	}
	b := in.bucket(t)
	for _, c := range t.cuts {
		if b < c.upto {
			return Result{Version: c.version, Reason: BySplit}
		}
	}
	return Result{Version: t.cuts[len(t.cuts)-1].version, Reason: BySplit}
}

// Bucket returns the request's user bucket with this document's salt and
// user key (a random one, fixed for in, when it has no key).
func (t *Table) Bucket(in *Input) int { return in.bucket(t) }

func (r *rule) matches(t *Table, in *Input) bool {
	req := in.Req
	for i := range r.headers {
		m := &r.headers[i]
		v, ok := in.header(m.name)
		if !ok || !m.test(v) {
			return false
		}
	}
	for i := range r.cookies {
		m := &r.cookies[i]
		v, ok := CookieValue(req.Header, m.name)
		if !ok || !m.test(v) {
			return false
		}
	}
	for i := range r.query {
		m := &r.query[i]
		v, ok := QueryValue(req.URL.RawQuery, m.name)
		if !ok || !m.test(v) {
			return false
		}
	}
	if len(r.nets) > 0 {
		ip := in.clientIP()
		if !ip.IsValid() {
			return false
		}
		hit := false
		for _, n := range r.nets {
			if n.Contains(ip) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	for _, l := range r.labels {
		v, ok := in.label(l.k)
		if !ok || v != l.v {
			return false
		}
	}
	if r.percent >= 0 && in.bucket(t) >= r.percent {
		return false
	}
	return true
}

func (m *strMatch) test(v string) bool {
	switch m.kind {
	case matchEquals:
		return v == m.value
	case matchPrefix:
		return strings.HasPrefix(v, m.value)
	case matchSet:
		for _, x := range m.set {
			if v == x {
				return true
			}
		}
		return false
	default:
		return m.re.MatchString(v)
	}
}

// Input is one request as rules see it. Build it on the stack for each
// request (Input{Req: r}); it memoises the user bucket and client IP, so a
// decision over many apps hashes the user key once per salt.
type Input struct {
	// Req is the request (headers, cookies, query).
	Req *http.Request
	// ClientIPHeader, if set, names a header whose first address is the
	// client's IP (X-Forwarded-For, X-Real-IP) when Req arrived through a
	// proxy you trust; otherwise Req.RemoteAddr is used.
	ClientIPHeader string
	// Labels, if not empty, are the request labels ("k=v,k2=v2"); else the
	// X-Graylane-Labels header is read.
	Labels string
	// IgnorePreview disregards X-Graylane-Version (an edge deciding for a
	// caller it does not trust).
	IgnorePreview bool

	ip     netip.Addr
	ipDone bool

	hdrName string // the last header looked up, and its first value
	hdrVal  string
	hdrOK   bool

	haveBucket bool
	salt       string
	keyHeader  string
	keyCookie  string
	userKey    string
	b          int

	random     int
	haveRandom bool
}

// SetRandom fixes the bucket used when the request has no user key (by
// default drawn at random once per Input).
func (in *Input) SetRandom(b int) { in.random, in.haveRandom = b%Buckets, true }

// UserKey returns the user key the last bucket was derived from ("" when
// the request had none).
func (in *Input) UserKey() string { return in.userKey }

func (in *Input) bucket(t *Table) int {
	if in.haveBucket && in.salt == t.salt && in.keyHeader == t.userHeader && in.keyCookie == t.userCookie {
		return in.b
	}
	in.haveBucket, in.salt, in.keyHeader, in.keyCookie = true, t.salt, t.userHeader, t.userCookie
	in.userKey = ""
	if in.Req != nil {
		if t.userHeader != "" {
			v, _ := in.header(t.userHeader)
			in.userKey = NormalizeKey(v)
		}
		if in.userKey == "" && t.userCookie != "" {
			v, _ := CookieValue(in.Req.Header, t.userCookie)
			in.userKey = NormalizeKey(v)
		}
	}
	if in.userKey != "" {
		in.b = bucketFrom(t.saltState, in.userKey)
		return in.b
	}
	if !in.haveRandom {
		in.random, in.haveRandom = rand.IntN(Buckets), true
	}
	in.b = in.random
	return in.b
}

// header returns the first value of a canonical header name, remembering
// the last lookup (the user key header is often looked up twice).
func (in *Input) header(name string) (string, bool) {
	if in.hdrName == name && name != "" {
		return in.hdrVal, in.hdrOK
	}
	if in.Req == nil {
		return "", false
	}
	vs := in.Req.Header[name]
	in.hdrName = name
	if len(vs) == 0 {
		in.hdrVal, in.hdrOK = "", false
	} else {
		in.hdrVal, in.hdrOK = vs[0], true
	}
	return in.hdrVal, in.hdrOK
}

func (in *Input) clientIP() netip.Addr {
	if in.ipDone {
		return in.ip
	}
	in.ipDone = true
	if in.Req == nil {
		return in.ip
	}
	if in.ClientIPHeader != "" {
		v := first(in.Req.Header[http.CanonicalHeaderKey(in.ClientIPHeader)])
		v, _, _ = strings.Cut(v, ",")
		if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
			in.ip = a.Unmap()
			return in.ip
		}
	}
	if ap, err := netip.ParseAddrPort(in.Req.RemoteAddr); err == nil {
		in.ip = ap.Addr().Unmap()
	} else if a, err := netip.ParseAddr(in.Req.RemoteAddr); err == nil {
		in.ip = a.Unmap()
	}
	return in.ip
}

var labelsHeader = http.CanonicalHeaderKey(HeaderLabels)

func (in *Input) label(name string) (string, bool) {
	s := in.Labels
	if s == "" && in.Req != nil {
		s = first(in.Req.Header[labelsHeader])
	}
	for s != "" {
		var part string
		part, s = cutAny(s, ",;")
		k, v, ok := strings.Cut(part, "=")
		if ok && trimSpace(k) == name {
			return trimSpace(v), true
		}
	}
	return "", false
}

// CookieValue finds a cookie in the Cookie headers without allocating.
// Surrounding double quotes are removed from the value, as net/http does.
func CookieValue(h http.Header, name string) (string, bool) {
	if !plainCookieName(name) {
		return cookieValueSplit(h, name)
	}
	// Find the name with strings.Index (vectorised) instead of splitting
	// every pair: an occurrence counts only where a pair starts (line start
	// or ';', then blanks) and is followed by blanks and '='. The first such
	// occurrence is the first pair with that name, as the split reads it.
	for _, line := range h["Cookie"] {
		for from := 0; from < len(line); {
			i := strings.Index(line[from:], name)
			if i < 0 {
				break
			}
			k := from + i
			from = k + 1
			l := k - 1
			for l >= 0 && (line[l] == ' ' || line[l] == '\t') {
				l--
			}
			if l >= 0 && line[l] != ';' {
				continue
			}
			r := k + len(name)
			for r < len(line) && (line[r] == ' ' || line[r] == '\t') {
				r++
			}
			if r >= len(line) || line[r] != '=' {
				continue
			}
			v := line[r+1:]
			if end := strings.IndexByte(v, ';'); end >= 0 {
				v = v[:end]
			}
			return cookieText(v), true
		}
	}
	return "", false
}

// cookieText is a cookie's value as written after '=': blanks trimmed,
// surrounding double quotes removed.
func cookieText(v string) string {
	v = trimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}

// plainCookieName: a name the fast scan handles (not empty; no '=', ';'
// or blanks).
func plainCookieName(name string) bool {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '=', ';', ' ', '\t':
			return false
		}
	}
	return name != ""
}

// cookieValueSplit is CookieValue by splitting every pair: for names the
// fast scan does not handle.
func cookieValueSplit(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			end := strings.IndexByte(line, ';')
			part := line
			if end >= 0 {
				part, line = line[:end], line[end+1:]
			} else {
				line = ""
			}
			eq := strings.IndexByte(part, '=')
			if eq < 0 || trimSpace(part[:eq]) != name {
				continue
			}
			return cookieText(part[eq+1:]), true
		}
	}
	return "", false
}

// QueryValue finds the first value of a query parameter in a raw query,
// unescaping it only when it is escaped.
func QueryValue(raw, name string) (string, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return "", false
			}
			return u, true
		}
		return v, true
	}
	return "", false
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func cutAny(s, seps string) (before, after string) {
	if i := strings.IndexAny(s, seps); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}
