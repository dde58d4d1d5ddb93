package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/internal/redact"
	"github.com/graylane/graylane/spec"
)

// AuditLog is the persistent audit log (audit.Store): StoreAuditor
// writes to it, GET /api/v1/audit reads it.
type AuditLog interface {
	// Append writes one record; it never replaces one.
	Append(ctx context.Context, r audit.Record) error
	// List returns the records matching q, newest first.
	List(ctx context.Context, q audit.Query) ([]audit.Record, error)
}

// Denials counts unauthenticated denials (audit.Aggregator): one record
// per source address and minute instead of one per request.
type Denials interface {
	Deny(source, route, reason string)
}

// auditExempt lists the mutating routes that are not audited, by name,
// with the reason. Every other mutating route is (auditlog_test.go
// enumerates the router to prove it).
var auditExempt = map[string]string{
	"POST /api/v1/apps/:app/validate":           "validates a spec and writes nothing (a read token may call it)",
	"POST /api/v1/instances/:app/:id/heartbeat": "heartbeats renew a registration every few seconds and would flood the log; registration and deregistration are audited",
}

const auditNoteKey = "graylane.audit"

// auditNote is what a handler tells the audit middleware about its
// request.
type auditNote struct {
	app     string
	action  string
	target  string
	content map[string]any
	err     string
	skip    bool
}

func note(c *gin.Context) *auditNote {
	if v, ok := c.Get(auditNoteKey); ok {
		return v.(*auditNote)
	}
	return &auditNote{} // not audited: a read
}

// annotate tells the audit log which app a request acts on, what it asks
// and its essential content (redacted before it is stored).
func (s *Server) annotate(c *gin.Context, app, action string, content map[string]any) {
	n := note(c)
	if app != "" {
		n.app = app
	}
	if action != "" {
		n.action = action
	}
	if content != nil {
		if n.content == nil {
			n.content = map[string]any{}
		}
		for k, v := range content {
			n.content[k] = v
		}
	}
}

// auditRequests records every mutating request under /api/v1 in the
// persistent audit log once it is answered: caller, source address,
// route, action, target, outcome (allowed, denied, failed) and essential
// content. Unauthenticated denials go to the aggregator. Dry-runs write
// nothing, not even an audit record (they are logged).
func (s *Server) auditRequests(c *gin.Context) {
	route := c.Request.Method + " " + c.FullPath()
	if !isMutating(c.Request.Method) || c.FullPath() == "" || auditExempt[route] != "" {
		c.Next()
		return
	}
	n := &auditNote{}
	c.Set(auditNoteKey, n)
	start := time.Now()
	c.Next()
	if n.skip {
		return
	}
	status := c.Writer.Status()
	who, known := c.Get(actorKey)
	e := AuditEntry{Time: start, Via: via(c), Remote: c.ClientIP(), Method: c.Request.Method, Route: c.FullPath(),
		Action: n.action, Env: s.envOf(c), App: n.app, Target: c.Request.URL.Path, Status: status, Error: n.err}
	if e.App == "" {
		e.App = c.Param("app")
	}
	if e.Action == "" {
		e.Action = defaultAction(c)
	}
	if n.target != "" {
		e.Target = n.target
	}
	if n.content != nil {
		e.Content = redact.Value(n.content).(map[string]any)
	}
	e.Actor = audit.Unauthenticated
	if known {
		e.Actor = fmt.Sprint(who)
	}
	switch {
	case status == http.StatusUnauthorized && !known && s.cfg.Denials != nil:
		s.cfg.Denials.Deny(e.Remote, route, n.err) // one record per source and minute
		return
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Outcome = audit.Denied
	case status >= 400:
		e.Outcome = audit.Failed
	default:
		e.Outcome = audit.Allowed
	}
	s.cfg.Auditor.Audit(c.Request.Context(), e)
}

// routeActions name the requests whose handler did not (denied before it
// ran, or refused before it said what it was asked).
var routeActions = map[string]string{
	"PUT /api/v1/apps/:app":             "write release spec",
	"DELETE /api/v1/apps/:app":          "delete release spec",
	"PUT /api/v1/apps/:app/version":     "set version",
	"POST /api/v1/apps/:app/rollback":   "rollback",
	"POST /api/v1/instances":            "register instance",
	"DELETE /api/v1/instances/:app/:id": "deregister instance",
	"POST /api/v1/session":              "console sign-in",
	"DELETE /api/v1/session":            "console sign-out",
}

// defaultAction names a request by its route when its handler did not.
func defaultAction(c *gin.Context) string {
	if a, ok := routeActions[c.Request.Method+" "+c.FullPath()]; ok {
		return a
	}
	if cmd, ok := strings.CutPrefix(c.FullPath(), "/api/v1/apps/:app/"); ok && !strings.Contains(cmd, "/") {
		return cmd // a command
	}
	return strings.ToLower(c.Request.Method) + " " + strings.TrimPrefix(c.FullPath(), "/api/v1")
}

func isMutating(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// auditRoutes registers GET /audit.
func (s *Server) auditRoutes(v1 *gin.RouterGroup) {
	v1.GET("/audit", s.authenticate(RoleRead), s.listAudit)
}

// AuditList is GET /api/v1/audit.
type AuditList struct {
	Records []audit.Record `json:"records"`
}

// listAudit answers GET /audit?app=&user=&since=&until=&limit=; since and
// until are RFC 3339 times or durations back from now ("24h").
func (s *Server) listAudit(c *gin.Context) {
	if s.cfg.AuditLog == nil {
		c.AbortWithStatusJSON(http.StatusNotImplemented, apiError{Error: "the audit log is not configured in this graylane"})
		return
	}
	q := audit.Query{App: c.Query("app"), Actor: c.Query("user")}
	if q.App != "" {
		if err := spec.CheckApp(q.App); err != nil {
			s.fail(c, &fieldErr{field: "app", err: fmt.Errorf("%w: %v", errBadRequest, err)})
			return
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		v := c.Query(p.name)
		if v == "" {
			continue
		}
		t, err := parseWhen(v, time.Now())
		if err != nil {
			s.fail(c, &fieldErr{field: p.name, err: fmt.Errorf("%w: %v", errBadRequest, err)})
			return
		}
		*p.dst = t
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.fail(c, &fieldErr{field: "limit", err: fmt.Errorf("%w: %q is not a number in 1..1000", errBadRequest, v)})
			return
		}
		q.Limit = n
	}
	recs, err := s.cfg.AuditLog.List(c.Request.Context(), q)
	if err != nil {
		s.fail(c, fmt.Errorf("read the audit log: %w", err))
		return
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	c.JSON(http.StatusOK, AuditList{Records: recs})
}

// parseWhen reads an RFC 3339 time or a duration back from now.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration back from now (24h)", v)
	}
	return now.Add(-d), nil
}
