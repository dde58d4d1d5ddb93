package hooks

import (
	"time"

	"github.com/graylane/graylane/rollout"
)

// SchemaVersion is the version of the records this package writes.
const SchemaVersion = 1

// PostRelease is the kind of post-release hooks (the gating kinds are
// rollout.HookPreRelease and rollout.HookConfirmPromotion).
const PostRelease = "postRelease"

// Outcome is one run of one hook.
type Outcome struct {
	Hook string `json:"hook"`
	// Attempt counts the runs of the kind for the bundle (resume retries).
	Attempt int  `json:"attempt"`
	OK      bool `json:"ok"`
	// Status is "exit 0", "exit 3", "HTTP 200", "timeout after 5m0s", or
	// the error that kept it from running.
	Status    string    `json:"status"`
	Output    string    `json:"output,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	EndedAt   time.Time `json:"endedAt"`
}

// Kind is the state of one kind of hook for one bundle.
type Kind struct {
	// State is rollout.HookRunning, HookPassed or HookFailed.
	State    string    `json:"state"`
	Attempt  int       `json:"attempt"`
	Message  string    `json:"message,omitempty"`
	Outcomes []Outcome `json:"outcomes,omitempty"`
	// Owner is the graylane process running it (a restarted one starts it again).
	Owner     string    `json:"owner,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	EndedAt   time.Time `json:"endedAt,omitempty"`
}

// Record is the hooks of one bundle of one app in one environment.
type Record struct {
	Schema   int    `json:"schema"`
	Env      string `json:"env,omitempty"`
	App      string `json:"app"`
	Bundle   string `json:"bundle"`
	Version  string `json:"version"`
	Identity string `json:"identity"`
	// Kinds by kind (preRelease, confirmPromotion, postRelease).
	Kinds     map[string]*Kind `json:"kinds"`
	UpdatedAt time.Time        `json:"updatedAt"`
}

// State returns the state of kind ("" when it never ran).
func (r *Record) State(kind string) string {
	if r == nil || r.Kinds[kind] == nil {
		return rollout.HookIdle
	}
	return r.Kinds[kind].State
}

// MaxOutcomes bounds Kind.Outcomes (the newest kept).
const MaxOutcomes = 30

// MaxOutput bounds Outcome.Output.
const MaxOutput = 16 << 10
