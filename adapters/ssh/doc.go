// Package ssh is graylane's SSH backend: it deploys an app to a fixed set of
// hosts, each holding its versions side by side and a symlink to the one in
// force:
//
//	{root}/releases/{version}/   one directory per version, never modified
//	{root}/current -> releases/{version}
//	{root}/shared/               per-host files linked into every release
//
// Entry point: New, then Apply (or Deploy, which also returns a per-host
// Report). Observe reads each host's current link and health.
//
// Mapping onto adapters.Backend: an instance is a host; the replicas of a
// version are the hosts whose current link points at it. Hosts are a fixed
// pool, so Apply moves hosts between versions (PlanMoves): a surge the
// engine asks for becomes a replacement, and hosts no version wants are
// stopped (spec stop command, current removed).
//
// One host's switch: upload the release if missing (only files whose
// checksums differ from the release in force travel; the others are copied
// on the host; the release's manifest, .graylane-manifest.json, is written
// last and the directory is renamed into place), run hooks.before in it,
// create a new symlink and rename it over current (never ln -sfn), run the
// restart command, poll the health check, run hooks.after, prune releases
// beyond keepReleases (never the current or previous one). A rollback is the
// same switch to a release directory that exists: no upload, one rename, a
// restart and a health check.
//
// Safety: host keys are checked against known_hosts (ErrHostKeyUnknown,
// ErrHostKeyChanged; never trust on first use); versions and paths are
// validated by the spec and every word sent to the remote shell is
// single-quoted; user commands are argv lists that are exec'd, not shell
// text; each remote command has a timeout; a deploy holds an in-process lock
// per app and a flock on every host's {root}/.graylane.lock (ErrLocked). A
// host that fails its health check stops the rollout after its batch.
//
// Files: backend.go (Backend, Observe, Apply), deploy.go (Deploy and one
// host's switch), scripts.go (every script sent to a host), health.go,
// plan.go (PlanMoves, Batches, Prune), artifact.go (manifests and the tar
// stream), client.go (SSH connections and known_hosts).
//
// Remote hosts need a POSIX sh, readlink, ls, sed, tar, cp, mv -T (GNU
// coreutils or BusyBox) and flock (util-linux).
package ssh
