// Package etcd is graylane's etcd config centre: a configsync.Source,
// configsync.Writer and configsync.HealthChecker over an etcd v3 client.
//
// Layout: one key per app under a prefix (default /graylane/apps/), holding
// the app's release document untouched: /graylane/apps/demo is app "demo".
// Keys nested deeper under the prefix, or whose last element is not a valid
// app name, are ignored. Entry.Version is the key's mod revision in decimal
// and Entry.Revision the etcd store revision of the change, so a Version
// read from Get or a watch can be handed back to Put for compare-and-swap.
//
// Entry point: New(Config). The caller owns the client
// (internal/etcdserver.NewClient builds one suited to long-lived watches).
//
// Watch follows etcd's clientv3 idiom: it lists the prefix at a revision and
// watches from the next one, resumes from a revision, re-reads everything
// and sends a Reset when its revision has been compacted, and while etcd
// cannot be reached reports it (WatchResponse.Err wrapping
// configsync.ErrUnavailable) and keeps retrying with back-off.
package etcd
