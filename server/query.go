package server

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
)

// mutatingQuery lists the query parameters each mutating route accepts.
// Any other parameter on a mutating route is refused with 400 before the
// handler runs: a client that believes it asks for a preview
// (?dryRun=true where there is none, or a misspelt ?dryrun) must not
// change production.
var mutatingQuery = map[string][]string{
	"PUT /api/v1/apps/:app":         {"dryRun"},
	"PUT /api/v1/apps/:app/version": {"dryRun"},
}

// checkQuery refuses unknown query parameters on mutating routes.
func (s *Server) checkQuery(c *gin.Context) {
	if !isMutating(c.Request.Method) {
		return
	}
	allowed := mutatingQuery[c.Request.Method+" "+c.FullPath()]
	var unknown []string
	for k := range c.Request.URL.Query() {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return
	}
	sort.Strings(unknown)
	takes := "no query parameters"
	if len(allowed) > 0 {
		takes = "only " + strings.Join(allowed, ", ")
	}
	msg := fmt.Sprintf("unknown query parameter %q: %s %s takes %s; nothing was changed", unknown[0], c.Request.Method, c.FullPath(), takes)
	note(c).err = msg
	c.AbortWithStatusJSON(http.StatusBadRequest, apiError{Error: msg, Field: "query." + unknown[0]})
}
