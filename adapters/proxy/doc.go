// Package proxy is graylane's built-in traffic router: one HTTP reverse
// proxy per app that splits requests between code versions, in front of
// any backend whose instances have addresses (process, ssh, webhook,
// docker...).
//
// Entry points:
//
//   - Router, the adapters.TrafficRouter (and adapters.Drainer) graylane
//     uses for traffic.type proxy: NewRouter with the backends' instances
//     (RouterConfig.Instances); Kick it from their adapters.Notifier. The
//     endpoints of an app's proxy are the ready instances its backend
//     reports, re-read on Kick, on SetWeights and every Resync.
//   - DataPlane, where the proxies run: Local runs them in this process
//     and keeps their routes in a file (LocalConfig.StateFile) so a new
//     Local serves the last routes at once.
//   - Proxy, one app's proxy (an http.Handler): SetSplit, ReplaceEndpoints,
//     InFlight, Drain, Listen.
//
// # Routing
//
// A request is routed by the first rule that applies:
//
//  1. A trusted caller (Settings.Trust: its connection's address in
//     ClientIPs, or the trust header with the secret) reaches a version the
//     split routes to — the Preview, or one with a weight (an analysis
//     check aimed at the canary) — with X-Graylane-Version: <version>, or
//     pins the version its n-d-version names for the app when the split
//     routes to it. Nobody is
//     trusted by default: X-Graylane-Version, n-d-version,
//     n-d-version-weight, n-d-region and n-d-address of other callers are
//     ignored and removed before the request goes on, and the trust header
//     never goes on.
//  2. Sticky users: the user key — the sticky header (traffic.stickyHeader,
//     default X-Gray-User), else the sticky cookie (traffic.stickyCookie,
//     default gray_user), trimmed — gets its bucket 0..9999 by
//     gray.Bucket with the app's salt (gray.salt, default "graylane"):
//     the bucketing of docs/gray.md, the same as nginx's Lua and the SDK.
//  3. Otherwise the bucket is drawn uniformly at random.
//
// The bucket b picks the first version of the split whose cumulative
// weight*100 exceeds b. With the split [{v2 10} {v1 90}] buckets 0..999 go
// to v2 and 1000..9999 to v1; at [{v2 20} {v1 80}] buckets 0..1999 go to
// v2, so every user who reached the canary at 10% stays on it at 20%. The
// request goes on with n-d-version: {"app":"version"} (merged into a
// trusted caller's own n-d-version), so SDK services downstream follow the
// decision.
//
// A version with weight > 0 but no ready endpoint never fails a request: its
// share goes to the weighted versions that have endpoints, in proportion to
// their weights (a sticky user by a second function of the same hash, so the
// user keeps landing on one version). A version outside the split (weight 0
// or absent, e.g. the previous version during scaleDownDelay) never serves
// a request, except as a failover after an attempt on the weighted versions
// failed; when no weighted version has an endpoint the proxy answers 503.
// Before the first split, requests go to any version with endpoints.
//
// Within a version endpoints take turns (round robin), the less busy of the
// next two in turn taking the request (fewer requests in flight).
//
// # Failures and draining
//
// A request whose connection to an endpoint fails before anything was sent
// (the dial failed) is retried on another endpoint of the same version, then
// on other versions, and that endpoint is skipped for a short while. Requests
// with idempotent methods (GET, HEAD, OPTIONS, TRACE) and no body are also
// retried when the connection breaks before a response arrives, so a dying
// instance does not cost a request. Each response carries
// X-Graylane-Upstream, the address of the endpoint that served it.
//
// A backend taking an instance away calls Drain (or RemoveEndpoint, then polls
// InFlight): no new request reaches the endpoint once RemoveEndpoint returns,
// and InFlight counts the requests still being served, response bodies
// included.
//
// # Request path
//
// A listening proxy runs its own HTTP/1.1 server loop (server.go) and
// forwards plain requests itself (forward.go): per endpoint it keeps
// upstream connections alive, writes the request and reads the response in
// the client connection's goroutine. The common request (body-less
// HTTP/1.1, rawrequest.go) and the common response (one Content-Length,
// rawhead.go) are parsed in place in the connections' buffers, so such a
// request allocates one string; every other one is read by net/http.
// Protocol upgrades are joined both
// ways; ServeHTTP (the http.Handler) forwards the same way, and with
// Config.Transport set goes through httputil.ReverseProxy instead.
package proxy
