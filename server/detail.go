package server

import (
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
)

// AppDetail is the answer of GET /api/v1/apps/{app} (and the "status"
// messages of its event stream): the app's view and what the caller may
// do to it now.
type AppDetail struct {
	engine.AppView
	// Actions says, per action, whether the engine would accept it now
	// and why not; the console disables buttons with the reason.
	Actions []Action `json:"actions"`
}

// Action is one thing an operator can do to an app.
type Action struct {
	// Name is a command (promote, promote-full, pause, resume, abort,
	// rollback) or "set-version" or "edit".
	Name    string `json:"name"`
	Allowed bool   `json:"allowed"`
	// Reason says why it is not allowed ("" when it is).
	Reason string `json:"reason,omitempty"`
}

var commandOrder = []rollout.Command{rollout.CmdPromote, rollout.CmdPromoteFull, rollout.CmdPause,
	rollout.CmdResume, rollout.CmdAbort, rollout.CmdRollback}

// actions asks the planner, which is pure, whether it would accept each
// command in the app's current state (the same rules the engine applies
// on its next pass), and adds what the caller's role and the centre allow.
func (s *Server) actions(c *gin.Context, v engine.AppView, now time.Time) []Action {
	denied := ""
	if role, ok := c.Get(roleKey); ok && !allows(role.(Role), RoleRelease) {
		denied = fmt.Sprintf("token %q is read-only here", actor(c))
		if role.(Role) == RoleRead {
			denied = fmt.Sprintf("token %q is read-only", actor(c))
		}
	}
	out := make([]Action, 0, len(commandOrder)+2)
	for _, name := range []string{"set-version", "edit"} {
		a := Action{Name: name, Allowed: true}
		switch {
		case denied != "":
			a.Reason = denied
		case s.cfg.Writer == nil:
			a.Reason = errReadOnly.Error()
		}
		a.Allowed = a.Reason == ""
		out = append(out, a)
	}
	for _, cmd := range commandOrder {
		a := Action{Name: string(cmd)}
		switch {
		case denied != "":
			a.Reason = denied
		case v.Spec == nil:
			a.Reason = "the app has no valid spec yet"
		default:
			a.Reason = rollout.Plan(rollout.Input{Spec: v.Spec, Status: v.Status.Status, Command: cmd, Now: now}).CommandErr
		}
		a.Allowed = a.Reason == ""
		out = append(out, a)
	}
	return out
}

func (s *Server) detail(c *gin.Context, v engine.AppView) AppDetail {
	return AppDetail{AppView: v, Actions: s.actions(c, v, time.Now())}
}
