// Package webhook is graylane's webhook Backend: it hands an app's desired
// state to an external system (a deploy API, a CI pipeline, a PaaS) and reads
// back what runs there.
//
// Entry point: New. Apply POSTs a DesiredState as JSON to backend.webhook.url;
// Observe GETs backend.webhook.statusURL and expects a Status:
//
//	{"app": "demo",
//	 "instances": [
//	   {"id": "demo-7f9c", "version": "v2", "addr": "10.0.0.7:8080",
//	    "ready": true, "message": "", "meta": {"zone": "a"}}
//	 ]}
//
// each instance mapping field for field onto adapters.Instance (id and
// version required; version must be a valid graylane version).
//
// Every request carries
//
//	X-Graylane-App:       the app
//	X-Graylane-Timestamp: Unix seconds
//	X-Graylane-Signature: sha256=hex(HMAC-SHA256(key, timestamp + "." + body))
//
// (the body of a GET is empty), and a POST carries Idempotency-Key: a digest
// of app, version and the non-zero replicas, so the same desired state always
// has the same key whatever the step or reason. Receivers verify with
// Verify and deduplicate on the key. Apply is level-triggered, but it does
// not POST a desired state again while it is met: same key (and fencing
// token) as the last one delivered, the last status read showing exactly
// those instances, all ready, and less than Config.Reassert (1 h)
// since it was delivered. Otherwise it POSTs.
//
// With ha.mode shard every request also carries the sending replica and
// its fencing token for the app (WithFence):
//
//	X-Graylane-Replica:       the replica's ha.id
//	X-Graylane-Fencing-Token: a number that grows each time the app changes hands
//
// A receiver that remembers the highest token per app and refuses (409)
// a lower one is safe even against a replica that was paused past its
// lease and has not noticed yet.
//
// Each attempt is bounded by backend.webhook.timeout; network errors,
// timeouts, 408, 425, 429 and 5xx (but 501) are retried
// backend.webhook.retries times with exponential back-off and jitter,
// honouring Retry-After; other answers fail at once with a *StatusError
// carrying the status and the start of the body.
//
// The external system may take its time, or never do what it acknowledged:
// Observe reports exactly what the status URL says, and WaitConverged
// returns ErrNotConverged, naming wanted and observed counts, when it does
// not match the desired state in time.
package webhook
