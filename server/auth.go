package server

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
)

// Role is what a token may do.
type Role string

// Roles.
const (
	// RoleRead may call every GET endpoint.
	RoleRead Role = "read"
	// RoleWrite may also write specs and versions and send commands.
	RoleWrite Role = "write"
)

// Token is one API credential, sent as "Authorization: Bearer <Secret>".
// Name identifies the caller in the audit trail.
type Token struct {
	Name   string `mapstructure:"name"`
	Secret string `mapstructure:"token"`
	Role   Role   `mapstructure:"role"`
}

const (
	actorKey = "graylane.actor"
	roleKey  = "graylane.role"
)

// canWrite reports whether the caller holds a write token (or no tokens
// are configured).
func canWrite(c *gin.Context) bool {
	r, _ := c.Get(roleKey)
	return r == RoleWrite
}

// authenticate checks the bearer token when tokens are configured; with
// none, every caller is "anonymous" with write access (graylane binds to
// 127.0.0.1 by default).
func (s *Server) authenticate(need Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(s.cfg.Tokens) == 0 {
			c.Set(actorKey, "anonymous")
			c.Set(roleKey, RoleWrite)
			return
		}
		h := c.GetHeader("Authorization")
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || secret == "" {
			note(c).err = "missing bearer token"
			c.Header("WWW-Authenticate", `Bearer realm="graylane"`)
			c.AbortWithStatusJSON(http.StatusUnauthorized, apiError{Error: "missing bearer token (Authorization: Bearer <token>)"})
			return
		}
		for _, t := range s.cfg.Tokens {
			if subtle.ConstantTimeCompare([]byte(t.Secret), []byte(secret)) == 1 {
				c.Set(actorKey, t.Name) // denied or not, the audit log names the caller
				c.Set(roleKey, t.Role)
				if need == RoleWrite && t.Role != RoleWrite {
					msg := fmt.Sprintf("token %q is read-only", t.Name)
					note(c).err = msg
					c.AbortWithStatusJSON(http.StatusForbidden, apiError{Error: msg})
					return
				}
				return
			}
		}
		note(c).err = "unknown token"
		c.AbortWithStatusJSON(http.StatusUnauthorized, apiError{Error: "unknown token"})
	}
}

func actor(c *gin.Context) string {
	if a, ok := c.Get(actorKey); ok {
		return a.(string)
	}
	return "anonymous"
}

// audit records who changed what: in the log and on the app's event
// stream (reason "Audit").
func (s *Server) audit(c *gin.Context, app, action string, err error) {
	who := actor(c)
	outcome := "ok"
	if err != nil {
		outcome = "failed: " + err.Error()
	}
	s.annotate(c, app, action, nil) // the persistent record (auditlog.go)
	s.log.Info("audit", "actor", who, "app", app, "action", action, "outcome", outcome, "remote", c.ClientIP())
	s.cfg.Engine.Broker().Publish(app, engine.Message{Kind: "event", Event: &engine.EventView{
		Event: rollout.Event{Type: rollout.Normal, Reason: "Audit", Message: fmt.Sprintf("%s: %s (%s)", who, action, outcome)},
		App:   app, Time: time.Now(),
	}})
}

// SetTokens replaces the API tokens (before serving).
func (s *Server) SetTokens(t []Token) { s.cfg.Tokens = t }
