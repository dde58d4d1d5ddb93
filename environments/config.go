package environments

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/graylane/graylane/spec"
)

// DefaultName is the name of the one environment of a graylane whose
// configuration declares none: it keeps every name graylane used before
// environments existed.
const DefaultName = "default"

// DefaultApprovalTTL is how long an approval counts (Environment.ApprovalTTL).
const DefaultApprovalTTL = 24 * time.Hour

// NamePattern is what an environment name may look like: it becomes part
// of etcd keys, directory names, API paths and metric labels.
var NamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// Source types an environment may read its releases from.
var sourceTypes = map[string]bool{"etcd": true, "nacos": true, "apollo": true}

// Environment is one declared environment (graylane's configuration,
// key environments[]): where its releases live and the rules a bundle
// must meet to enter it.
type Environment struct {
	// Name is a DNS label of at most 32 characters.
	Name string `json:"name"`
	// Source is the config centre holding the environment's release
	// documents: {type: etcd|nacos|apollo, ...centre keys} (the keys of
	// nacos.*, apollo.* or etcd.* in graylane's configuration, overriding
	// them for this environment). Type etcd without endpoints uses
	// graylane's own etcd.
	Source map[string]any `json:"source"`
	// From is the environment whose bundles this one takes ("" for the
	// first of a chain: it is released into directly).
	From string `json:"from,omitempty"`
	// Soak is how long a bundle must have been Healthy in From.
	Soak spec.Duration `json:"soak,omitempty"`
	// Approvals is how many distinct approvers (token names other than
	// the requester's) a promotion into this environment needs.
	Approvals int `json:"approvals,omitempty"`
	// ApprovalTTL is how long an approval counts (DefaultApprovalTTL).
	ApprovalTTL *spec.Duration `json:"approvalTTL,omitempty"`
	// Windows are when promotions into this environment may happen (any
	// one open; none: always).
	Windows []string `json:"windows,omitempty"`
	// AutoPromote makes graylane promote From's bundle into this
	// environment by itself as soon as every rule allows it.
	AutoPromote bool `json:"autoPromote,omitempty"`
	// RequireAnalysis is the pre-production gate: a bundle enters only
	// after its release passed analysis in each of these environments
	// (e.g. [pre]).
	RequireAnalysis []string `json:"requireAnalysis,omitempty"`
	// LegacyNames keeps the names graylane used before environments were
	// declared (etcd /graylane/state/..., <data.dir>/process), so that an
	// installation that adds environments keeps its state in this one.
	LegacyNames bool `json:"legacyNames,omitempty"`
	// Settings are graylane configuration keys that differ in this
	// environment, laid over the top-level ones (e.g. {nginx: {includeDir:
	// /etc/nginx/graylane-prod}, webhook: {secret: ...}}).
	Settings map[string]any `json:"settings,omitempty"`

	windows Windows
}

// SourceType is the source's type (etcd by default).
func (e *Environment) SourceType() string {
	if t, _ := e.Source["type"].(string); t != "" {
		return t
	}
	return "etcd"
}

// TTL is how long an approval into e counts.
func (e *Environment) TTL() time.Duration {
	if e.ApprovalTTL == nil || e.ApprovalTTL.Duration <= 0 {
		return DefaultApprovalTTL
	}
	return e.ApprovalTTL.Duration
}

// ParsedWindows returns the windows, parsed by Parse.
func (e *Environment) ParsedWindows() Windows { return e.windows }

// Set is the ordered list of environments one graylane serves.
type Set struct {
	Envs []Environment
	// Default is the environment /api/v1/apps/{app} and the CLI without
	// --env mean.
	Default string
}

// ErrInvalid is matched (errors.Is) by every configuration error.
var ErrInvalid = errors.New("invalid environments configuration")

// FieldError is one problem of the environments configuration, with its
// key path (environments[2].from).
type FieldError struct {
	Path, Msg string
}

// ConfigError lists the problems of an environments configuration.
type ConfigError struct{ Errors []FieldError }

func (e *ConfigError) Error() string {
	s := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		s[i] = f.Path + ": " + f.Msg
	}
	return strings.Join(s, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalid }

// Single is the set of a graylane that declares no environments: one
// environment, DefaultName, on the legacy names.
func Single(source map[string]any) Set {
	return Set{Envs: []Environment{{Name: DefaultName, Source: source, LegacyNames: true}}, Default: DefaultName}
}

// Parse reads the environments key (a list, as decoded from graylane's
// configuration) and defaultEnvironment, and validates them: names,
// source types, from (an environment declared before), durations,
// windows, requireAnalysis (other declared environments), at most one
// legacyNames. The default environment is defaultEnv, else the one
// with legacyNames, else the first.
func Parse(raw any, defaultEnv string) (Set, error) {
	var errs []FieldError
	add := func(p, f string, a ...any) { errs = append(errs, FieldError{p, fmt.Sprintf(f, a...)}) }
	list, ok := raw.([]any)
	if !ok {
		return Set{}, &ConfigError{[]FieldError{{"environments", fmt.Sprintf("got %T, want a list of environments", raw)}}}
	}
	var set Set
	index := map[string]int{}
	var pos []int // list index of set.Envs[i]
	legacy := ""
	for i, item := range list {
		p := fmt.Sprintf("environments[%d]", i)
		b, err := json.Marshal(normalize(item))
		if err != nil {
			add(p, "%v", err)
			continue
		}
		var e Environment
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			add(p, "%v (known: name, source, from, soak, approvals, approvalTTL, windows, autoPromote, requireAnalysis, legacyNames, settings)", err)
			continue
		}
		if !NamePattern.MatchString(e.Name) {
			add(p+".name", "%q is not an environment name (lower-case letters, digits and '-', at most 32)", e.Name)
		} else if _, dup := index[e.Name]; dup {
			add(p+".name", "%q is declared twice", e.Name)
		}
		if !sourceTypes[e.SourceType()] {
			add(p+".source.type", "%q is not a config centre (etcd, nacos, apollo)", e.SourceType())
		}
		if e.From != "" {
			if e.From == e.Name {
				add(p+".from", "an environment cannot take bundles from itself")
			} else if _, ok := index[e.From]; !ok {
				add(p+".from", "%q is not an environment declared before %s", e.From, e.Name)
			}
		}
		if e.Soak.Duration < 0 {
			add(p+".soak", "%s is negative", e.Soak.Duration)
		}
		if e.Approvals < 0 || e.Approvals > 20 {
			add(p+".approvals", "%d is outside 0..20", e.Approvals)
		}
		if e.ApprovalTTL != nil && e.ApprovalTTL.Duration <= 0 {
			add(p+".approvalTTL", "%s is not a positive duration", e.ApprovalTTL.Duration)
		}
		if e.From == "" {
			for _, f := range []struct {
				set  bool
				name string
			}{{e.Soak.Duration > 0, "soak"}, {e.Approvals > 0, "approvals"}, {len(e.Windows) > 0, "windows"}, {e.AutoPromote, "autoPromote"}, {len(e.RequireAnalysis) > 0, "requireAnalysis"}} {
				if f.set {
					add(p+"."+f.name, "applies to promotions into %s, which needs from: the environment it takes bundles from", e.Name)
				}
			}
		}
		for j, w := range e.Windows {
			pw, err := ParseWindow(w)
			if err != nil {
				add(fmt.Sprintf("%s.windows[%d]", p, j), "%v", err)
				continue
			}
			e.windows = append(e.windows, pw)
		}
		if e.LegacyNames {
			if legacy != "" {
				add(p+".legacyNames", "only one environment can keep the legacy names (%s already does)", legacy)
			}
			legacy = e.Name
		}
		index[e.Name] = len(set.Envs)
		set.Envs = append(set.Envs, e)
		pos = append(pos, i)
	}
	if len(list) == 0 {
		add("environments", "declare at least one environment (or leave the key out)")
	}
	// requireAnalysis names other declared environments (upstream, like
	// test -> pre -> prod, or beside, like test -> pre and test -> prod)
	for i, e := range set.Envs {
		for j, r := range e.RequireAnalysis {
			if _, ok := index[r]; !ok || r == e.Name {
				add(fmt.Sprintf("environments[%d].requireAnalysis[%d]", pos[i], j), "%q is not another declared environment", r)
			}
		}
	}
	switch {
	case defaultEnv != "":
		if _, ok := index[defaultEnv]; !ok {
			add("defaultEnvironment", "%q is not a declared environment", defaultEnv)
		}
		set.Default = defaultEnv
	case legacy != "":
		set.Default = legacy
	case len(set.Envs) > 0:
		set.Default = set.Envs[0].Name
	}
	if len(errs) > 0 {
		return Set{}, &ConfigError{errs}
	}
	return set, nil
}

// normalize turns the map[any]any a YAML decoder may give into
// map[string]any, recursively, so it can be JSON-encoded.
func normalize(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := map[string]any{}
		for k, val := range x {
			m[fmt.Sprint(k)] = normalize(val)
		}
		return m
	case map[string]any:
		m := map[string]any{}
		for k, val := range x {
			m[k] = normalize(val)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = normalize(val)
		}
		return out
	}
	return v
}

// Get returns the named environment.
func (s *Set) Get(name string) (*Environment, bool) {
	for i := range s.Envs {
		if s.Envs[i].Name == name {
			return &s.Envs[i], true
		}
	}
	return nil, false
}

// Names lists the environments in declared order.
func (s *Set) Names() []string {
	out := make([]string, len(s.Envs))
	for i, e := range s.Envs {
		out[i] = e.Name
	}
	return out
}

// Downstream lists the environments that take bundles from name, in
// declared order.
func (s *Set) Downstream(name string) []string {
	var out []string
	for _, e := range s.Envs {
		if e.From == name {
			out = append(out, e.Name)
		}
	}
	return out
}
