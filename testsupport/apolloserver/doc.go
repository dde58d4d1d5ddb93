// Package apolloserver is an in-memory, protocol-faithful Apollo (apolloconfig/
// apollo 2.x) for graylane's tests: real Apollo (Java) cannot be obtained in
// the build environment, so this package plays it. It is written to Apollo's
// behaviour — its controllers, services and integration tests — never to suit
// graylane: when graylane and this server disagree, Apollo decides. It uses
// the standard library only.
//
// # Entry point
//
//	s := apolloserver.New(apolloserver.Options{LongPollTimeout: 2 * time.Second})
//	if err := s.Start(); err != nil { ... }
//	defer s.Close()
//	s.CreateApp("my-app", "")             // "default" cluster + "application"
//	s.SetItem("my-app", "default", "application", "k", "v")
//	s.Publish("my-app", "default", "application", "first release")
//	s.CreateToken("tok"); s.GrantApp("tok", "my-app")
//	// agollo: AppConfig{IP: s.URL(), ...}; Open API: s.PortalURL()+"openapi/v1/..."
//
// Like Apollo, two listeners: URL() is the config service with the meta server
// embedded in it (Apollo's port 8080); PortalURL() is the portal (port 8070)
// with the Open API. Stop() simulates "Apollo is down" (held long polls are cut,
// connections refused) and Start() brings it back on the same ports with the
// same data. Close() ends it for good and, unlike httptest.Server.Close, does
// not wait for held long polls.
//
// The Go admin methods (CreateApp, CreateCluster, CreateNamespace,
// CreatePublicNamespace, AssociateNamespace, CreateUser, CreateToken,
// GrantApp, GrantNamespace, SetTokenRateLimit, ExpireToken, SetAccessKeys,
// SetItem, DeleteItem, Publish, CreateBranch, SetGrayRules) do what an
// administrator would do in the portal UI; Releases, LatestRelease,
// ReleaseHistory, Items, Branch and NotificationID let tests inspect the
// result. Signature computes the access-key signature for hand-made requests.
//
// Observation hooks for tests, which change nothing a client sees:
// WaitingPolls counts the long polls held with nothing newer for them
// (clients that have read every release they watch), and LastConfigRead
// with LatestMessage tells whether a client's last /configs read came
// after the latest release and was a 304. Tests that must show that
// nothing more arrives wait for these instead of sleeping.
//
// # Implemented
//
// Config service:
//   - GET /configs/{appId}/{cluster}/{namespace}: releaseKey (304 when equal,
//     no body), 404 before the first release, ip from the query or else
//     X-Forwarded-For / the remote address, label, dataCenter, cluster
//     fallback cluster -> data centre -> "default" with "cluster" in the reply
//     being the cluster (or gray branch) actually used, ".properties" suffix
//     stripped and namespace case normalised, namespaceName echoed as sent,
//     public namespaces with per-app override (release keys joined with "+"),
//     non-properties namespaces ({"content": "..."}); messages is accepted
//     and ignored (there is no cache to invalidate).
//   - GET /configfiles/{appId}/{cluster}/{ns} (java.util.Properties text),
//     /configfiles/json/... and /configfiles/raw/... (always fresh here; Apollo
//     caches them until the release message arrives, ~1 s).
//   - GET /notifications/v2: one global, strictly increasing notification id
//     (Apollo's ReleaseMessage table), answered at once with only the
//     namespaces that have a newer id and messages.details for every watched
//     key (cluster, data centre, default, public owner); otherwise held for
//     Options.LongPollTimeout (Apollo: 60 s) and answered 304. A held poll is
//     answered with the one namespace whose release message arrived.
//     Names: ".properties" is stripped before the reply (Apollo answers
//     "application" to "application.properties"), a case difference is
//     answered with the client's spelling, and of two spellings of one
//     namespace the one with the smaller id wins, as in
//     NotificationControllerV2IntegrationTest. Bad, empty or "[]"
//     notifications: 400 "invalid notifications format:...". Note that -1
//     only answers at once when a release message exists for a watched key.
//   - GET /services/config (meta server): one APOLLO-CONFIGSERVICE instance
//     whose homepageUrl is URL() (trailing slash). /services/admin is empty.
//   - Access keys (ClientAuthenticationFilter) on /configs, /configfiles and
//     /notifications/v2, only for apps with a secret: Timestamp within
//     AccessKeyTimeTolerance (60 s) else 401 RequestTimeTooSkewed; signature
//     base64(HMAC-SHA1(secret, timestamp+"\n"+rawPath?rawQuery)) taken from
//     the part of Authorization after the first ':' else 401 Unauthorized.
//
// Gray release: branches are child clusters named like release keys; rules
// match clientAppId ignoring case AND (ip listed or "*" OR label listed or
// "*"); a rule only applies once the branch has a release; a gray release is
// master's latest release with the branch items on top (minus grayDelKeys);
// publishing the branch, changing its rules and deleting it send the release
// message on the master key; every master publish (and master rollback)
// republishes an existing branch keeping its own keys — even a branch that
// was never gray-published, which then puts its rules into effect (Apollo's
// ReleaseService does exactly that). Merge copies branch items onto master
// (creates and updates, never deletes), publishes master and optionally
// deletes the branch; it is refused while master has unpublished changes.
// Kept Apollo quirks: rolling back a gray release sends the release message
// on the branch key (clients of the master cluster are not woken), and the
// gray-del keys are not remembered as branch keys, so the next master publish
// brings them back for gray clients.
//
// Portal Open API (/openapi/v1), Authorization: the raw token:
//   - 401 (Spring's sendError body) for a missing, unknown or expired token;
//     429 past the token's rate limit (1 s warm-up); 403 "Access is denied"
//     for writes without a grant (an app grant covers every namespace and is
//     the only one that may create branches; a namespace grant gives modify
//     and release on that namespace, for all envs or one env). Reads need no
//     grant.
//   - apps, envclusters, cluster, namespaces (items plus released-but-deleted
//     keys, as Apollo's NamespaceBO), items CRUD incl. createIfNotExists and
//     encodeItems/{base64url key}, paged item list, releases (create, latest
//     — 200 with no body when none —, active list, by id, rollback),
//     branches (create, get, delete, rules get/put, gray publish,
//     gray-del-releases, merge?deleteBranch).
//   - Apollo's checks in Apollo's order, with its messages; operators must be
//     known users (CreateUser; "apollo" exists). Error bodies are
//     {"exception","message","status","timestamp"}. Errors the portal relays
//     from Apollo's admin service (e.g. "item already exists for itemKey:k",
//     "key too long. length limit:128", "namespace not found for ...", "item
//     not found for ...") carry "status":400.0 / 404.0 — the portal re-parses
//     the admin body with Gson — while the portal's own errors carry an
//     integer. Missing required query parameters and unreadable bodies are
//     500s (Apollo's catch-all handler); a non-JSON Content-Type (including
//     none) is 400 "Content type '...' not supported"; an unknown env is 500.
//   - Key <= 128 and value <= 20000 UTF-16 code units (Options), comment <= 256.
//   - The Open API has no compare-and-swap: concurrent writers get
//     last-write-wins, as in Apollo.
//
// # Not implemented (on purpose)
//
// The portal UI and its login, creating apps/clusters/namespaces through the
// Open API (use the Go admin methods), env routing to several config services
// (one config service serves every env the portal knows), namespace locks and
// "publish by a different person", item number limits and per-namespace value
// limits, audit and instance tracking, access-key "observe" mode, incremental
// config sync, the deprecated /notifications (v1), Eureka, and Apollo's
// eventual consistency (release-message scan ~1 s, caches): every change is
// visible at once. Names are compared exactly where Apollo relies on the
// database (MySQL's default collation would match them case-insensitively),
// and case-insensitively where Apollo's code does it explicitly (namespace
// normalisation, gray rules, long-poll wake-ups).
package apolloserver
