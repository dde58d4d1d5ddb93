// Package rollout decides how an app's release moves: rolling, canary and
// blue-green strategies, operator commands, progress deadlines and
// rollbacks.
//
// Entry point: Plan(Input) Decision. Plan is pure: it takes the release
// spec, the persisted Status, what the backend and router observe and the
// current time, and returns the next Status, the desired replicas per
// version, the desired traffic split and when to look again. It does no I/O
// and never reads the clock, so every behaviour is table-tested (see
// plan_scenarios_test.go and the decision traces in testdata/).
//
// The engine that observes, calls Plan, applies the decision and persists
// the status with compare-and-swap lives in rollout/engine.
//
// The planner's files follow its parts: plan.go (Plan, targets, the steady
// state, promotion and the final decision), commands.go, canary.go,
// bluegreen.go, rolling.go, rollback.go, deadline.go, analysis.go,
// config.go (the config gate) and split.go (instance and weight maths).
//
// What follows is the behaviour Plan implements; the scenario tests mirror
// it.
//
// # Targets
//
// Let D be spec.version, S the stable version and R spec.replicas.
//
//   - first release (no stable yet): D becomes stable at once and is scaled
//     to R; no strategy runs.
//   - D == S: nothing to roll out; a rollout in progress is cancelled.
//   - D is a new version: a rollout of D starts with the spec's strategy,
//     superseding any rollout in progress (whose version is taken out of
//     traffic, then scaled to zero). A paused, degraded or rolled-back
//     release is superseded the same way.
//   - D is the previous version and the previous version is still within
//     its scaleDownDelay: a fast rollout: traffic moves back as soon as the
//     previous version is ready (it usually already is); no steps run.
//   - D was written by a rollback to an earlier revision
//     (Input.RollbackIntent) and spec.rollback.mode is fast (the default):
//     the same rollout without steps or analysis, whether D still runs or
//     not — it is scaled to R first if it does not, then takes all traffic
//     at once. With mode steps D is rolled out like any new version.
//   - D was rejected (aborted or rolled back): it is left alone until D
//     changes or resume retries it.
//
// # Canary
//
// At step i the canary weight w is the last setWeight in steps[0..i] and
// the canary runs ceil(R*w/100) instances (at least 1 when w > 0), unless a
// setCanaryScale in steps[0..i] says otherwise. With a router the stable
// version keeps R instances, so an abort is instant; without one traffic
// follows instance counts and the stable version shrinks to R - canary.
// The weight moves to w only once the canary's instances are ready; the
// step is complete once the router confirms it. Example, R = 4, steps
// [setWeight 25, pause 5s, setWeight 50, pause {}, setWeight 100]:
//
//	step 0  canary 1 instance; when ready: weights v2 25 / v1 75
//	step 1  wait 5s after step 0 completed
//	step 2  canary 2 instances; when ready: v2 50 / v1 50
//	step 3  Paused until promote (or resume)
//	step 4  canary 4 instances; v2 100
//	done    promoted: v2 stable; v1 keeps 4 instances at weight 0 for
//	        scaleDownDelay, then is scaled to zero
//
// # Rolling
//
// With s = maxSurge (rounded up, default 25%) and u = maxUnavailable
// (rounded down, default 25%) of R, as Kubernetes does: the new version
// grows to min(R, R+s-old) where old counts every instance of other
// versions; old instances are removed while ready instances stay at or
// above R-u (unready old instances first). With R=4, s=1, u=0: 4 old +
// 1 new; when the new one is ready, 3 old; then 3 old + 2 new; ... 0 old +
// 4 new. Traffic follows ready instances.
//
// # Blue-green
//
// The new version is brought up at R beside the stable one and is reachable
// only as a preview (header). Once all R are ready it is switched to 100% at
// once (after autoPromotionDelay), or, with autoPromotionEnabled false,
// when promoted. The old version then waits scaleDownDelay as for a canary.
//
// # Commands
//
//   - promote: skip the current canary step (continue a pause), or switch a
//     blue-green now.
//   - promote-full: skip every remaining step: scale the new version to R
//     and send it all traffic.
//   - pause / resume: hold the release where it is / continue it. resume
//     also continues a pause step and retries a rejected version.
//   - abort: send all traffic to the stable version and scale the new one
//     to zero; phase Degraded.
//   - rollback: during a rollout, as abort but phase RolledBack; after a
//     promotion, go back to the previous version without running steps
//     (only traffic moves while the previous version is within
//     scaleDownDelay).
//
// # Config gate
//
// With Input.Config (the release has bound config, config.go), instances
// of a version are started only once its config is placed, count as ready
// only once they report having loaded it, and the release is Healthy only
// once every target's stable location holds the stable version's config.
//
// # Release hooks and freezes
//
// With Input.Hooks (the release has hooks, hooks.go), no instance of the
// desired release identity starts before its pre-release hook passed
// (the decision's StartHooks asks the engine to run it), and the release
// does not enter its last step before its confirm-promotion hook passed:
// canary, the last step when it sets weight 100, else the final
// promotion; blue-green, the switch; rolling, which has no steps, its
// start. promote and promote-full do not bypass it. A failed hook holds
// the release Paused where it is, with the hook's message; resume
// retries it (Decision.RetryHooks). Example: canary v2 with a
// confirm-promotion hook, steps [25, pause 5s, 50, pause {}, 100]:
// promote at step 3 moves to step 4 but the weights stay 50/50 until the
// hook passed; then v2 takes 100% and is promoted.
//
// With Input.Frozen (the environment is frozen) no release starts: a new
// desired version (or a first release) waits, Paused with the freeze's
// reason; a rollout already in progress, a rollback and a return to the
// stable version carry on.
//
// # Progress deadline
//
// When nothing progresses (no step completes, no instance of the version
// being rolled out changes state) for strategy.progressDeadline, outside
// pauses, the release is Degraded; with autoRollback it is rolled back.
// A backend with a deadline of its own can say so first: when
// Observed.Stalled names the version being rolled out (a Kubernetes
// Deployment reporting ProgressDeadlineExceeded, whose
// progressDeadlineSeconds graylane sets from the same spec field), the
// deadline counts as passed at once. Example: canary v2 at step 1, its
// Deployment reports ProgressDeadlineExceeded 10 s before graylane's own
// clock would: the decision is RolledBack (autoRollback) in that plan,
// with a ProgressDeadlineExceeded event naming the backend's reason.
package rollout
