package records

import (
	"time"
)

// Outcomes of a revision.
const (
	// Promoted: the revision's version runs at full size with all traffic.
	Promoted = "promoted"
	// Aborted: an operator aborted it; the stable version kept serving.
	Aborted = "aborted"
	// RolledBack: an operator rolled it back during its rollout.
	RolledBack = "rolled-back"
	// Superseded: a newer desired version (or the stable one) replaced it
	// before it finished.
	Superseded = "superseded"
	// Failed: graylane stopped it (analysis failed, progress deadline);
	// Reason says why.
	Failed = "failed"
)

// Kinds of revision.
const (
	// KindRelease is a new code version or config.
	KindRelease = "release"
	// KindRollback goes back to an earlier version without steps: a
	// rollback to a revision (RollbackTo), the rollback command after a
	// promotion, or the previous version set again within scaleDownDelay.
	KindRollback = "rollback"
	// KindAdopted records the version an app ran when release records
	// started (an app released before this graylane kept revisions).
	KindAdopted = "adopted"
)

// Cause kinds: who or what wrote the document a revision rolls out.
const (
	// CauseAPI: graylane's API (CLI, console, curl), Actor is the token name.
	CauseAPI = "api"
	// CauseCentre: an edit in the config centre behind graylane's API
	// (its console, etcdctl); DocumentVersion is the centre's revision or
	// MD5.
	CauseCentre = "centre"
	// CauseCommand: an operator command (rollback after a promotion,
	// resume retrying a rejected version).
	CauseCommand = "command"
	// CauseGraylane: graylane itself (an adopted revision).
	CauseGraylane = "graylane"
)

// Revision is one numbered release of an app: what was rolled out, why,
// how it went and how it ended.
type Revision struct {
	Schema int    `json:"schema"`
	App    string `json:"app"`
	// Number counts an app's revisions from 1.
	Number int    `json:"number"`
	Kind   string `json:"kind"`
	// Version is the code version.
	Version string `json:"version"`
	// Identity is the release identity: the version, or
	// "<version>_cfg<digest>" for a config-only change (configrelease).
	Identity string `json:"identity"`
	// Config is the bound config bundle (nil without a config section);
	// its files' contents are in the config history under Config.Identity.
	Config *ConfigRef `json:"config,omitempty"`
	// SpecDigest identifies the spec as released.
	SpecDigest string `json:"specDigest"`
	// Spec is the spec as released (YAML), config file contents replaced
	// by their digests and credential-looking values redacted; at most
	// MaxSpecBytes.
	Spec string `json:"spec,omitempty"`
	// SpecDiff is the unified diff of Spec against the previous revision's.
	SpecDiff string `json:"specDiff,omitempty"`
	Cause    Cause  `json:"cause"`
	// RollbackTo is the revision a rollback restored (KindRollback by
	// --to-revision).
	RollbackTo int `json:"rollbackTo,omitempty"`
	// Replaces is the revision that was serving when this one started.
	Replaces int    `json:"replaces,omitempty"`
	Strategy string `json:"strategy"`
	// Fast is set when the revision rolled out without steps.
	Fast     bool         `json:"fast,omitempty"`
	Steps    []StepRecord `json:"steps,omitempty"`
	Verdicts []Verdict    `json:"verdicts,omitempty"`
	// SeenAt is when graylane received the document asking for it.
	SeenAt    time.Time `json:"seenAt"`
	StartedAt time.Time `json:"startedAt"`
	// EndedAt is when its outcome was decided (zero while in progress).
	EndedAt time.Time `json:"endedAt,omitempty"`
	// FailedAt is when a failure was detected (abort, rollback, analysis,
	// deadline).
	FailedAt time.Time `json:"failedAt,omitempty"`
	// RestoredAt is when, after a failure, all traffic was back on the
	// stable version.
	RestoredAt time.Time `json:"restoredAt,omitempty"`
	// Outcome is "" while in progress, else one of the outcomes.
	Outcome string `json:"outcome,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Took is how long the revision took: from the document seen to its
// outcome (or to now while in progress).
func (r *Revision) Took(now time.Time) time.Duration {
	start := r.SeenAt
	if start.IsZero() || start.After(r.StartedAt) {
		start = r.StartedAt
	}
	end := r.EndedAt
	if end.IsZero() {
		end = now
	}
	return end.Sub(start)
}

// ConfigRef is the config bundle bound to a revision.
type ConfigRef struct {
	// Identity names the config history entry holding the files.
	Identity string    `json:"identity"`
	Digest   string    `json:"digest"`
	Files    []FileRef `json:"files"`
}

// FileRef is one bound config file, without its content.
type FileRef struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	SHA256 string `json:"sha256"`
	Bytes  int    `json:"bytes"`
}

// Cause says who or what asked for a revision.
type Cause struct {
	Kind string `json:"kind"`
	// Actor is the token name (api, command), "" for a centre edit.
	Actor string `json:"actor,omitempty"`
	// Via is how the API was reached: api or console.
	Via string `json:"via,omitempty"`
	// Action is what was asked: apply, set-version, rollback, resume...
	Action string `json:"action,omitempty"`
	// Centre names the config centre the document came from.
	Centre string `json:"centre,omitempty"`
	// DocumentVersion is the centre's version of the document (etcd mod
	// revision, Nacos or Apollo MD5); DocumentRevision graylane's watch
	// revision of it.
	DocumentVersion  string `json:"documentVersion,omitempty"`
	DocumentRevision int64  `json:"documentRevision,omitempty"`
	// RollbackTo is the revision a rollback intent restores.
	RollbackTo int `json:"rollbackTo,omitempty"`
}

// String is the cause in a few words ("alice (api)", "centre edit (etcd
// revision 42)").
func (c Cause) String() string {
	switch c.Kind {
	case CauseCentre:
		s := "centre edit"
		if c.DocumentVersion != "" {
			s += " (" + c.Centre + " " + c.DocumentVersion + ")"
		}
		return s
	case "":
		return "unknown"
	case CauseGraylane:
		return "graylane"
	}
	s := c.Actor
	if s == "" {
		s = "anonymous"
	}
	if c.Action != "" {
		s += " (" + c.Action + ")"
	}
	return s
}

// StepRecord is one strategy step of a revision.
type StepRecord struct {
	Index     int       `json:"index"`
	Name      string    `json:"name"`
	StartedAt time.Time `json:"startedAt"`
	EndedAt   time.Time `json:"endedAt,omitempty"`
}

// Verdict is what an analysis check said about a revision.
type Verdict struct {
	Check    string    `json:"check"`
	Runs     int       `json:"runs"`
	Failures int       `json:"failures"`
	OK       bool      `json:"ok"`
	Message  string    `json:"message,omitempty"`
	At       time.Time `json:"at"`
}

// Bounds that keep a revision small.
const (
	MaxSpecBytes     = 64 << 10
	MaxSpecDiffLines = 200
	maxSteps         = 64
	maxVerdicts      = 20
	maxReason        = 1000
)

// Summary is the part of a revision release statistics need, kept in a
// time-ordered index so a 30-day window is one range read.
type Summary struct {
	Schema     int       `json:"schema"`
	App        string    `json:"app"`
	Number     int       `json:"number"`
	Kind       string    `json:"kind"`
	Version    string    `json:"version"`
	Replaces   int       `json:"replaces,omitempty"`
	RollbackTo int       `json:"rollbackTo,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	SeenAt     time.Time `json:"seenAt"`
	StartedAt  time.Time `json:"startedAt"`
	EndedAt    time.Time `json:"endedAt,omitempty"`
	FailedAt   time.Time `json:"failedAt,omitempty"`
	RestoredAt time.Time `json:"restoredAt,omitempty"`
}

// Summarize returns the statistics summary of r.
func (r *Revision) Summarize() Summary {
	return Summary{Schema: SchemaVersion, App: r.App, Number: r.Number, Kind: r.Kind, Version: r.Version,
		Replaces: r.Replaces, RollbackTo: r.RollbackTo, Outcome: r.Outcome, SeenAt: r.SeenAt, StartedAt: r.StartedAt,
		EndedAt: r.EndedAt, FailedAt: r.FailedAt, RestoredAt: r.RestoredAt}
}
