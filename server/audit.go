package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
)

// Auditor records who changed what. Every change made through the API —
// by the CLI, curl or the console, which calls the same routes — goes
// through one Auditor: the audit middleware (auditlog.go) calls it once
// for every mutating request, after it was answered. The default logs
// and publishes an event (LogAuditor); with an AuditLog configured,
// StoreAuditor also keeps the entry in etcd.
type Auditor interface {
	// Audit records one entry. It must not block for long: it runs in the
	// request, after the change was attempted.
	Audit(ctx context.Context, e AuditEntry)
}

// AuditEntry is one audited action.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Actor is the token's name ("anonymous" without tokens,
	// "unauthenticated" when none was valid).
	Actor string `json:"actor"`
	// Via is "api" (bearer token or none) or "console" (session cookie).
	Via string `json:"via"`
	// Env is the environment acted in ("" without environments).
	Env string `json:"env,omitempty"`
	// App is the app acted on ("" for sign-in and sign-out).
	App    string `json:"app,omitempty"`
	Action string `json:"action"`
	// Outcome is allowed, denied or failed (audit.Allowed, ...); Error
	// says why it was denied or failed.
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	Remote  string `json:"remote"`
	// Method, Route and Target are the request: "PUT",
	// "/api/v1/apps/:app/version", its path.
	Method string `json:"method,omitempty"`
	Route  string `json:"route,omitempty"`
	Target string `json:"target,omitempty"`
	Status int    `json:"status,omitempty"`
	// Content is the request's essential content, redacted.
	Content map[string]any `json:"content,omitempty"`
}

// outcomeWords is the entry's outcome as the log and the event stream
// show it: "ok", "failed: <reason>", "denied: <reason>".
func (e AuditEntry) outcomeWords() string {
	switch e.Outcome {
	case audit.Allowed:
		return "ok"
	case "":
		return "ok"
	}
	if e.Error == "" {
		return e.Outcome
	}
	return e.Outcome + ": " + e.Error
}

// LogAuditor is the default Auditor: an "audit" log line, and an "Audit"
// event on the app's event stream (shown in the console's timeline).
type LogAuditor struct {
	Log    *slog.Logger
	Broker *engine.Broker
}

var _ Auditor = LogAuditor{}

// Audit implements Auditor.
func (a LogAuditor) Audit(ctx context.Context, e AuditEntry) {
	args := []any{"actor", e.Actor, "via", e.Via}
	if e.Env != "" { // a graylane without environments logs the lines it always did
		args = append(args, "env", e.Env)
	}
	args = append(args, "app", e.App, "action", e.Action, "outcome", e.outcomeWords(), "remote", e.Remote)
	a.Log.Info("audit", args...)
	if e.App == "" || a.Broker == nil || e.Outcome == audit.Denied {
		return // denied attempts stay out of the app's timeline (they are in the audit log)
	}
	a.Broker.Publish(e.App, engine.Message{Kind: "event", Event: &engine.EventView{
		Event: rollout.Event{Type: rollout.Normal, Reason: "Audit", Message: fmt.Sprintf("%s: %s (%s)", e.Actor, e.Action, e.outcomeWords())},
		App:   e.App, Time: e.Time,
	}})
}

// StoreAuditor keeps every entry in the persistent audit log (etcd), then
// hands it to Next (the log and event stream).
type StoreAuditor struct {
	Store AuditLog
	Next  Auditor
	Log   *slog.Logger
}

var _ Auditor = StoreAuditor{}

// Audit implements Auditor. A failed write is logged: the change itself
// is done by then.
func (a StoreAuditor) Audit(ctx context.Context, e AuditEntry) {
	rec := audit.Record{Time: e.Time, Actor: e.Actor, Via: e.Via, Source: e.Remote, Method: e.Method, Route: e.Route, Action: e.Action,
		Env: e.Env, App: e.App, Target: e.Target, Outcome: e.Outcome, Status: e.Status, Error: e.Error, Content: e.Content}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.Store.Append(wctx, rec); err != nil && a.Log != nil {
		a.Log.Error("write audit record: the change itself is done; its record is only in this log", "actor", e.Actor, "app", e.App,
			"action", e.Action, "outcome", e.Outcome, "err", err)
	}
	if a.Next != nil {
		a.Next.Audit(ctx, e)
	}
}

// audit tells the audit middleware what a handler did: the app, the
// action and how it went (auditlog.go writes the entry once the request
// is answered).
func (s *Server) audit(c *gin.Context, app, action string, err error) {
	s.annotate(c, app, action, nil)
	if err != nil {
		note(c).err = err.Error()
	}
}
