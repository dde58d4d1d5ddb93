package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
)

// Auditor records who changed what. Every change made through the API —
// by the CLI, curl or the console, which calls the same routes — goes
// through one Auditor, so a persistent audit log (a later Auditor) covers
// them all alike.
type Auditor interface {
	// Audit records one entry. It must not block for long: it runs in the
	// request, after the change was attempted.
	Audit(ctx context.Context, e AuditEntry)
}

// AuditEntry is one audited action.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Actor is the token's name ("anonymous" without tokens).
	Actor string `json:"actor"`
	// Via is "api" (bearer token or none) or "console" (session cookie).
	Via string `json:"via"`
	// App is the app acted on ("" for sign-in and sign-out).
	App    string `json:"app,omitempty"`
	Action string `json:"action"`
	// Outcome is "ok" or "failed: <reason>".
	Outcome string `json:"outcome"`
	Remote  string `json:"remote"`
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
	a.Log.Info("audit", "actor", e.Actor, "via", e.Via, "app", e.App, "action", e.Action, "outcome", e.Outcome, "remote", e.Remote)
	if e.App == "" || a.Broker == nil {
		return
	}
	a.Broker.Publish(e.App, engine.Message{Kind: "event", Event: &engine.EventView{
		Event: rollout.Event{Type: rollout.Normal, Reason: "Audit", Message: fmt.Sprintf("%s: %s (%s)", e.Actor, e.Action, e.Outcome)},
		App:   e.App, Time: e.Time,
	}})
}

// audit records who changed what, through the configured Auditor.
func (s *Server) audit(c *gin.Context, app, action string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "failed: " + err.Error()
	}
	s.cfg.Auditor.Audit(c.Request.Context(), AuditEntry{Time: time.Now(), Actor: actor(c), Via: via(c), App: app,
		Action: action, Outcome: outcome, Remote: c.ClientIP()})
}
