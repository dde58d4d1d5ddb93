// Package sdktest holds helpers for tests of graylane's gray routing and
// its SDK: an embedded etcd per test, polling with a deadline, and Chain,
// a set of real HTTP services (one per app and version) that use the SDK
// and report which version of each app served a request.
//
// Entry points: Etcd, Eventually, StartChain.
package sdktest
