package promotion

import "time"

// Plan states and plan step states.
const (
	PlanRunning   = "running"
	PlanSucceeded = "succeeded"
	PlanFailed    = "failed"
	PlanCancelled = "cancelled"

	// StepWaiting: not started (an earlier app is not Healthy yet).
	StepWaiting = "waiting"
	// StepPending: its promotion is requested and waits for a rule
	// (approvals, a window, the soak); Rule and Reason say which.
	StepPending = "pending"
	// StepRollingOut: its bundle was written to the target's centre.
	StepRollingOut = "rolling-out"
	// StepHealthy: it runs the bundle, Healthy.
	StepHealthy = "healthy"
	// StepSkipped: the target already ran the bundle.
	StepSkipped = "skipped"
	// StepFailed: refused by a rule that waiting does not change, or its
	// rollout failed; the plan stops.
	StepFailed = "failed"
)

// Plan is a release plan (Zadig's): several apps promoted into one
// environment in a declared order, each waiting for the one before to be
// Healthy there; a failure stops the plan.
type Plan struct {
	Schema int    `json:"schema"`
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	// Env is the environment the apps are promoted into.
	Env   string     `json:"env"`
	Steps []PlanStep `json:"steps"`
	// By is the token name that created it (the requester of its
	// promotions), Via how.
	By        string    `json:"by"`
	Via       string    `json:"via,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	State     string    `json:"state"`
	Message   string    `json:"message,omitempty"`
	EndedAt   time.Time `json:"endedAt,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// PlanStep is one app of a plan.
type PlanStep struct {
	App       string    `json:"app"`
	State     string    `json:"state"`
	Bundle    string    `json:"bundle,omitempty"`
	Version   string    `json:"version,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	StartedAt time.Time `json:"startedAt,omitempty"`
	EndedAt   time.Time `json:"endedAt,omitempty"`
}

func (s PlanStep) done() bool { return s.State == StepHealthy || s.State == StepSkipped }
