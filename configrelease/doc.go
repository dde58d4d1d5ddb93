// Package configrelease keeps an app's config in step with its code:
// config-in-step. The files of a release's config section are bound to its
// version, written to every config centre the app reads (etcd, Nacos,
// Apollo) where only that version's instances load them, made the stable
// config when the release is promoted, and restored together with the code
// on a rollback.
//
// Entry point: New(Config) returns a *Manager; the engine calls
// Manager.Prepare once per pass (validate, bind the release identity) and
// Manager.Reconcile (write, read back, probe instances, check drift) and
// gives the resulting rollout.ConfigGate to the planner.
//
// Files: manager.go (Manager, Prepare, the pass), layout.go (what each
// placement should hold, pure: planLayout, desired, planGate), write.go
// (write-ahead record, execution with back-off, read-back, recovery),
// drift.go, history.go, view.go, plus bundle.go, locate.go, report.go
// and store.go. The wire types shared with sdk/config live in configwire.
//
// # Release identity
//
// The planner's "version" is a release identity: the code version, or
// "<version>_cfg<8 hex>" when the config changed but the code did not
// (Identity). A version is bound to the config it is first released with;
// any other config for it gets its own identity, so a config-only change
// is rolled out (and rolled back) by the same strategy as code.
//
// # Version-bound copies: one mechanism on every centre
//
// Every instance presents its release identity X to the centre, and the
// centre serves the copy bound to X, else the stable file (Placement,
// GrayLocation):
//
//	etcd    key <stable key>@X
//	nacos   dataId <base>-X<.ext> (shop.yaml -> shop-v2.yaml), same group/namespace
//	apollo  the stable namespace's gray branch with rule clientLabelList [X]
//
// A Go service gets this from sdk/config; a Spring Cloud service from
// configuration alone (docs/config.md): an optional extension dataId
// "<app>-${APP_VERSION}.yaml" for Nacos and apollo.label=${APP_VERSION}.
//
// # Layout and phases
//
// From the persisted rollout status the Manager derives the layout: the
// stable locations hold the stable identity's files; while X is rolled
// out its copies hold X's files; during a rollback the target's files go
// to the stable locations while the version still serving is pinned on
// its own copies. Writes run in three phases — gray writes, stable writes
// and deletes, gray deletes — each starting only when the previous one is
// read back on every target, so no instance ever reads another version's
// config.
//
// # Write-ahead record, retries, read-back
//
// Before the first centre is touched, the intended layout and every
// placement to write are saved in graylane's etcd (State.Txn) and those
// placements are marked unverified. A placement is verified only when the
// centre's own client reads it back with the expected SHA-256 (Nacos:
// bypassing the SDK's read-your-writes cache; Apollo: the config service,
// with the gray label). Failures are retried with exponential back-off
// (0.5 s .. 15 s); the gate stays closed and says why. A graylane that died
// mid-write finds the record on its next pass and re-reads every placement
// it names: it finishes the write, or, when the release moved on, undoes
// it by writing the layout now wanted. Compare-and-swap (expect the
// version just read) is used on every centre that offers it.
//
// # Drift and history
//
// Every Config.DriftInterval the verified placements are read back; a
// change made behind graylane's back is reported (ConfigDrift event with a
// diff, View.Drift) and, with onDrift: repair, rewritten. Every config
// version is kept in the history (Store) with the code version it was
// bound to and what became of it.
package configrelease
