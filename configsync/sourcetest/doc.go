// Package sourcetest is the conformance suite every configsync.Source
// passes against its real server (etcd, Nacos/Polaris, Apollo) and against
// configsync/memory.
//
// Entry points:
//   - Run(t, newHarness): runs every case as a sub-test, each with a fresh
//     Harness from newHarness and fresh app names. A Harness says how to
//     publish and remove documents through the centre's own client (as a
//     console would), and optionally how to restart the server or cut the
//     client off it; cases whose hook is nil are skipped.
//   - Collector: consumes a Watch channel in the background, folds it into
//     a configsync.State and records every contract violation it sees
//     (duplicate deliveries, an older state after a newer one, revisions
//     going backwards); tests wait on it with deadlines instead of sleeps.
//   - Proxy: a TCP proxy that can cut a client off its server and restore
//     it, for a Harness.Cut.
package sourcetest
