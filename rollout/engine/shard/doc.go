// Package shard shares apps among graylane replicas on etcd's own
// primitives (ha.mode shard): leases, watches and transactions, no
// consensus of its own.
//
// Entry point: New(Config) returns a *Shard, the engine's engine.Shard.
//
//   - Membership: each replica grants a lease (ha.ttl) and registers
//     <prefix>members/<id> bound to it; every replica watches the members.
//     A replica that dies, or is cut off from etcd, or paused, loses its
//     lease after the TTL, and with it every key bound to it.
//   - Assignment: an app belongs to the live member with the highest
//     rendezvous (highest-random-weight) score for it (Owner), so a
//     membership change moves about 1/N of the apps and nothing else.
//   - Ownership: before driving an app a replica creates
//     <prefix>owners/<app> bound to its lease, in a transaction that
//     succeeds only if the key is absent. The key's create revision is the
//     fencing token: etcd revisions only grow, so each new owner's token is
//     higher than every earlier one. A replica gives an app up by deleting
//     the key (only if it is still its own); a dead replica's keys vanish
//     with its lease, and the replicas watching the owners take the apps
//     over at once.
//   - Fencing: the engine writes an app's state only in a transaction that
//     also compares the ownership key's create revision with its token
//     (etcdstore.SaveFenced), checks Check — the lease deadline, measured
//     from when the last keep-alive was sent — before every backend call,
//     and sends the token with backend calls that carry one (the webhook
//     backend's X-Graylane-Fencing-Token).
//
// A term ends when the lease is lost (a keep-alive answered "not found",
// or none succeeded before the deadline); the engine then drops every app
// and starts a new term with a new lease.
package shard
