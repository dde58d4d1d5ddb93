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
package rollout
