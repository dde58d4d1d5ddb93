// Package hooks runs release hooks (spec hooks section): Flagger's
// pre-rollout, confirm-promotion and post-rollout webhooks, as gates of
// graylane's planner (rollout.HookGate).
//
// Entry point: New(Config) *Runner, the engine's HookRunner. Hooks run
// from graylane itself — a command graylane executes (never through a
// shell) or an HTTP request it makes — so they work the same on every
// backend, including those that start nothing (registry, webhook).
//
//   - preRelease hooks run once per bundle (code version and bound config
//     files, environments.BundleDigest), in order, before any instance of
//     it starts; a passed bundle never runs them again, even after a
//     rollback to it.
//   - confirmPromotion hooks run when the release reaches its last step
//     and must all pass (exit 0, HTTP 2xx) before it continues.
//   - postRelease hooks run once per bundle when its release is Healthy;
//     their failure is recorded and shown, and stops nothing.
//
// Every outcome — which hook, passed or not, exit status or HTTP status,
// the first 16 KiB of its output, when — is kept in etcd (Record, one per
// app and bundle, schema-versioned) and shown with the release (GET
// /api/v1/apps/{app}/hooks). A graylane killed while a hook runs starts
// it again on its next pass (hooks should be idempotent: a migration
// tool's own bookkeeping makes it so).
package hooks
