// Package traffic holds the plain values graylane passes between the
// planner, the adapters, the gray-routing model and the SDK: how many
// instances each version should run (Replicas) and how requests are divided
// between versions (Split).
//
// It is a leaf package: it imports nothing from graylane, so the pure
// planner (rollout), the gray model (gray) and the SDK can use these
// values without depending on the adapter contract (adapters).
//
// Entry points: Split, VersionWeight, Replicas, ValidateSplit, and the
// split maths New and FromCounts.
package traffic
