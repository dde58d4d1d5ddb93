package spec

import (
	"fmt"
	"strings"
)

// Traffic router types known to this build's spec.
var trafficTypes = map[string]bool{"": true, "proxy": true, "nginx": true, "gray": true, "none": true}

// CheckVersion validates a code or config version string.
func CheckVersion(v string) error {
	if v == "" {
		return fmt.Errorf("is required")
	}
	if len(v) > 128 {
		return fmt.Errorf("is %d characters, over 128", len(v))
	}
	if !VersionPattern.MatchString(v) {
		for _, r := range v {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", r) {
				return fmt.Errorf("%q contains %q; only A-Z a-z 0-9 . _ + - are allowed", v, r)
			}
		}
		return fmt.Errorf("%q does not match %s", v, VersionPattern)
	}
	return nil
}

// CheckApp validates an app name.
func CheckApp(a string) error {
	if a == "" {
		return fmt.Errorf("is required")
	}
	if !AppPattern.MatchString(a) {
		return fmt.Errorf("%q is not a valid app name (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)", a)
	}
	return nil
}

func (r *Release) setDefaults() {
	if r.Strategy.Type == "" {
		if len(r.Strategy.Steps) > 0 {
			r.Strategy.Type = Canary
		} else {
			r.Strategy.Type = Rolling
		}
	}
}

// Validate applies the defaults that change meaning (the strategy type) and
// checks every field, returning a *ValidationError listing each problem.
func (r *Release) Validate() error {
	r.setDefaults()
	var e errs
	if err := CheckApp(r.App); err != nil {
		e.add("app", "%v", err)
	}
	if err := CheckVersion(r.Version); err != nil {
		e.add("version", "%v", err)
	}
	if r.Replicas != nil && (*r.Replicas < 1 || *r.Replicas > MaxReplicas) {
		e.add("replicas", "%d is outside 1..%d", *r.Replicas, MaxReplicas)
	}
	r.Strategy.validate("strategy", &e)
	r.Backend.validate("backend", &e)
	if r.Backend.Type == BackendDocker && r.Backend.Docker != nil {
		r.Backend.Docker.validateRelease("backend.docker", r.App, r.Version, &e)
	}
	if r.Traffic != nil {
		if !trafficTypes[r.Traffic.Type] {
			e.add("traffic.type", "%q is not a traffic router (proxy, nginx, gray or none)", r.Traffic.Type)
		}
		if r.Traffic.Nginx != nil {
			r.Traffic.Nginx.validate("traffic.nginx", &e)
		}
		r.validateProxy(&e)
		for _, h := range []struct{ p, v string }{{"traffic.stickyHeader", r.Traffic.StickyHeader}, {"traffic.stickyCookie", r.Traffic.StickyCookie}} {
			if strings.ContainsAny(h.v, " \t\r\n:;,=\"") {
				e.add(h.p, "%q is not a valid header or cookie name", h.v)
			}
		}
	}
	if r.Strategy.Type == BlueGreen {
		if why := r.noTrafficSwitch(); why != "" {
			e.add("strategy.type", "bluegreen needs something that switches traffic, and %s: users would reach the new version in proportion to instance counts before any switch; use canary or rolling, or a traffic router", why)
		}
	}
	r.Health.validate("health", &e)
	if r.Config != nil {
		r.Config.validate("config", &e)
	}
	if r.Hooks != nil {
		r.Hooks.validate("hooks", &e)
	}
	if r.Gray != nil {
		r.Gray.validate("gray", &e)
	}
	if r.Rollback != nil {
		r.Rollback.validate("rollback", &e)
	}
	return e.err()
}

// HasRouter reports whether something splits the release's traffic by
// weight (a proxy, nginx, gray rules, a Kubernetes Service); without one
// traffic follows instance counts.
func (r *Release) HasRouter() bool { return r.noTrafficSwitch() == "" }

// noTrafficSwitch says why nothing would switch the release's traffic
// between versions ("" when something does): traffic.type none, or a
// backend that has no router unless traffic.type names one (webhook, ssh),
// or kubernetes without the Service whose selector it switches.
func (r *Release) noTrafficSwitch() string {
	t := ""
	if r.Traffic != nil {
		t = r.Traffic.Type
	}
	switch {
	case t == "none":
		return "traffic.type is none"
	case t != "":
		return ""
	case r.Backend.Type == BackendWebhook:
		return "backend webhook has no traffic router unless traffic.type names one"
	case r.Backend.Type == BackendSSH:
		return "backend ssh has no traffic router unless traffic.type is nginx"
	case r.Backend.Type == BackendKubernetes && r.Backend.Kubernetes != nil && r.Backend.Kubernetes.Service == nil:
		return "backend kubernetes switches traffic with a Service: set backend.kubernetes.service (or traffic.type nginx or gray)"
	}
	return ""
}

func (s *Strategy) validate(path string, e *errs) {
	switch s.Type {
	case Rolling, Canary, BlueGreen:
	default:
		e.add(join(path, "type"), "%q is not a strategy (rolling, canary or bluegreen)", s.Type)
	}
	checkSurge := func(name string, v *IntOrPercent) {
		if v == nil {
			return
		}
		if v.Value < 0 {
			e.add(join(path, name), "%s is negative", v)
		}
		if v.Percent && v.Value > 100 {
			e.add(join(path, name), "%s is over 100%%", v)
		}
	}
	checkSurge("maxSurge", s.MaxSurge)
	checkSurge("maxUnavailable", s.MaxUnavailable)
	if s.MaxSurge != nil && s.MaxUnavailable != nil && s.MaxSurge.Value == 0 && s.MaxUnavailable.Value == 0 {
		e.add(join(path, "maxUnavailable"), "maxSurge and maxUnavailable cannot both be 0: nothing could ever be replaced")
	}
	if len(s.Steps) > 0 && s.Type != Canary {
		e.add(join(path, "steps"), "only a canary has steps (type is %q)", s.Type)
	}
	prev, prevAt := -1, -1
	for i, st := range s.Steps {
		p := index(join(path, "steps"), i)
		n := 0
		if st.SetWeight != nil {
			n++
			w := *st.SetWeight
			switch {
			case w > 100:
				e.add(join(p, "setWeight"), "%d is over 100", w)
			case w < 0:
				e.add(join(p, "setWeight"), "%d is below 0", w)
			case w < prev:
				e.add(join(p, "setWeight"), "%d is below the %d of steps[%d]: weights must not decrease", w, prev, prevAt)
			}
			if w >= prev {
				prev, prevAt = w, i
			}
		}
		if st.Pause != nil {
			n++
			if st.Pause.Duration != nil && st.Pause.Duration.Duration < 0 {
				e.add(join(join(p, "pause"), "duration"), "must not be negative")
			}
		}
		if st.SetCanaryScale != nil {
			n++
			cs := st.SetCanaryScale
			m := 0
			if cs.Replicas != nil {
				m++
				if *cs.Replicas < 0 || *cs.Replicas > MaxReplicas {
					e.add(join(join(p, "setCanaryScale"), "replicas"), "%d is outside 0..%d", *cs.Replicas, MaxReplicas)
				}
			}
			if cs.Weight != nil {
				m++
				if *cs.Weight < 0 || *cs.Weight > 100 {
					e.add(join(join(p, "setCanaryScale"), "weight"), "%d is outside 0..100", *cs.Weight)
				}
			}
			if cs.MatchTrafficWeight {
				m++
			}
			if m != 1 {
				e.add(join(p, "setCanaryScale"), "set exactly one of replicas, weight, matchTrafficWeight")
			}
		}
		if st.Analysis != nil {
			n++
			ap := join(p, "analysis")
			if s.Analysis == nil {
				e.add(ap, "needs strategy.analysis.checks")
			} else {
				known := map[string]bool{}
				for _, c := range s.Analysis.Checks {
					known[c.Name] = true
				}
				for j, name := range st.Analysis.Checks {
					if !known[name] {
						e.add(index(join(ap, "checks"), j), "%q is not a check of strategy.analysis", name)
					}
				}
			}
			if st.Analysis.Count < 0 || st.Analysis.Count > 1000 {
				e.add(join(ap, "count"), "%d is outside 0..1000", st.Analysis.Count)
			}
		}
		if n != 1 {
			e.add(p, "set exactly one of setWeight, pause, setCanaryScale, analysis")
		}
	}
	if s.Analysis != nil {
		if s.Type == Rolling {
			e.add(join(path, "analysis"), "only a canary or a blue-green is analysed (type is %q)", s.Type)
		}
		s.Analysis.validate(join(path, "analysis"), e)
	}
	if s.ProgressDeadline != nil && s.ProgressDeadline.Duration <= 0 {
		e.add(join(path, "progressDeadline"), "must be positive")
	}
	if s.ScaleDownDelay != nil && s.ScaleDownDelay.Duration < 0 {
		e.add(join(path, "scaleDownDelay"), "must not be negative")
	}
	if s.AutoPromotionDelay != nil && s.AutoPromotionDelay.Duration < 0 {
		e.add(join(path, "autoPromotionDelay"), "must not be negative")
	}
	if s.Type != BlueGreen {
		if s.AutoPromotionEnabled != nil {
			e.add(join(path, "autoPromotionEnabled"), "only applies to bluegreen")
		}
		if s.AutoPromotionDelay != nil {
			e.add(join(path, "autoPromotionDelay"), "only applies to bluegreen")
		}
	}
}

func (h *Health) validate(path string, e *errs) {
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		e.add(join(path, "path"), "%q must start with /", h.Path)
	}
	if h.Interval != nil && h.Interval.Duration <= 0 {
		e.add(join(path, "interval"), "must be positive")
	}
	if h.Timeout != nil && h.Timeout.Duration <= 0 {
		e.add(join(path, "timeout"), "must be positive")
	}
}

// identitySeparator joins a code version and a config digest in a release
// identity ("v1_cfg0a1b2c3d", see configrelease): backends that turn a
// version into an image tag or an artifact path use the code version.
const identitySeparator = "_cfg"

// CodeVersion returns the code version of a release identity: "v1" for
// "v1_cfg0a1b2c3d" (a config-only change of v1), the identity itself
// otherwise.
func CodeVersion(identity string) string {
	i := strings.LastIndex(identity, identitySeparator)
	if i <= 0 {
		return identity
	}
	digest := identity[i+len(identitySeparator):]
	if len(digest) != 8 {
		return identity
	}
	for _, c := range digest {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return identity
		}
	}
	return identity[:i]
}
