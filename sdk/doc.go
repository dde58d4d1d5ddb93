// Package sdk is graylane's Go SDK for services that follow its gray
// rules: register the instance, decide each request's version once at the
// edge of a call chain, carry the decision in context.Context, and route
// outbound calls to an instance of the decided version.
//
// Entry point: Start(ctx, Config) returns a *Client that follows the
// published gray documents (Config.Rules) and the instances of the apps it
// calls (Config.Discovery, Config.Services):
//
//	c, err := sdk.Start(ctx, sdk.Config{
//		App: "shop", Version: "v2", Addr: "10.0.0.7:8080",
//		Rules: etcdreg.Rules(cli, ""), Registrar: reg, Discovery: reg,
//		Services: []string{"stock"},
//	})
//	defer c.Close()
//	_ = c.Ready(ctx)                                  // rules and instances read once
//	srv := &http.Server{Handler: c.Middleware(mux)}   // decide once per request
//	go srv.Serve(ln)
//	_ = c.Register(ctx)                               // now take traffic
//	// in a handler, or in any goroutine given the request's context:
//	req, _ := http.NewRequestWithContext(r.Context(), "GET", "http://stock/items", nil)
//	resp, err := c.HTTPClient().Do(req)               // an instance of the decided version
//
// How a request is decided (Router.Decide): an n-d-version header from
// upstream pins versions (unless the router is the edge); otherwise each
// app's document decides (preview header, rules in order, then the user's
// sticky bucket over the canary weight). The decision is made for every
// app with a document, so the whole chain follows the edge's decision;
// the user key is passed on too, so re-deciding downstream gives the same
// answer. Package gingray adapts the middleware to gin; etcdreg and
// nacosreg connect the SDK to etcd and Nacos.
package sdk
