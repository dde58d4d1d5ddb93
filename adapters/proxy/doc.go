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
//  1. Preview: a request carrying X-Graylane-Version: v goes to version v
//     when v has a ready endpoint (a blue-green preview or a canary under
//     test), whatever the weights.
//  2. Sticky users: a request carrying the sticky header (traffic.stickyHeader,
//     default X-Gray-User) or, failing that, the sticky cookie
//     (traffic.stickyCookie, default gray_user) gets the bucket
//     Bucket(value) = FNV-1a-32(value) mod 100 of the raw value.
//  3. Otherwise the bucket is drawn uniformly at random from 0..99.
//
// The bucket b picks the first version of the split whose cumulative weight
// exceeds b. With the split [{v2 10} {v1 90}] buckets 0..9 go to v2 and
// 10..99 to v1; at [{v2 20} {v1 80}] buckets 0..19 go to v2, so every user
// who reached the canary at 10% stays on it at 20%.
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
// Within a version endpoints take turns (round robin).
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
package proxy
