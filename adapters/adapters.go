package adapters

import (
	"context"
	"errors"
	"sort"

	"github.com/graylane/graylane/spec"
)

// ErrUnsupported is returned (wrapped) when an adapter cannot do what was
// asked, for example a router asked for a header route it cannot express.
// The engine reports it on the app and does not retry.
var ErrUnsupported = errors.New("not supported by this adapter")

// Instance is one running instance of an app.
type Instance struct {
	// ID is stable for the life of the instance, e.g. "demo-v2-0".
	ID string `json:"id"`
	// Version is the code version the instance runs.
	Version string `json:"version"`
	// Addr is where it serves (host:port), if it has one.
	Addr string `json:"addr,omitempty"`
	// Ready is true once it passed its health check and may take traffic.
	Ready bool `json:"ready"`
	// Message explains a not-ready instance ("starting", "health check
	// failed: 503", "exited: status 1").
	Message string `json:"message,omitempty"`
	// Meta carries adapter-specific facts (host, pod, pid, config checksum).
	Meta map[string]string `json:"meta,omitempty"`
}

// MetaStalled, set in an instance's Meta by a backend, says that the
// backend itself has given up on the instance's version making progress
// (a Kubernetes Deployment's ProgressDeadlineExceeded), with the reason.
// The planner then treats the version's progress deadline as exceeded at
// once instead of waiting for its own clock.
const MetaStalled = "stalled"

// Replicas is the desired number of instances per version. A version absent
// from the map is wanted at zero.
type Replicas map[string]int

// Backend runs an app's instances.
//
// Contract (checked by adapters/adaptertest):
//   - Apply is idempotent and level-triggered: calling it again with the same
//     arguments changes nothing; it records the desired state and starts the
//     work, and may return before instances are ready (Observe tells).
//   - Apply never disturbs a version's instances beyond what the change of
//     that version's count requires; it starts missing instances and stops
//     surplus ones (taking them out of traffic and draining them first).
//   - Observe has no side effects and reports every instance the backend
//     knows for the app, including ones started by an earlier graylane
//     process that it adopted.
//   - Both honour ctx cancellation and return ctx's error.
type Backend interface {
	// Observe returns the app's instances.
	Observe(ctx context.Context, app string) ([]Instance, error)
	// Apply makes the desired replicas per version true, eventually. rel is
	// the release spec in force (command templates, images, hosts...).
	Apply(ctx context.Context, rel *spec.Release, want Replicas) error
}

// VersionWeight is one version's share of traffic, in percent.
type VersionWeight struct {
	Version string `json:"version"`
	Weight  int    `json:"weight"`
}

// Split is how an app's traffic is divided between versions.
type Split struct {
	// Weights sum to 100 (or are empty: no traffic routed yet). Order
	// matters for stickiness: the first entry is the newest version, and a
	// sticky user's bucket b (0..99) goes to the first entry whose
	// cumulative weight exceeds b, so users who reached a canary at 10%
	// stay on it at 20%.
	Weights []VersionWeight `json:"weights"`
	// Preview, if set, is a version requests can reach by header
	// (X-Graylane-Version) whatever the weights: a blue-green preview or a
	// canary under test.
	Preview string `json:"preview,omitempty"`
}

// Map returns the weights keyed by version.
func (s Split) Map() map[string]int {
	m := make(map[string]int, len(s.Weights))
	for _, w := range s.Weights {
		m[w.Version] += w.Weight
	}
	return m
}

// Total is the sum of the weights.
func (s Split) Total() int {
	t := 0
	for _, w := range s.Weights {
		t += w.Weight
	}
	return t
}

// Equal reports whether two splits route identically.
func (s Split) Equal(o Split) bool {
	if s.Preview != o.Preview {
		return false
	}
	a, b := s.nonZero(), o.nonZero()
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (s Split) nonZero() []VersionWeight {
	var out []VersionWeight
	for _, w := range s.Weights {
		if w.Weight != 0 {
			out = append(out, w)
		}
	}
	return out
}

// Versions returns the versions with a non-zero weight, sorted.
func (s Split) Versions() []string {
	var v []string
	for _, w := range s.nonZero() {
		v = append(v, w.Version)
	}
	sort.Strings(v)
	return v
}

// TrafficRouter splits an app's traffic between versions.
//
// Contract (checked by adapters/adaptertest):
//   - SetWeights is idempotent; it returns only once the new split is in
//     force (a router that can verify, verifies). A split whose weights do
//     not sum to 100 is rejected with an error and changes nothing.
//   - Weights has no side effects; before any SetWeights it returns an
//     empty Split.
//   - A version with weight > 0 but no ready instance must not fail
//     requests: the router sends them to the other versions.
type TrafficRouter interface {
	// Weights returns the split in force.
	Weights(ctx context.Context, app string) (Split, error)
	// SetWeights puts a new split in force.
	SetWeights(ctx context.Context, rel *spec.Release, s Split) error
}

// Notifier is optional: a Backend or TrafficRouter that can tell when an
// app's observed state changed (an instance became ready or died), so the
// engine reconciles at once instead of at its next poll.
type Notifier interface {
	// Notify registers fn, called with the app's name after a change. fn
	// must not block.
	Notify(fn func(app string))
}

// Forgetter is optional: a Backend or TrafficRouter that holds per-app
// resources (listeners, files) releases them when an app is deleted,
// after Apply has scaled everything to zero.
type Forgetter interface {
	Forget(ctx context.Context, app string) error
}

// ValidateSplit checks that a split's weights are each 0..100 and sum to 100
// (or that it is empty).
func ValidateSplit(s Split) error {
	if len(s.Weights) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, w := range s.Weights {
		if w.Weight < 0 || w.Weight > 100 {
			return errors.New("weight of " + w.Version + " is outside 0..100")
		}
		if seen[w.Version] {
			return errors.New("version " + w.Version + " appears twice in the split")
		}
		seen[w.Version] = true
	}
	if s.Total() != 100 {
		return errors.New("weights do not sum to 100")
	}
	return nil
}

// Step describes why the engine calls an adapter: the rollout step in
// force and a short reason. Adapters that report to an external system
// (webhooks) pass it on; others may ignore it.
type Step struct {
	// Index is the canary step (0-based); -1 when no step applies.
	Index int
	// Reason is the planner's status message, e.g. "canary v2 step 2/5:
	// weight 25%".
	Reason string
}

type stepKey struct{}

// WithStep returns ctx carrying step.
func WithStep(ctx context.Context, step Step) context.Context {
	return context.WithValue(ctx, stepKey{}, step)
}

// StepFrom returns the step ctx carries, if any.
func StepFrom(ctx context.Context) (Step, bool) {
	s, ok := ctx.Value(stepKey{}).(Step)
	return s, ok
}
