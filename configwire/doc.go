// Package configwire is the config-in-step protocol shared by graylane
// (configrelease) and the instances that load config (sdk/config): how a
// config file's checksum is computed, what an instance reports it loaded,
// and where the copy of a file bound to a release identity lives on each
// centre.
//
// It is a leaf of the server: it imports only spec (field names and the
// properties format) and configsync (locations), so a service embedding
// sdk/config does not pull in graylane's engine, planner or adapters.
//
// Entry points: FileDigest and BundleDigest (checksums), Report and
// SourceReport (GET <config.reportPath>), StableLocation and GrayLocation
// (where to read).
package configwire
