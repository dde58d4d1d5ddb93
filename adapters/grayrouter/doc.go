// Package grayrouter is graylane's gray traffic router (traffic.type gray):
// instead of reconfiguring a proxy, it publishes each app's gray document
// (gray.Document: the release's rules resolved against the canary split,
// and the split) in a config centre, where graylane's SDK and gateways
// that implement docs/gray.md route by it. A canary step therefore changes
// the published weights, and every service follows within a watch round
// trip.
//
// Entry point: New(Config{Store: ...}) returns a *Router, an
// adapters.TrafficRouter and adapters.Forgetter. Store is any configsync
// Source+Writer opened on the gray location (etcd prefix /graylane/gray/),
// or DocumentsStore over a configsync.Documents. Router.Track wraps the
// app's backend so the router sees the desired instance counts: rules to a
// version the release wants (even at weight 0, testers first) are
// published, and dropped once the release lets that version go (abort).
//
//	store := etcdsource.New(etcdsource.Config{Client: cli, Prefix: gray.DefaultRulesPrefix})
//	gr, _ := grayrouter.New(grayrouter.Config{Store: store, Centre: "etcd", Logger: log})
//	backend = gr.Track(backend)
package grayrouter
