// Package apollo is graylane's Apollo config centre: a configsync.Source
// that watches release documents through the official Go client agollo
// v4, a configsync.Writer over the Portal Open API, and a
// configsync.HealthChecker. Sub-package openapi is the typed Open API
// client, including gray branches for config-in-step.
//
// # Layout
//
// One properties namespace (default "graylane-releases") of one Apollo app
// (default "graylane"): each item's key is an app name and its value is the
// app's release document, untouched (YAML or JSON). In the portal an
// operator sees one item per app, edits the document (say its version) and
// presses Release: that is all it takes. Keys that are not valid app names
// are ignored.
//
// Why not one YAML namespace per app: agollo's namespace list is fixed when
// it starts, so a new app would need a restart (one namespace: a new item is
// just a new key); discovering namespaces needs the Open API (and a token)
// even to read; and agollo parses a .yaml namespace into flattened keys, so
// the raw document would be lost. The costs of one namespace: a document
// is limited to Apollo's item value limit (20000 characters, checked by
// Put), and Apollo releases a whole namespace at once, so the Writer
// refuses to publish over other items' unpublished edits and titles every
// release with the app and version it is about ("graylane: demo v2").
//
// # Entry point
//
//	src, err := apollo.New(apollo.Config{
//		Meta: "http://apollo-meta:8080", Portal: "http://apollo-portal:8070",
//		Token: token, CacheDir: "/var/lib/graylane/apollo",
//		Logger: log,
//	})
//
// New never waits for Apollo. It loads the last-known-good cache from
// CacheDir (replaced atomically on every change: write, fsync, rename), and
// starts agollo and a health probe in the background, so graylane starts
// with Apollo down: Get, List and Watch serve the cache, and Watch and
// Healthy say so with an error wrapping configsync.ErrUnavailable.
//
// # Watch
//
// agollo polls with a fixed 2 s pause and runs each listener call in its
// own goroutine. The Source serialises those calls and applies a read only
// if its notification id is above the last one applied, so an older state
// never follows a newer one; identical documents are not delivered again.
// Revisions are local and increasing (and kept in the cache across
// restarts); a short history lets a watch resume from a revision, otherwise
// it starts with a Reset. agollo never reports failures, so a probe reads
// the config service every Config.ProbeInterval (a 304 when nothing
// changed) and watches report an outage as a response with only Err, and
// the recovery as a response with neither events nor Err. Responses with
// events never carry Err. After an outage agollo waits about 30 s before it
// tries the server again, so changes made during an outage arrive up to
// ~32 s after Apollo is back.
//
// Get and List answer from the same state as Watch (Entry.Version is the
// MD5 of the document, Entry.Revision the local revision), and after a
// write of this Source they wait briefly for it to come back through
// agollo, so a read after a write sees it.
//
// # Write
//
// Put and Delete set (or delete) the item with the Open API and publish the
// namespace, released by Config.Operator. The Open API has no
// compare-and-swap: expect is checked against the latest release read just
// before (best effort; writes of one Source are serialised by a mutex). If
// the release fails after the item was written, the item is restored.
// Token errors are explained: 401 (token missing, unknown or expired), 403
// (not granted on the namespace), 404 (app, cluster or namespace missing),
// 429 (rate limited, wraps configsync.ErrUnavailable).
package apollo
