// Package analysis runs the checks of a release's strategy.analysis
// (HTTP/JSON endpoints and Prometheus queries) against the version being
// rolled out, and keeps their recent results for the planner, which decides
// what they mean (rollout.Plan: abort on failures, complete analysis steps
// on successes).
//
// Entry point: New(Config); the engine calls Ensure while a rollout is in
// progress, Stop when it ends, and Results before each plan. Config.Journal
// (etcdstore.Journal in graylane) keeps the results across restarts and
// leader changes, so a crash never resets a failure streak or an analysis
// step's count of successes.
package analysis
