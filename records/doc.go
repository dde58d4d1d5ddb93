// Package records keeps graylane's release records: every release of an
// app as a numbered revision in etcd, who caused it, and the summaries
// release statistics are computed from.
//
// Entry points:
//
//   - Track(Log, Pass) (Log, Changes): pure. The engine calls it once per
//     pass with the status before and after the planner's decision; it
//     opens a revision when a rollout starts, follows its steps and
//     analysis verdicts, closes it with the outcome the planner recorded
//     (promoted, aborted, rolled-back, superseded, failed) and marks a
//     failed one restored once traffic is back on the stable version. The
//     Log travels inside the app's state record (compare-and-swap) and the
//     revisions it changes are written before that record, so a graylane
//     killed at any point rewrites the same revision on its next pass.
//   - NewStore(StoreConfig) *Store: revisions (last Keep per app; a
//     deleted app's for DeletedRetention), release summaries (a
//     time-ordered index for statistics), intents (leased).
//   - NewKeeper(KeeperConfig) *Keeper: what the engine holds
//     (engine.Recorder): it answers who wrote each document (an Intent the
//     API saved before writing, or a centre edit).
//   - Compute(summaries, now, window) Stats: pure release statistics.
//
// Every record carries a schema version (SchemaVersion); a reader refuses
// a newer one with ErrNewerSchema instead of misreading it.
package records
