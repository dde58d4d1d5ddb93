package adapters

import (
	"context"
	"errors"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
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

// MetaHealthPending, set in a not-ready instance's Meta by a backend, says
// that its readiness is unknown rather than false: the backend adopted the
// instance (it was running before this graylane process started, and may
// have been serving) and has not judged its health yet. It stays pending
// until one health check passes (ready) or as many fail in a row as would
// take a ready instance out (unready). The value says why, for people.
//
// The engine decides nothing for an app while any of its instances is
// pending (weights, steps and replicas stay as persisted, for a bounded
// time), so a restarted graylane moves no traffic away from a version just
// because it has not looked at its instances yet.
const MetaHealthPending = "healthPending"

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
	// the release spec in force (command templates, images, hosts...);
	// step says why (the canary step and the planner's reason, NoStep when
	// none) and must not change what is done: two calls that differ only
	// in step are the same desired state.
	Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, step Step) error
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
	Weights(ctx context.Context, app string) (traffic.Split, error)
	// SetWeights puts a new split in force.
	SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error
}

// Notifier is optional: a Backend or TrafficRouter that can tell when an
// app's observed state changed (an instance became ready or died), so the
// engine reconciles at once instead of at its next poll.
type Notifier interface {
	// Notify registers fn, called with the app's name after a change. fn
	// must not block.
	Notify(fn func(app string))
}

// ChangeNotifier is optional: a Backend whose notifications (Notifier)
// cover every change of what Observe reports — an instance dying or
// turning unready as well as becoming ready, whoever caused it — and not
// only the moves the backend makes itself. The engine then asks nothing
// of it on an idle app's timed passes (no Observe, no unchanged Apply):
// such an app costs no backend call per resync. The ssh backend, which
// notifies only after its own moves, is not one.
type ChangeNotifier interface {
	Notifier
	// NotifiesEveryChange returns true.
	NotifiesEveryChange() bool
}

// NotifiesEveryChange reports whether a is a ChangeNotifier.
func NotifiesEveryChange(a any) bool {
	c, ok := a.(ChangeNotifier)
	return ok && c.NotifiesEveryChange()
}

// Fence says which graylane replica drives an app, with its fencing
// token (ha.mode shard): the token only grows each time the app changes
// hands, so the system an adapter drives can refuse a request carrying a
// lower token than one it already saw for the app — a replica that lost
// the app (paused, cut off) and did not notice yet.
type Fence struct {
	// Holder names the replica.
	Holder string
	// Token is the fencing token (> 0).
	Token int64
}

// FencedBackend is optional: a Backend whose calls can carry a Fence to
// the system it drives (the webhook backend sends it as headers).
type FencedBackend interface {
	// WithFence returns the same backend with every call carrying f.
	WithFence(f Fence) Backend
}

// Unloader is optional: a Backend or TrafficRouter that keeps per-app
// memory (a remembered spec, what it last delivered) drops it when
// another graylane replica takes the app over. Unlike Forgetter it
// touches nothing outside graylane.
type Unloader interface {
	Unload(app string)
}

// Forgetter is optional: a Backend or TrafficRouter that holds per-app
// resources (listeners, files) releases them when an app is deleted,
// after Apply has scaled everything to zero.
type Forgetter interface {
	Forget(ctx context.Context, app string) error
}

// Step says why the engine calls Backend.Apply: the canary step in force
// and a short reason. It is business data, passed as an argument (never
// through ctx). Backends that report to an external system (webhook) pass
// it on; the others ignore it.
type Step struct {
	// Index is the canary step (0-based); -1 (NoStep) when no step
	// applies.
	Index int
	// Reason is the planner's status message, e.g. "canary v2 step 2/5:
	// weight 25%".
	Reason string
}

// NoStep is the Step of an Apply that no canary step explains (a rolling
// update, a blue-green, a resync, a teardown, a test).
var NoStep = Step{Index: -1}
