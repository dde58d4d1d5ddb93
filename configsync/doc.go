// Package configsync connects graylane to the config centres that hold
// desired releases: etcd, Nacos and Apollo. Each centre has one sub-package
// implementing Source (read and watch release documents) and, where the
// centre can be written, Writer (publish a document, with compare-and-swap
// where the centre offers it).
//
// Entry points: the Source and Writer interfaces; configsync/etcd,
// configsync/nacos and configsync/apollo implement them; configsync/memory is
// an in-memory Source for unit tests of pure logic; configsync/sourcetest is
// the conformance suite every Source passes against its real server.
//
// A Source deals in raw documents: parsing and validating a release is the
// consumer's job (package spec), so a bad document never hides a good one.
package configsync
