package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"time"
)

// Strategy types.
const (
	Rolling   = "rolling"
	Canary    = "canary"
	BlueGreen = "bluegreen"
)

// Defaults applied by Parse when a field is absent.
const (
	DefaultReplicas         = 1
	DefaultProgressDeadline = 10 * time.Minute
	DefaultScaleDownDelay   = 30 * time.Second
	DefaultHealthPath       = "/healthz"
	DefaultHealthInterval   = time.Second
	DefaultHealthTimeout    = time.Second
	MaxReplicas             = 1000
)

var (
	// VersionPattern is what a code or config version may look like: no
	// spaces, quotes or shell metacharacters, so a version can never reach a
	// shell, a path or a URL as anything but itself.
	VersionPattern = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,128}$`)
	// AppPattern is what an app name may look like: a DNS label, because it
	// becomes an etcd key, a Nacos dataId, a Kubernetes object name and a
	// directory name.
	AppPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// Release is one app's desired release: the spec a config centre holds.
//
// Sections that later capabilities add (config, gray, other backends) each
// live in their own type so the rest of the document keeps its shape.
type Release struct {
	// App names the app; it must match the key the spec is stored under.
	App string `json:"app"`
	// Version is the desired code version: the one field a console edit changes.
	Version string `json:"version"`
	// Replicas is the number of instances of the stable version (default 1).
	Replicas *int `json:"replicas,omitempty"`
	// Strategy says how a new version replaces the running one.
	Strategy Strategy `json:"strategy"`
	// Backend says where instances run.
	Backend Backend `json:"backend"`
	// Traffic says how requests are split between versions; optional.
	Traffic *Traffic `json:"traffic,omitempty"`
	// Health says how an instance is judged ready.
	Health Health `json:"health"`
	// Config is the configuration bound to this code version; optional.
	Config *Config `json:"config,omitempty"`
	// Gray holds the gray rules services follow; optional.
	Gray *Gray `json:"gray,omitempty"`
	// Hooks are the release hooks (hooks.go); optional.
	Hooks *Hooks `json:"hooks,omitempty"`
	// Rollback says how a rollback to an earlier revision runs; optional
	// (default: fast, without steps).
	Rollback *RollbackPolicy `json:"rollback,omitempty"`
}

// Strategy is the rollout strategy.
type Strategy struct {
	// Type is rolling, canary or bluegreen (default rolling, or canary when
	// steps are given).
	Type string `json:"type,omitempty"`
	// MaxSurge is how many instances above replicas may exist during a
	// rolling update (count or percentage, rounded up; default 25%).
	MaxSurge *IntOrPercent `json:"maxSurge,omitempty"`
	// MaxUnavailable is how many of replicas may be unready during a rolling
	// update (count or percentage, rounded down; default 25%).
	MaxUnavailable *IntOrPercent `json:"maxUnavailable,omitempty"`
	// Steps are the canary steps, in Argo Rollouts' vocabulary.
	Steps []Step `json:"steps,omitempty"`
	// ProgressDeadline: no progress for this long marks the release
	// Degraded (default 10m).
	ProgressDeadline *Duration `json:"progressDeadline,omitempty"`
	// AutoRollback rolls back (instead of only marking Degraded) when the
	// progress deadline passes.
	AutoRollback bool `json:"autoRollback,omitempty"`
	// ScaleDownDelay keeps the previous version running this long after
	// promotion so a rollback only has to move traffic (default 30s).
	ScaleDownDelay *Duration `json:"scaleDownDelay,omitempty"`
	// AutoPromotionEnabled (bluegreen): switch traffic as soon as the new
	// version is ready (default true). When false, wait for promote.
	AutoPromotionEnabled *bool `json:"autoPromotionEnabled,omitempty"`
	// AutoPromotionDelay (bluegreen): keep the preview this long before the
	// automatic switch.
	AutoPromotionDelay *Duration `json:"autoPromotionDelay,omitempty"`
	// Analysis holds the checks that judge the new version (canary and
	// blue-green).
	Analysis *Analysis `json:"analysis,omitempty"`
}

// Step is one canary step. Exactly one field is set.
type Step struct {
	// SetWeight sends this percentage of traffic to the canary, after scaling
	// the canary to ceil(replicas*weight/100) instances.
	SetWeight *int `json:"setWeight,omitempty"`
	// Pause waits for a duration, or for promote when no duration is given.
	Pause *Pause `json:"pause,omitempty"`
	// SetCanaryScale sets the canary's instance count independently of its
	// traffic weight.
	SetCanaryScale *CanaryScale `json:"setCanaryScale,omitempty"`
	// Analysis waits until checks of strategy.analysis pass.
	Analysis *StepAnalysis `json:"analysis,omitempty"`
}

// Pause is a canary pause step.
type Pause struct {
	// Duration to wait; nil waits until promote (or resume).
	Duration *Duration `json:"duration,omitempty"`
}

// CanaryScale overrides the number of canary instances. Exactly one field is set.
type CanaryScale struct {
	Replicas           *int `json:"replicas,omitempty"`
	Weight             *int `json:"weight,omitempty"`
	MatchTrafficWeight bool `json:"matchTrafficWeight,omitempty"`
}

// Traffic configures the traffic router.
type Traffic struct {
	// Type is the router: "proxy" (graylane's built-in proxy, the default for
	// the process backend, usable with any backend whose instances have
	// addresses) or another router's name.
	Type string `json:"type,omitempty"`
	// StickyHeader names a request header whose value keeps a user on one
	// version for the whole release (default X-Gray-User).
	StickyHeader string `json:"stickyHeader,omitempty"`
	// StickyCookie names a cookie used the same way (default gray_user).
	StickyCookie string `json:"stickyCookie,omitempty"`
	// Nginx configures the nginx router (type nginx).
	Nginx *NginxTraffic `json:"nginx,omitempty"`
	// Proxy configures graylane's built-in proxy (type proxy).
	Proxy *ProxyTraffic `json:"proxy,omitempty"`
	// Trust names the callers allowed to steer versions at the edge
	// (proxy and nginx); nobody by default.
	Trust *TrafficTrust `json:"trust,omitempty"`
}

// Health says how an instance is judged ready.
type Health struct {
	// Path is probed with HTTP GET; 2xx is healthy (default /healthz).
	Path string `json:"path,omitempty"`
	// Interval between probes (default 1s).
	Interval *Duration `json:"interval,omitempty"`
	// Timeout of one probe (default 1s).
	Timeout *Duration `json:"timeout,omitempty"`
}

// ReplicaCount returns the desired replicas, with the default applied.
func (r *Release) ReplicaCount() int {
	if r.Replicas == nil {
		return DefaultReplicas
	}
	return *r.Replicas
}

// Hash is a stable digest of the spec's content, used to notice changes.
func (r *Release) Hash() string {
	b, _ := json.Marshal(r)
	return HashJSON(b)
}

// HashJSON is Hash of the release whose json.Marshal encoding is b (a
// release's JSON as stored), without decoding it.
func HashJSON(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Clone returns a deep copy.
func (r *Release) Clone() *Release {
	if r == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic("spec: clone: " + err.Error())
	}
	var out Release
	if err := json.Unmarshal(b, &out); err != nil {
		panic("spec: clone: " + err.Error())
	}
	return &out
}

// Weights returns the traffic weights of the canary steps in order.
func (s *Strategy) Weights() []int {
	var w []int
	for _, st := range s.Steps {
		if st.SetWeight != nil {
			w = append(w, *st.SetWeight)
		}
	}
	return w
}

// EffectiveScaleDownDelay returns the scale-down delay with its default.
func (s *Strategy) EffectiveScaleDownDelay() time.Duration {
	if s.ScaleDownDelay == nil {
		return DefaultScaleDownDelay
	}
	return s.ScaleDownDelay.Duration
}

// EffectiveProgressDeadline returns the progress deadline with its default.
func (s *Strategy) EffectiveProgressDeadline() time.Duration {
	if s.ProgressDeadline == nil {
		return DefaultProgressDeadline
	}
	return s.ProgressDeadline.Duration
}

// AutoPromote reports whether a blue-green release switches by itself.
func (s *Strategy) AutoPromote() bool {
	return s.AutoPromotionEnabled == nil || *s.AutoPromotionEnabled
}
