package server

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// Role is what a token may do (scope.go lists the roles of environments).
type Role string

// Roles.
const (
	// RoleRead may call every GET endpoint.
	RoleRead Role = "read"
	// RoleWrite may also write specs and versions and send commands.
	RoleWrite Role = "write"
)

// Token is one API credential, sent as "Authorization: Bearer <Secret>"
// (or exchanged for a console session, session.go). Name identifies the
// caller in the audit trail. Envs, Apps and Teams scope it (scope.go).
type Token struct {
	Name   string `mapstructure:"name"`
	Secret string `mapstructure:"token"`
	Role   Role   `mapstructure:"role"`
	// Envs, when set, is the token's role per environment: it may act
	// only in the environments listed.
	Envs map[string]Role `mapstructure:"environments"`
	// Apps and Teams, when set, limit it to these apps and the apps of
	// these teams (Config.Teams).
	Apps  []string `mapstructure:"apps"`
	Teams []string `mapstructure:"teams"`
}

const (
	actorKey = "graylane.actor"
	roleKey  = "graylane.role"
	viaKey   = "graylane.via"
)

// canWrite reports whether the caller may release in the request's
// environment (or no tokens are configured).
func canWrite(c *gin.Context) bool { return allows(callerRole(c), RoleRelease) }

// How a request was authenticated (AuditEntry.Via).
const (
	viaAPI     = "api"
	viaConsole = "console"
)

func mutating(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
}

// authenticate checks the caller when tokens are configured: a bearer
// token, or a console session cookie (session.go) whose changes also need
// the session's CSRF token. With no tokens, every caller is "anonymous"
// with write access (graylane binds to 127.0.0.1 by default), but a
// browser request sent from another site may change nothing.
func (s *Server) authenticate(need Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(s.cfg.Tokens) == 0 {
			if mutating(c.Request) && !s.sameOrigin(c) {
				return
			}
			c.Set(actorKey, "anonymous")
			c.Set(roleKey, RoleWrite)
			c.Set(viaKey, viaAPI)
			return
		}
		if h := c.GetHeader("Authorization"); h != "" {
			s.bearer(c, need, h)
			return
		}
		ses, err := s.readSession(c.Request)
		if err != nil {
			note(c).err = err.Error() // auditlog.go
			if errors.Is(err, errNoSession) {
				c.Header("WWW-Authenticate", `Bearer realm="graylane"`)
				c.AbortWithStatusJSON(http.StatusUnauthorized, apiError{Error: "missing bearer token (Authorization: Bearer <token>)"})
				return
			}
			c.AbortWithStatusJSON(http.StatusUnauthorized, apiError{Error: err.Error()})
			return
		}
		// denied or not, the audit log names the caller (auditlog.go)
		c.Set(actorKey, ses.token.Name)
		c.Set(viaKey, viaConsole)
		role, rule, why := s.authorize(c, ses.token, need) // scope.go
		c.Set(roleKey, role)
		if why != "" {
			note(c).err = why
			c.AbortWithStatusJSON(http.StatusForbidden, apiError{Error: why, Rule: rule})
			return
		}
		if mutating(c.Request) {
			if !s.sameOrigin(c) {
				return
			}
			if subtle.ConstantTimeCompare([]byte(c.GetHeader(csrfHeader)), []byte(ses.csrf())) != 1 {
				note(c).err = "missing or wrong CSRF token"
				c.AbortWithStatusJSON(http.StatusForbidden, apiError{Error: "missing or wrong CSRF token (X-CSRF-Token)"})
				return
			}
		}
	}
}

func (s *Server) bearer(c *gin.Context, need Role, h string) {
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		note(c).err = "missing bearer token"
		c.Header("WWW-Authenticate", `Bearer realm="graylane"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, apiError{Error: "missing bearer token (Authorization: Bearer <token>)"})
		return
	}
	for _, t := range s.cfg.Tokens {
		if subtle.ConstantTimeCompare([]byte(t.Secret), []byte(secret)) == 1 {
			// denied or not, the audit log names the caller (auditlog.go)
			c.Set(actorKey, t.Name)
			c.Set(viaKey, viaAPI)
			role, rule, why := s.authorize(c, t, need) // scope.go
			c.Set(roleKey, role)
			if why != "" {
				note(c).err = why
				c.AbortWithStatusJSON(http.StatusForbidden, apiError{Error: why, Rule: rule})
			}
			return
		}
	}
	note(c).err = "unknown token"
	c.AbortWithStatusJSON(http.StatusUnauthorized, apiError{Error: "unknown token"})
}

func actor(c *gin.Context) string {
	if a, ok := c.Get(actorKey); ok {
		return a.(string)
	}
	return "anonymous"
}

func via(c *gin.Context) string {
	if v, ok := c.Get(viaKey); ok {
		return v.(string)
	}
	return viaAPI
}

// SetTokens replaces the API tokens (before serving).
func (s *Server) SetTokens(t []Token) { s.cfg.Tokens = t }
