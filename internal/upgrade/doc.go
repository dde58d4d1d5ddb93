// Package upgrade keeps graylane's records in etcd readable by every
// graylane that runs, while a cluster is upgraded one member at a time, and
// migrates them once every member runs the new release. It is built on
// etcd primitives only: leases, a mutex, watches and transactions.
//
// Keys, under Config.Prefix (default /graylane/upgrade/):
//
//	members/<lease>   one per running graylane, bound to its lease: its id,
//	                  its release and, per record kind, the newest schema
//	                  version it reads (Member)
//	storage           per kind, the version records are written at, and the
//	                  version every record has been migrated to (Storage)
//	lock/             the mutex of the member that raises and migrates
//
// Graylanes released before records carried versions advertise nothing;
// they are found by the keys they hold under Config.Presence (the leader
// election's candidates, whose value is their id): a candidate whose id no
// member record carries is an older graylane, which reads version 0 of
// every kind that existed then.
//
// How a version change rolls out:
//
//  1. A newer graylane writes each kind at the storage version (Put), which
//     stays the older one while any live member reads only that: its
//     records look exactly like an older graylane's (schema.Kind.Encode
//     applies the Down steps).
//  2. When every live member reads the newer version (Decide, a pure
//     function), one member takes the mutex and raises the storage version
//     in a transaction that also checks that no member joined since it
//     looked. From then on every write is at the new version: writes carry
//     a comparison on the storage key's revision, so a writer with a stale
//     view fails, reloads and writes the new version.
//  3. The same member rewrites every record below the new version with
//     compare-and-swap on the record's revision (Collection), then records
//     the kind as migrated. A member killed mid-way leaves records at either
//     version, both readable; the next member to hold the mutex finishes.
//
// A graylane that finds a storage version newer than it reads refuses to
// start (Start returns an error wrapping schema.ErrNewer) instead of
// misreading records.
//
// Entry points: New, (*Gate).Start, (*Gate).Run, (*Gate).Put, Decide,
// Inspect.
package upgrade
