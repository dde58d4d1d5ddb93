// Command scale is graylane's scale harness (`make bench-scale`): it runs
// the real graylane binary against a simulated deploy system
// (testsupport/deploysim) with thousands of apps on the webhook backend,
// drives version changes, and measures what issue 19 asks for: time to
// converge, RSS (steady and peak), CPU while idle, API latencies, the
// 2,000-rollout storm, edit → first backend action during the storm, and
// with ha.mode shard the apps per replica, the takeover time after a kill
// and the throughput against one replica.
//
// Entry point: main (flags: go run ./bench/scale -h). It prints one
// "FIGURE name value" line per figure and a Markdown summary at the end,
// the rows of docs/benchmarks.md. Nothing is asserted: it is a
// measurement, kept out of `make test`.
package main
