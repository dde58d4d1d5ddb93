// Package engine runs graylane's control loop: it watches a config centre
// for release specs, and for each app observes the backend and router, asks
// the pure planner (rollout.Plan) what to do, applies the decision and
// persists the app's status with compare-and-swap.
//
// Entry points: New(Config) and (*Engine).Run. One worker handles an app at
// a time (a keyed work queue), so releases of one app are serialised.
// Because every pass re-plans from the persisted status and the observed
// world, graylane can be killed at any moment and resume where it was on
// restart: adapters are idempotent, and a step only advances once its
// effect is observed.
//
// Files: engine.go (the watch, leadership, the workers), queue.go (the
// two-lane keyed queue with idle and failure back-off), pass.go (one
// pass: load, observe, plan, apply, persist), observe.go (what an idle
// app's pass may skip), sharding.go (ha.mode shard: claiming apps,
// fencing, the observe callback's nudges), config.go (the config layer's
// part of a pass), commands.go (operator commands), view.go (what the API
// shows), store.go (records), broker.go (event streams), metrics.go.
//
// Idle apps back off (Config.IdleResync) and events jump the queue; with
// Config.Shard several replicas share the apps (rollout/engine/shard),
// each driving only the apps it holds.
//
// The Store interface persists per-app records; MemoryStore is for unit
// tests and rollout/engine/etcdstore is the real one.
package engine
