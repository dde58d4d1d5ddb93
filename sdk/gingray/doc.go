// Package gingray is graylane's SDK middleware for gin: it decides each
// request once (sdk.Router.Decide) and puts the decision in the request's
// context, where sdk.Client's Transport and sdk.FromContext find it.
//
// Entry point: Middleware.
//
//	r := gin.New()
//	r.Use(gingray.Middleware(client.Router()))
//	r.GET("/order", func(c *gin.Context) {
//		req, _ := http.NewRequestWithContext(c.Request.Context(), "GET", "http://stock/", nil)
//		resp, err := client.HTTPClient().Do(req)
//		...
//	})
package gingray
