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
