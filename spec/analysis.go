package spec

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// DefaultAnalysisInterval is how often checks run unless configured.
const DefaultAnalysisInterval = 10 * time.Second

// Analysis defines the checks that judge a new version while it is rolled
// out (Flagger's metrics, Argo Rollouts' analysis). Every check runs every
// Interval against the new version for as long as a canary or blue-green
// rollout is in progress.
//
//   - background (default true): a check that fails more than FailureLimit
//     times in a row aborts the release (rolls it back with autoRollback).
//   - a canary step `analysis: {checks: [...], count: N}` completes once
//     each listed check has succeeded N times in a row since the step
//     began; failures during the step abort as above, background or not.
type Analysis struct {
	// Interval between two runs of each check (default 10s).
	Interval *Duration `json:"interval,omitempty"`
	// FailureLimit is how many consecutive failures of one check are
	// tolerated (default 0: the first failure aborts).
	FailureLimit *int `json:"failureLimit,omitempty"`
	// Background runs the checks as guards for the whole rollout (default
	// true). When false, they only judge analysis steps.
	Background *bool `json:"background,omitempty"`
	// Checks are the checks, by name.
	Checks []Check `json:"checks"`
}

// Check is one check. Exactly one of HTTP and Prometheus is set. Its
// strings are templates with {{.App}}, {{.Version}} (the version being
// judged) and {{.StableVersion}}.
type Check struct {
	Name       string           `json:"name"`
	HTTP       *HTTPCheck       `json:"http,omitempty"`
	Prometheus *PrometheusCheck `json:"prometheus,omitempty"`
}

// HTTPCheck calls a URL. It succeeds when the status matches and, if
// JSONPath is set, the number found there is within [Min, Max].
type HTTPCheck struct {
	URL     string            `json:"url"`
	Method  string            `json:"method,omitempty"` // default GET
	Headers map[string]string `json:"headers,omitempty"`
	// Status is the expected status code (default: any 2xx).
	Status int `json:"status,omitempty"`
	// JSONPath is a dotted path into a JSON body ("data.errorRate",
	// "results.0.value").
	JSONPath string   `json:"jsonPath,omitempty"`
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
	// Timeout of one call (default 5s).
	Timeout *Duration `json:"timeout,omitempty"`
}

// PrometheusCheck runs an instant query; the first sample's value must be
// within [Min, Max]. An empty result fails the check.
type PrometheusCheck struct {
	Address string    `json:"address"`
	Query   string    `json:"query"`
	Min     *float64  `json:"min,omitempty"`
	Max     *float64  `json:"max,omitempty"`
	Timeout *Duration `json:"timeout,omitempty"`
}

// StepAnalysis is a canary step that waits for checks to pass.
type StepAnalysis struct {
	// Checks names the checks to wait for (default: all).
	Checks []string `json:"checks,omitempty"`
	// Count is the number of consecutive successful runs of each check
	// (default 1).
	Count int `json:"count,omitempty"`
}

// EffectiveInterval returns the interval with its default.
func (a *Analysis) EffectiveInterval() time.Duration {
	if a == nil || a.Interval == nil {
		return DefaultAnalysisInterval
	}
	return a.Interval.Duration
}

// EffectiveFailureLimit returns the failure limit with its default.
func (a *Analysis) EffectiveFailureLimit() int {
	if a == nil || a.FailureLimit == nil {
		return 0
	}
	return *a.FailureLimit
}

// InBackground reports whether checks guard the whole rollout.
func (a *Analysis) InBackground() bool { return a != nil && (a.Background == nil || *a.Background) }

var checkName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (a *Analysis) validate(path string, e *errs) {
	if a.Interval != nil && a.Interval.Duration < time.Second {
		e.add(join(path, "interval"), "%s is below 1s", a.Interval.Duration)
	}
	if a.FailureLimit != nil && *a.FailureLimit < 0 {
		e.add(join(path, "failureLimit"), "must not be negative")
	}
	if len(a.Checks) == 0 {
		e.add(join(path, "checks"), "is required")
	}
	seen := map[string]bool{}
	probe := map[string]string{"App": "app", "Version": "v1", "StableVersion": "v0"}
	for i, c := range a.Checks {
		p := index(join(path, "checks"), i)
		if !checkName.MatchString(c.Name) {
			e.add(join(p, "name"), "%q is not a check name (lower-case letters, digits, '-')", c.Name)
		} else if seen[c.Name] {
			e.add(join(p, "name"), "%q is used twice", c.Name)
		}
		seen[c.Name] = true
		if (c.HTTP == nil) == (c.Prometheus == nil) {
			e.add(p, "set exactly one of http, prometheus")
			continue
		}
		if h := c.HTTP; h != nil {
			hp := join(p, "http")
			checkURL(join(hp, "url"), h.URL, probe, e)
			switch h.Method {
			case "", "GET", "HEAD", "POST":
			default:
				e.add(join(hp, "method"), "%q is not GET, HEAD or POST", h.Method)
			}
			if h.Status != 0 && (h.Status < 100 || h.Status > 599) {
				e.add(join(hp, "status"), "%d is not an HTTP status", h.Status)
			}
			for k, v := range h.Headers {
				if err := renderCheck(v, probe); err != nil {
					e.add(join(join(hp, "headers"), k), "%v", err)
				}
			}
			if (h.Min != nil || h.Max != nil) && h.JSONPath == "" {
				e.add(join(hp, "jsonPath"), "is required with min or max")
			}
			checkRange(hp, h.Min, h.Max, e)
		}
		if q := c.Prometheus; q != nil {
			qp := join(p, "prometheus")
			checkURL(join(qp, "address"), q.Address, probe, e)
			if q.Query == "" {
				e.add(join(qp, "query"), "is required")
			} else if err := renderCheck(q.Query, probe); err != nil {
				e.add(join(qp, "query"), "%v", err)
			}
			if q.Min == nil && q.Max == nil {
				e.add(qp, "set min or max (the condition the result must meet)")
			}
			checkRange(qp, q.Min, q.Max, e)
		}
	}
}

func checkRange(path string, lo, hi *float64, e *errs) {
	if lo != nil && hi != nil && *lo > *hi {
		e.add(join(path, "min"), "%v is above max %v", *lo, *hi)
	}
}

func checkURL(path, raw string, probe map[string]string, e *errs) {
	if raw == "" {
		e.add(path, "is required")
		return
	}
	s, err := renderCheckString(raw, probe)
	if err != nil {
		e.add(path, "%v", err)
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.add(path, "%q is not an http(s) URL", raw)
	}
}

func renderCheck(s string, data map[string]string) error {
	_, err := renderCheckString(s, data)
	return err
}

func renderCheckString(s string, data map[string]string) (string, error) {
	out, err := RenderMap(s, data)
	if err != nil {
		return "", fmt.Errorf("template: %v", err)
	}
	return out, nil
}
