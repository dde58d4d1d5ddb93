// Package graylanetest starts the real graylane binary for end-to-end tests:
// it builds bin/graylane and bin/demoapp once per test binary, runs
// `graylane serve` on free loopback ports with a fresh data directory and
// embedded etcd, and offers kill -9 / restart on the same data directory,
// an API client and an etcd client. Load comes from testsupport/loadgen.
//
// Entry points: Start, (*Graylane).Kill, (*Graylane).Restart.
package graylanetest
