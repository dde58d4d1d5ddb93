package rollout

import (
	"time"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Phase is the coarse state of an app's release, as shown to users.
type Phase string

// Phases. They follow Argo Rollouts' vocabulary.
const (
	// Progressing: a version is being rolled out or instances are converging.
	Progressing Phase = "Progressing"
	// Paused: waiting for a human (pause command, a pause step without a
	// duration, or a blue-green preview without auto-promotion).
	Paused Phase = "Paused"
	// Healthy: the desired version runs at full size with all traffic.
	Healthy Phase = "Healthy"
	// Degraded: the release made no progress within its deadline, or it was
	// aborted; the stable version keeps serving.
	Degraded Phase = "Degraded"
	// RolledBack: the desired version was rolled back (by command or by the
	// progress deadline with autoRollback) and is not attempted again until
	// the desired version changes or the release is resumed.
	RolledBack Phase = "RolledBack"
)

// Command is an operator's instruction to a release.
type Command string

// Commands.
const (
	CmdNone        Command = ""
	CmdPromote     Command = "promote"      // skip the current step (or switch a blue-green)
	CmdPromoteFull Command = "promote-full" // skip every remaining step
	CmdPause       Command = "pause"        // hold the release where it is
	CmdResume      Command = "resume"       // undo pause; continue a pause step; retry an aborted release
	CmdAbort       Command = "abort"        // send traffic back to stable, scale the new version away
	CmdRollback    Command = "rollback"     // go back to the previous version
)

// ParseCommand validates a command name.
func ParseCommand(s string) (Command, bool) {
	switch c := Command(s); c {
	case CmdPromote, CmdPromoteFull, CmdPause, CmdResume, CmdAbort, CmdRollback:
		return c, true
	}
	return CmdNone, false
}

// Status is an app's persisted release state. The planner reads it and
// returns the next one; the engine stores it with compare-and-swap.
type Status struct {
	Phase   Phase  `json:"phase"`
	Message string `json:"message,omitempty"`

	// StableVersion is the version that has been fully rolled out.
	StableVersion string `json:"stableVersion,omitempty"`
	// CanaryVersion is the version being rolled out ("" when none). The
	// name is Argo's; rolling and blue-green use it for the new version too.
	CanaryVersion string `json:"canaryVersion,omitempty"`
	// Step is the index of the current canary step; len(steps) means
	// promoting. Blue-green: 0 while the new version comes up, 1 once it is
	// ready for preview.
	Step int `json:"step"`
	// StepStartedAt is when the current step began (pause timers).
	StepStartedAt time.Time `json:"stepStartedAt,omitempty"`
	// CanaryScale is the setCanaryScale in force, if any.
	CanaryScale *spec.CanaryScale `json:"canaryScale,omitempty"`
	// Paused is set by the pause command and cleared by resume.
	Paused bool `json:"paused,omitempty"`
	// PromoteFull skips the remaining steps of the current rollout.
	PromoteFull bool `json:"promoteFull,omitempty"`
	// Rollback marks a rollout that skips its strategy: a rollback to a
	// version that is still running (the rollback command after a
	// promotion, or the desired version set back to the previous one
	// within scaleDownDelay). Records written before it had this name
	// carry it as "fast" (version 0 → 1 of engine.RecordKind renames it).
	Rollback bool `json:"rollback,omitempty"`

	// PreviousVersion is the stable version before the last promotion.
	PreviousVersion string `json:"previousVersion,omitempty"`
	// ScaleDownAt is when the previous version is scaled to zero; until
	// then a rollback only moves traffic.
	ScaleDownAt time.Time `json:"scaleDownAt,omitempty"`
	// RejectedVersion was aborted or rolled back; it is not attempted again
	// until the desired version changes or resume retries it.
	RejectedVersion string `json:"rejectedVersion,omitempty"`

	// Weights is the traffic split graylane wants, by version.
	Weights map[string]int `json:"weights,omitempty"`
	// Preview is the version reachable by header for preview.
	Preview string `json:"preview,omitempty"`

	// LastProgressAt and ProgressMark track the progress deadline: the mark
	// summarises what counts as progress; when it changes, the clock resets.
	LastProgressAt time.Time `json:"lastProgressAt,omitempty"`
	ProgressMark   string    `json:"progressMark,omitempty"`
	// DeadlineExceeded is set when the progress deadline passed.
	DeadlineExceeded bool `json:"deadlineExceeded,omitempty"`

	// History lists the last releases and how they ended, newest first.
	History []HistoryEntry `json:"history,omitempty"`
}

// HistoryEntry records one release outcome.
type HistoryEntry struct {
	Version string    `json:"version"`
	Outcome string    `json:"outcome"` // promoted, aborted, rolled-back, superseded
	At      time.Time `json:"at"`
}

// MaxHistory bounds Status.History.
const MaxHistory = 20

// Count is the number of instances of one version.
type Count struct {
	Total int `json:"total"`
	Ready int `json:"ready"`
}

// Observed is what the backend and router report right now.
type Observed struct {
	// Versions maps each version with instances to its counts.
	Versions map[string]Count
	// Router reports whether the app has a traffic router. Without one,
	// traffic follows the instance counts and Split is ignored.
	Router bool
	// Split is the router's current split.
	Split traffic.Split
	// Stalled maps versions whose backend reports they cannot progress
	// (adapters.MetaStalled) to the reason. The version being rolled out
	// is then past its progress deadline at once.
	Stalled map[string]string
	// ApplyError is why the last Backend.Apply or TrafficRouter.SetWeights
	// failed ("" when it worked): the backend did not put the desired state
	// in place (a Service it may not create, a deploy system answering
	// 500). An app whose desired state is not in place is not Healthy: it
	// is Degraded with the error, until an apply works again.
	ApplyError string
}

// CheckRun is one run of an analysis check.
type CheckRun struct {
	At      time.Time `json:"at"`
	OK      bool      `json:"ok"`
	Message string    `json:"message,omitempty"`
	// Value is the number the check measured, when it measures one
	// (jsonPath, Prometheus), for charts against the thresholds.
	Value *float64 `json:"value,omitempty"`
}

// CheckResult is the recent history of one analysis check against the
// version being rolled out, oldest run first.
type CheckResult struct {
	Version string     `json:"version"`
	Runs    []CheckRun `json:"runs"`
}

// Input is everything Plan looks at. Plan does no I/O and reads no clock.
type Input struct {
	Spec     *spec.Release
	Status   Status
	Observed Observed
	Command  Command
	Now      time.Time
	// Checks are the analysis results by check name (strategy.analysis).
	Checks map[string]CheckResult
	// Config is the state of the config bound to each release identity
	// (config-in-step, see config.go); nil when the app has no config
	// section, and then nothing is gated.
	Config *ConfigGate
	// RollbackIntent says that the desired version was written by a
	// rollback to an earlier revision (an intent record the API saved
	// before it wrote the centre). With the spec's rollback.mode fast (the
	// default) a rollout toward it starts as a rollback: no steps, no
	// analysis; traffic moves once the target is ready (it is scaled up
	// first if it no longer runs).
	RollbackIntent bool
	// Hooks is the state of the desired release's hooks (hooks.go); nil
	// when the app has none, and then nothing is gated.
	Hooks *HookGate
	// Frozen, when set, is why the app's environment is frozen: no new
	// release starts (hooks.go); rollouts in progress, rollbacks and
	// commands carry on.
	Frozen string
}

// EventType says whether an event is routine or a problem.
type EventType string

// Event types.
const (
	Normal  EventType = "Normal"
	Warning EventType = "Warning"
)

// Event is something worth telling the operator about.
type Event struct {
	Type    EventType `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}

// Decision is what Plan wants done.
type Decision struct {
	// Status is the next status to persist.
	Status Status
	// Replicas is the complete desired instance count per version; the
	// engine passes it to Backend.Apply first.
	Replicas traffic.Replicas
	// Split is the desired traffic split, applied after Replicas; nil when
	// the app has no router or no version is ready to take traffic.
	Split *traffic.Split
	// RequeueAfter asks for another pass after this long even if nothing is
	// observed to change (pause timers, scale-down delays, deadlines).
	// Zero means no timer is pending.
	RequeueAfter time.Duration
	// Events happened in this pass.
	Events []Event
	// CommandErr is set when the command could not be applied in the
	// current state (for example promote with nothing in progress).
	CommandErr string
	// StartHooks lists the kinds of release hooks (HookPreRelease,
	// HookConfirmPromotion) the release waits on and that have not
	// started: the engine starts them for Input.Hooks.Identity.
	StartHooks []string
	// RetryHooks lists the kinds of failed hooks the resume command
	// retries: the engine forgets their failure and starts them again.
	RetryHooks []string
}
