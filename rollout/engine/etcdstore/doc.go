// Package etcdstore persists graylane's per-app rollout records in etcd,
// one key per app under a prefix (default /graylane/state/), written with
// compare-and-swap on the key's mod revision so two writers can never
// overwrite each other's progress, and the analysis journal (default
// /graylane/analysis/). Records carry a schema version
// (engine.RecordKind, analysis.JournalKind): they are written at the
// version the upgrade Gate allows and read back migrated to the current
// one; a record of a newer graylane is refused, never misread.
//
// Entry points: Open(Config), OpenJournal(Config); New(client, prefix) and
// NewJournal without a Gate. In ha.mode shard its writes are fenced
// (fenced.go: SaveFenced, DeleteFenced compare the app's ownership key);
// NewNudger (nudge.go) carries the observe callback between replicas.
package etcdstore
