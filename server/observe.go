package server

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// observe is POST /api/v1/apps/{app}/observe: a deploy system's callback
// after it changed what runs for app (instances started, ready, dead). It
// asks for a pass over the app at once on the replica driving it, instead
// of at the app's next timed pass (which backs off to engine.idleResync
// for an idle app). It has no body and answers 202 once the pass is
// asked for, not done. Like every change it needs a write token and is
// audited.
func (s *Server) observe(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	err := s.cfg.Engine.Observe(c.Request.Context(), app)
	s.audit(c, app, "observe callback", err)
	if err != nil {
		s.fail(c, fmt.Errorf("observe %s: %w", app, err))
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"app": app, "observe": "queued"})
}
