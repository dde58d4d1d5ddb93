// Package memory is an in-memory config centre: a configsync.Source and
// configsync.Writer with the same semantics as the etcd one (a global
// revision, the mod revision as Version, compare-and-swap, resumable
// watches, Reset after compaction, de-duplicated events), for unit tests of
// logic that consumes a Source, such as the release engine.
//
// Entry point: New. Beyond the interfaces, Set and Remove write as a
// console would (they work even while the source is made unavailable),
// SetAvailable simulates losing the centre, and Compact drops history so
// watchers resuming from an old revision get a Reset. It passes the
// configsync/sourcetest conformance suite.
package memory
