package gray

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Schema identifies version 1 of the published document format. A reader
// must refuse any other schema rather than guess.
const Schema = "graylane.gray/v1"

// Document is what graylane publishes in the config centre for one app
// (etcd key /graylane/gray/{app}, Nacos dataId {app} in group
// GRAYLANE_GRAY, Apollo item {app} of namespace graylane-gray): everything
// a gateway or SDK needs to route the app's requests. docs/gray.md
// specifies it; a document decides a request like this:
//
//  1. a request carrying X-Graylane-Version equal to Preview goes to Preview;
//  2. otherwise the first rule whose match holds decides;
//  3. otherwise the user's bucket b (0..9999, see Bucket) picks from Split:
//     walk the entries in order, adding weight*100 to a running total, and
//     take the first entry whose total exceeds b;
//  4. an empty Split decides nothing (any instance will do).
//
// Rules and Preview only ever name versions the release still routes to:
// graylane drops a rule whose version has been taken out of the release
// (aborted, rolled back, scaled away), so an abort sends everyone back.
type Document struct {
	// Schema is always "graylane.gray/v1".
	Schema string `json:"schema"`
	// App is the app (service) the document routes.
	App string `json:"app"`
	// Generation rises by one with every change graylane publishes.
	Generation int64 `json:"generation"`
	// PublishedAt is when graylane published it (RFC 3339, UTC).
	PublishedAt string `json:"publishedAt,omitempty"`
	// UserKey says where the user key comes from: the header, else the
	// cookie. A request with neither gets a random bucket.
	UserKey UserKey `json:"userKey"`
	// Bucketing fixes the hash (see Bucket).
	Bucketing Bucketing `json:"bucketing"`
	// Rules in order; first match wins. Every rule names a version.
	Rules []spec.GrayRule `json:"rules"`
	// Split is the canary weight in force: newest version first.
	Split []traffic.VersionWeight `json:"split"`
	// Preview, if set, is reachable with the header X-Graylane-Version.
	Preview string `json:"preview,omitempty"`
	// Canary and Stable are informative: the versions the symbolic rule
	// targets resolved to ("" when none).
	Canary string `json:"canary,omitempty"`
	Stable string `json:"stable,omitempty"`
}

// UserKey names where a request's user key is read.
type UserKey struct {
	Header string `json:"header,omitempty"`
	Cookie string `json:"cookie,omitempty"`
}

// Bucketing describes the bucketing hash; only one is defined.
type Bucketing struct {
	// Hash is "fnv1a64-fmix64".
	Hash string `json:"hash"`
	// Salt seeds the hash (spec gray.salt).
	Salt string `json:"salt"`
	// Buckets is 10000.
	Buckets int `json:"buckets"`
}

// Parse decodes and validates a published document. Errors are
// *spec.ValidationError values naming the field, e.g.
// "rules[2].match.headers[0].regex: ...".
func Parse(data []byte) (*Document, error) {
	var d Document
	if err := spec.DecodeStrict(data, &d); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Marshal renders the document as indented JSON.
func (d *Document) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render gray document of %s: %w", d.App, err)
	}
	return append(b, '\n'), nil
}

// Validate checks every field and returns a *spec.ValidationError.
func (d *Document) Validate() error {
	var fe []spec.FieldError
	add := func(path, format string, args ...any) {
		fe = append(fe, spec.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if d.Schema != Schema {
		add("schema", "%q is not %q (this reader knows only that schema)", d.Schema, Schema)
	}
	if err := spec.CheckApp(d.App); err != nil {
		add("app", "%v", err)
	}
	if d.Generation < 0 {
		add("generation", "%d is negative", d.Generation)
	}
	if d.UserKey.Header != "" && !validToken(d.UserKey.Header) {
		add("userKey.header", "%q is not a header name", d.UserKey.Header)
	}
	if d.UserKey.Cookie != "" && !validToken(d.UserKey.Cookie) {
		add("userKey.cookie", "%q is not a cookie name", d.UserKey.Cookie)
	}
	if d.Bucketing.Hash != HashName {
		add("bucketing.hash", "%q is not %q", d.Bucketing.Hash, HashName)
	}
	if d.Bucketing.Buckets != Buckets {
		add("bucketing.buckets", "%d is not %d", d.Bucketing.Buckets, Buckets)
	}
	if !spec.GraySaltPattern.MatchString(d.Bucketing.Salt) {
		add("bucketing.salt", "%q is not a salt (A-Z a-z 0-9 . _ -, 1 to 64)", d.Bucketing.Salt)
	}
	spec.ValidateGrayRules("rules", d.Rules, false, add)
	total := 0
	seen := map[string]bool{}
	for i, w := range d.Split {
		p := fmt.Sprintf("split[%d]", i)
		if err := spec.CheckVersion(w.Version); err != nil {
			add(p+".version", "%v", err)
		} else if seen[w.Version] {
			add(p+".version", "%q appears twice", w.Version)
		}
		seen[w.Version] = true
		if w.Weight < 0 || w.Weight > 100 {
			add(p+".weight", "%d is outside 0..100", w.Weight)
		}
		total += w.Weight
	}
	if len(d.Split) > 0 && total != 100 {
		add("split", "weights sum to %d, not 100", total)
	}
	for _, f := range []struct{ path, v string }{{"preview", d.Preview}, {"canary", d.Canary}, {"stable", d.Stable}} {
		if f.v != "" {
			if err := spec.CheckVersion(f.v); err != nil {
				add(f.path, "%v", err)
			}
		}
	}
	if len(fe) > 0 {
		return &spec.ValidationError{Errors: fe}
	}
	return nil
}

// Versions returns the versions the document routes to (split entries
// with a weight, the preview, rule versions), sorted.
func (d *Document) Versions() []string {
	var out []string
	add := func(v string) {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, w := range d.Split {
		if w.Weight > 0 {
			add(w.Version)
		}
	}
	add(d.Preview)
	for _, r := range d.Rules {
		add(r.Version)
	}
	slices.Sort(out)
	return out
}

// SplitOf returns the document's split as an traffic.Split.
func (d *Document) SplitOf() traffic.Split {
	return traffic.Split{Weights: slices.Clone(d.Split), Preview: d.Preview}
}

// SameRouting reports whether two documents route every request the same
// way (they may differ in Generation and PublishedAt).
func (d *Document) SameRouting(o *Document) bool {
	if d == nil || o == nil {
		return d == o
	}
	a, b := *d, *o
	a.Generation, b.Generation = 0, 0
	a.PublishedAt, b.PublishedAt = "", ""
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// BuildInput is what Build turns into a document.
type BuildInput struct {
	// Release is the release in force (rules, salt, user key names).
	Release *spec.Release
	// Split is the traffic split to publish.
	Split traffic.Split
	// Desired is the instance count per version the engine last asked the
	// backend for; nil when unknown. A version wanted at more than zero
	// keeps its rules even at weight 0 (testers before the first step).
	Desired traffic.Replicas
}

// Build resolves a release's gray rules against the split in force into
// the document to publish (Generation and PublishedAt are left to the
// publisher). Symbolic targets resolve as: canary = the release's
// version; stable = the last split entry with a weight. A rule is kept
// only while its version is routed to: it has a weight in the split, is
// the preview, or is desired at more than zero instances. So an abort
// (canary at weight 0 and zero instances) drops every rule that sent users
// to the canary.
func Build(in BuildInput) Document {
	rel := in.Release
	d := Document{
		Schema: Schema, App: rel.App,
		UserKey:   UserKey{Header: DefaultUserHeader, Cookie: DefaultUserCookie},
		Bucketing: Bucketing{Hash: HashName, Salt: rel.Gray.EffectiveSalt(), Buckets: Buckets},
		Rules:     []spec.GrayRule{},
		Split:     []traffic.VersionWeight{},
		Preview:   in.Split.Preview,
	}
	if tr := rel.Traffic; tr != nil {
		if tr.StickyHeader != "" {
			d.UserKey.Header = tr.StickyHeader
		}
		if tr.StickyCookie != "" {
			d.UserKey.Cookie = tr.StickyCookie
		}
	}
	weight := map[string]int{}
	for _, w := range in.Split.Weights {
		if w.Weight > 0 {
			d.Split = append(d.Split, w)
			weight[w.Version] += w.Weight
			d.Stable = w.Version
		}
	}
	routed := func(v string) bool {
		return v != "" && (weight[v] > 0 || v == d.Preview || in.Desired[v] > 0)
	}
	if routed(rel.Version) {
		d.Canary = rel.Version
	}
	if rel.Gray == nil {
		return d
	}
	for _, r := range rel.Gray.Rules {
		v := r.Version
		switch r.Target {
		case spec.TargetCanary:
			v = d.Canary
		case spec.TargetStable:
			v = d.Stable
		}
		if !routed(v) {
			continue
		}
		out := r
		out.Version, out.Target = v, ""
		d.Rules = append(d.Rules, out)
	}
	return d
}
