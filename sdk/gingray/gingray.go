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

import (
	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/sdk"
)

// DecisionKey is the gin context key the decision is also stored under.
const DecisionKey = "graylane.decision"

// Middleware decides each request with r.
func Middleware(r *sdk.Router) gin.HandlerFunc {
	return func(c *gin.Context) {
		d := r.Decide(c.Request)
		c.Request = c.Request.WithContext(sdk.NewContext(c.Request.Context(), d))
		c.Set(DecisionKey, d)
		c.Next()
	}
}

// Decision returns the decision the middleware made for c's request.
func Decision(c *gin.Context) (*sdk.Decision, bool) {
	return sdk.FromContext(c.Request.Context())
}
