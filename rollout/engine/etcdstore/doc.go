// Package etcdstore persists graylane's per-app rollout records in etcd,
// one key per app under a prefix (default /graylane/state/), written with
// compare-and-swap on the key's mod revision so two writers can never
// overwrite each other's progress.
//
// Entry point: New(client, prefix). In ha.mode shard its writes are fenced
// (fenced.go: SaveFenced, DeleteFenced compare the app's ownership key);
// NewNudger (nudge.go) carries the observe callback between replicas.
package etcdstore
