package gray

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
)

// Header and cookie names. The Nepxion-compatible names are Nepxion
// Discovery's, so Spring Cloud services using Discovery follow graylane's
// decisions and the other way round.
const (
	// HeaderVersion carries the decision along a call chain, as a JSON
	// object from app (service) to version: {"checkout":"v2","stock":"v1"}
	// (Nepxion's n-d-version). Emitted on every outbound call; honoured on
	// inbound requests for the versions the app's document routes to.
	HeaderVersion = "n-d-version"
	// HeaderVersionWeight carries per-request version weights, Nepxion's
	// n-d-version-weight: {"stock":"v1=90;v2=10"} (or one list for every
	// app: "v1=90;v2=10").
	HeaderVersionWeight = "n-d-version-weight"
	// HeaderRegion asks for instances of a region, Nepxion's n-d-region:
	// {"stock":"eu-west"} (or one region for every app: "eu-west").
	HeaderRegion = "n-d-region"
	// HeaderAddress asks for given instances, Nepxion's n-d-address:
	// {"stock":"10.0.0.7:8080;10.0.0.8:8080"} (or one list for every app).
	HeaderAddress = "n-d-address"
	// HeaderPreview reaches a document's preview version.
	HeaderPreview = "X-Graylane-Version"
	// HeaderLabels carries request labels: "tenant=acme,plan=gold".
	HeaderLabels = "X-Graylane-Labels"
	// DefaultUserHeader and DefaultUserCookie carry the user key unless
	// the release's traffic section names others.
	DefaultUserHeader = "X-Gray-User"
	DefaultUserCookie = "gray_user"
)

// AppVersion is one entry of a decision: the version app's requests go to.
type AppVersion struct {
	App     string
	Version string
}

// AllApps is the App of an entry that applies to every app: Nepxion's
// plain form "n-d-version: 1.0".
const AllApps = "*"

// ParseVersionHeader reads an n-d-version value: a JSON object from app to
// version, or (Nepxion's plain form) one version for every app, returned
// as a single entry for AllApps. Nepxion allows several versions separated
// by ';'; the first one is taken. It returns nil for a malformed header.
func ParseVersionHeader(s string) []AppVersion {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	if s[0] != '{' {
		v, _, _ := strings.Cut(s, ";")
		if v = strings.TrimSpace(v); safeName(v) {
			return []AppVersion{{App: AllApps, Version: v}}
		}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil
	}
	out := make([]AppVersion, 0, len(m))
	for app, v := range m {
		v, _, _ = strings.Cut(v, ";")
		v = strings.TrimSpace(v)
		if app == "" || v == "" || !safeName(app) || !safeName(v) {
			continue
		}
		out = append(out, AppVersion{App: app, Version: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// AppValue is one entry of a Nepxion header that names a value per app
// (n-d-version-weight, n-d-region, n-d-address).
type AppValue struct {
	App   string
	Value string
}

// ParseAppHeader reads a Nepxion header of the form {"app":"value",...}
// (JSON object) or a plain value for every app (returned as one entry for
// AllApps). Values are trimmed; entries with an app name that is not one
// are skipped; a malformed object gives nil.
func ParseAppHeader(s string) []AppValue {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 8192 {
		return nil
	}
	if s[0] != '{' {
		return []AppValue{{App: AllApps, Value: s}}
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil
	}
	out := make([]AppValue, 0, len(m))
	for app, v := range m {
		if v = strings.TrimSpace(v); v != "" && safeName(app) {
			out = append(out, AppValue{App: app, Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// ValueFor returns app's value in entries (an entry for AllApps applies
// when app has none of its own).
func ValueFor(entries []AppValue, app string) string {
	all := ""
	for _, e := range entries {
		if e.App == app {
			return e.Value
		}
		if e.App == AllApps {
			all = e.Value
		}
	}
	return all
}

// ParseWeights reads an n-d-version-weight value for one app,
// "v1=90;v2=10": the versions in order with their weights (entries that
// do not parse are skipped).
func ParseWeights(s string) []VersionWeight {
	var out []VersionWeight
	for _, part := range strings.Split(s, ";") {
		v, w, ok := strings.Cut(part, "=")
		v, w = strings.TrimSpace(v), strings.TrimSpace(w)
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 || n > 100 || !safeName(v) {
			continue
		}
		out = append(out, VersionWeight{Version: v, Weight: n})
	}
	return out
}

// VersionWeight is one version's weight in an n-d-version-weight header.
type VersionWeight struct {
	Version string
	Weight  int
}

// EncodeVersionHeader renders entries (sorted by app) as an n-d-version
// value. Names are app names and versions, which never need escaping;
// others are skipped.
func EncodeVersionHeader(entries []AppVersion) string {
	var b strings.Builder
	n := 2
	for _, e := range entries {
		n += len(e.App) + len(e.Version) + 6
	}
	b.Grow(n)
	b.WriteByte('{')
	first := true
	for _, e := range entries {
		if e.Version == "" || !safeName(e.App) || !safeName(e.Version) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteByte('"')
		b.WriteString(e.App)
		b.WriteString(`":"`)
		b.WriteString(e.Version)
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// safeName reports whether s is made of the characters app names and
// versions use (so it needs no JSON escaping).
func safeName(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}

func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+.^_`|~-", c) >= 0) {
			return false
		}
	}
	return true
}
