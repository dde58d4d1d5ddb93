// Package openapi is a small typed client for Apollo's Portal Open API
// (/openapi/v1): items, releases and gray branches of one namespace.
//
// Entry point: New(Config) returns a *Client; every write names
// Config.Operator as the Apollo user doing it (dataChangeCreatedBy,
// releasedBy, operator), as the Open API requires. A Namespace value names
// the namespace; Namespace.Branch(name) names its gray branch, so branch
// items go through the same item methods:
//
//	c, _ := openapi.New(openapi.Config{PortalURL: "http://portal:8070", Token: tok, Env: "DEV", Operator: "apollo"})
//	ns := openapi.Namespace{AppID: "graylane", Cluster: "default", Name: "graylane-releases"}
//	branch, _ := c.CreateBranch(ctx, ns)
//	_ = c.SetGrayRules(ctx, ns, branch, openapi.GrayRule{ClientAppID: "graylane", ClientLabelList: []string{"canary"}})
//	_ = c.UpdateItem(ctx, ns.Branch(branch), openapi.Item{Key: "demo", Value: doc}, true)
//	_, _ = c.GrayPublish(ctx, ns, branch, openapi.ReleaseRequest{Title: "graylane: demo v2 (gray)"})
//	_, _ = c.Merge(ctx, ns, branch, openapi.ReleaseRequest{Title: "graylane: demo v2"}, true) // or DeleteBranch to abandon
//
// Errors are *Error values carrying the HTTP status and Apollo's message;
// they match the sentinels with errors.Is: ErrUnauthorized (401: token
// missing, unknown or expired), ErrForbidden (403: token not granted on the
// app or namespace), ErrNotFound (404), ErrRateLimited (429),
// ErrBadRequest (400), ErrServer (other 5xx, including Apollo's 500 for a
// missing parameter or an unknown env) and ErrUnavailable (the portal could
// not be reached, or answered 502/503/504).
//
// The Open API has no compare-and-swap: concurrent writers get
// last-write-wins. Callers that need more (configsync/apollo does) read
// first and serialise their own writes.
package openapi
