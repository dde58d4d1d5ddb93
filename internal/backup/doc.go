// Package backup copies graylane's own state out of etcd and back: release
// specs (when etcd is the centre), rollout state records, analysis journals,
// config-in-step history and write intents, gray documents — every key
// under the prefixes graylane is configured with — as one JSON archive
// taken at a single etcd revision.
//
// Keys bound to a lease (leader election, locks, instance registrations)
// are skipped: they belong to live processes and are re-created by them.
// A restore writes into an etcd that holds none of the archive's prefixes
// (unless told to overwrite), state before specs, so that a graylane
// started on the restored etcd finds each app's rollout state before its
// spec and resumes the release where the backup left it.
//
// Entry points: Take, Read, Restore; graylane's `backup` and `restore`
// commands (cmd/graylane/backup.go) wire them to the configured etcd.
package backup
