// Package nacos is graylane's Nacos config centre: a configsync.Source,
// configsync.Writer and configsync.HealthChecker over nacos-sdk-go v2
// (gRPC), plus a Registry that registers instances with gray-routing
// metadata and follows services' instance lists.
//
// Entry points: New(ctx, Config) returns a *Source; NewRegistry(ctx,
// Config) returns a *Registry. docs/nacos.md
// is the operator's guide.
//
// # Layout
//
// Release documents live in one dedicated group (Config.Group, default
// GRAYLANE_RELEASES) of one namespace:
//
//   - dataId = app name, exactly ("checkout", no ".yaml" suffix: the app
//     name is the key, as in etcd, and app names are DNS labels, so no
//     suffix is needed to tell documents apart), content = the release
//     document untouched, published with type yaml so the Nacos console
//     shows and highlights it (JSON documents are valid YAML);
//   - dataId graylane.index (Config.IndexDataID) = the index, the list of
//     apps graylane follows (a dot can never be in an app name).
//
// The index document looks like this:
//
//	apps:
//	  - checkout
//	  - payments
//
// The index exists because Nacos' gRPC protocol cannot list a group: the
// only listing is the HTTP search API (/nacos/v1/cs/configs?search=...,
// /nacos/v3/admin/cs/config/list on Nacos 3), which Polaris, the
// Nacos-protocol server graylane is tested against, does not implement
// (it answers "key: dataId required" and 404), and which sits behind the
// admin API and its permissions on Nacos 3. An index works the same on
// every server and makes adding and removing an app one explicit,
// reviewable step. Put adds the app to the
// index before publishing; Delete removes it after deleting the document;
// operators may edit it in the console. An app is visible (Get, List,
// Watch) when the index names it and its dataId has content. A malformed
// index is reported (ErrBadIndex, wrapped with configsync.ErrUnavailable)
// and watches keep the last good app list: a typo never deletes every
// release.
//
// # Versions and revisions
//
// Entry.Version is the MD5 of the content, which is what Nacos compares in
// a compare-and-swap publish (casMd5). Entry.Revision is a counter local to
// the Source (Nacos has no global revision): it rises whenever the Source
// learns of a change (its own Put, or the watch seeing new content or a
// deletion), and Watch(afterRevision) keeps it above afterRevision.
//
// # Writes
//
// Put publishes with casMd5 = expect; configsync.Absent becomes a casMd5
// that no MD5 equals, which Nacos answers by creating a missing dataId and
// refusing an existing one (atomic create-only). Polaris v1.18.1 ignores
// casMd5 on updates; the Source detects that once, with a private probe
// dataId, and then emulates conditional updates (read, compare, write; not
// atomic). Nacos has no conditional delete: Delete compares, verifies with
// a no-op casMd5 publish, then deletes. Reads may lag writes (Polaris' cache
// refreshes every second; Nacos replicates asynchronously), so a Source
// reads its own writes for 3 s after making them.
//
// # Watch
//
// All watches of a Source share one hub that listens (nacos-sdk-go
// listeners) to the index and to every listed app, re-reads a dataId when
// told it changed, and keeps the current state; each watch sends a Reset
// first and then the difference between the hub's state and what it has
// delivered. Hence no duplicates, no older state after a newer one, and a
// slow consumer gets the latest state rather than a backlog. The hub also
// re-reads the index every ProbeInterval and everything every
// ResyncInterval, in case a notification was lost.
//
// # Connections
//
// The released nacos-sdk-go v2.3.2 reconnects with unsynchronised writes to
// its connection (a data race; upstream issues #741 and #905, still open in
// v2.3.5). graylane builds a copy with those races fixed
// (third_party/nacos-sdk-go), but programs importing this package get the
// released SDK, so the package does not let the SDK reconnect: it watches each
// server's gRPC port with an idle gRPC connection of its own, shuts the SDK
// client down the moment the server is gone, and builds a fresh client when
// the server is back. A new client means a full re-read, which delivers
// only what really changed; while no client is up, calls fail fast with
// configsync.ErrUnavailable and watches report it. For 8 s after a
// reconnection a missing document is re-checked before it counts as a
// deletion (a restarted Polaris was seen answering "not found" for a
// just-updated dataId for ~5 s), and a missing index must stay missing for
// 6 s before the apps it listed count as deleted (an explicit "apps: []"
// counts at once).
package nacos
