// Package sdktest holds helpers for tests of graylane's gray routing and
// its SDK: Chain, a set of real HTTP services (one per app and version)
// that use the SDK and report which version of each app served a request.
// Embedded etcd comes from testsupport/etcdtest and polling from
// testenv.Eventually.
//
// Entry point: StartChain.
package sdktest
