package engine

import (
	"maps"
	"sort"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/rollout"
)

// Summary is one app's row in the apps list (GET /api/v1/apps, the
// console's list page, `graylane apps`): small enough that 20,000 of them
// are a few megabytes, complete enough to filter and draw a row without
// loading the app.
type Summary struct {
	App string `json:"app"`
	// Version is the desired version (the spec in force).
	Version       string         `json:"version"`
	Phase         rollout.Phase  `json:"phase"`
	StableVersion string         `json:"stableVersion"`
	CanaryVersion string         `json:"canaryVersion,omitempty"`
	Step          int            `json:"step"`
	TotalSteps    int            `json:"totalSteps"`
	Weights       map[string]int `json:"weights,omitempty"`
	// Ready and Instances count every instance; Versions splits them by
	// version, newest rollout first (canary, then stable, then others).
	Ready     int            `json:"ready"`
	Instances int            `json:"instances"`
	Versions  []VersionCount `json:"versions,omitempty"`
	// Strategy and Backend are the spec's strategy and backend types.
	Strategy string `json:"strategy,omitempty"`
	Backend  string `json:"backend,omitempty"`
	// Source names the config centre and whether it answers.
	Source      string `json:"source"`
	SourceReady bool   `json:"sourceReady"`
	Message     string `json:"message,omitempty"`
	SpecError   string `json:"specError,omitempty"`
	LastError   string `json:"lastError,omitempty"`
	// Drift counts config placements changed behind graylane's back.
	Drift int `json:"drift,omitempty"`
	// Attention lists why the app needs a human (Attention* constants);
	// empty when it does not.
	Attention []string `json:"attention,omitempty"`
	// UpdatedAt is when the app's status last changed.
	UpdatedAt time.Time `json:"updatedAt"`
	// Driver names the replica driving the app (ha.mode shard and leader;
	// empty for a lone graylane).
	Driver string `json:"driver,omitempty"`
}

// VersionCount is the instances of one version.
type VersionCount struct {
	Version string `json:"version"`
	Ready   int    `json:"ready"`
	Total   int    `json:"total"`
}

// Reasons an app needs attention (Summary.Attention, the list's
// attention filter).
const (
	// AttentionPaused: Paused, waiting for a human (pause command, a pause
	// step without a duration, a blue-green preview).
	AttentionPaused = "paused"
	// AttentionDegraded: the release missed its deadline or was aborted.
	AttentionDegraded = "degraded"
	// AttentionRolledBack: the desired version was rolled back.
	AttentionRolledBack = "rolledBack"
	// AttentionInvalidSpec: the newest document was rejected.
	AttentionInvalidSpec = "invalidSpec"
	// AttentionConfigDrift: bound config was changed behind graylane's back.
	AttentionConfigDrift = "configDrift"
	// AttentionCentreDown: the config centre does not answer.
	AttentionCentreDown = "centreDown"
	// AttentionError: the last pass over the app failed.
	AttentionError = "error"
)

// AttentionReasons lists every reason, in the order the console shows them.
var AttentionReasons = []string{AttentionPaused, AttentionDegraded, AttentionRolledBack,
	AttentionInvalidSpec, AttentionConfigDrift, AttentionCentreDown, AttentionError}

// SummaryOf condenses an app's view into its list row.
func SummaryOf(v AppView) Summary {
	st := v.Status
	s := Summary{
		App: v.App, Phase: st.Phase, StableVersion: st.StableVersion, CanaryVersion: st.CanaryVersion,
		Step: st.Step, TotalSteps: st.TotalSteps, Instances: len(st.Instances),
		Source: st.Source.Name, SourceReady: st.Source.Ready, Message: st.Message,
		LastError: st.LastError, UpdatedAt: st.UpdatedAt,
	}
	if len(st.Weights) > 0 {
		s.Weights = maps.Clone(st.Weights)
	}
	if v.Spec != nil {
		s.Version = v.Spec.Version
		s.Strategy = string(v.Spec.Strategy.Type)
		s.Backend = v.Spec.Backend.Type
	}
	if st.SpecError != nil {
		s.SpecError = st.SpecError.Error
	}
	if st.Config != nil {
		s.Drift = len(st.Config.Drift)
	}
	if len(st.Instances) > 0 || len(st.Versions) == 0 {
		s.Versions = VersionCounts(st.Instances, st.CanaryVersion, st.StableVersion)
	} else {
		s.Versions = st.Versions // counted by the replica driving the app
	}
	for _, c := range s.Versions {
		s.Ready += c.Ready
	}
	s.Instances = 0
	for _, c := range s.Versions {
		s.Instances += c.Total
	}
	s.Driver = st.Driver
	s.Attention = attentionOf(s)
	return s
}

// VersionCounts counts instances per version, newest rollout first
// (canary, then stable, then the others by name).
func VersionCounts(insts []adapters.Instance, canary, stable string) []VersionCount {
	per := map[string]*VersionCount{}
	for _, in := range insts {
		c := per[in.Version]
		if c == nil {
			c = &VersionCount{Version: in.Version}
			per[in.Version] = c
		}
		c.Total++
		if in.Ready {
			c.Ready++
		}
	}
	rank := func(ver string) int {
		switch ver {
		case canary:
			return 0
		case stable:
			return 1
		}
		return 2
	}
	out := make([]VersionCount, 0, len(per))
	for _, c := range per {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank(a.Version) != rank(b.Version) {
			return rank(a.Version) < rank(b.Version)
		}
		return a.Version < b.Version
	})
	return out
}

// attentionOf lists why s needs a human.
func attentionOf(s Summary) []string {
	var out []string
	switch s.Phase {
	case rollout.Paused:
		out = append(out, AttentionPaused)
	case rollout.Degraded:
		out = append(out, AttentionDegraded)
	case rollout.RolledBack:
		out = append(out, AttentionRolledBack)
	}
	if s.SpecError != "" {
		out = append(out, AttentionInvalidSpec)
	}
	if s.Drift > 0 {
		out = append(out, AttentionConfigDrift)
	}
	if !s.SourceReady && s.Source != "" {
		out = append(out, AttentionCentreDown)
	}
	if s.LastError != "" {
		out = append(out, AttentionError)
	}
	return out
}

// withSource returns s as seen while the config centre's health is
// ready: the centre's state is the engine's, not the app's, so it is
// applied when the summary is read rather than when it was stored.
func (s Summary) withSource(ready bool) Summary {
	if s.SourceReady == ready || s.Source == "" {
		return s
	}
	s.SourceReady = ready
	s.Attention = attentionOf(s)
	return s
}

// viewRuns is how many recent runs of each analysis check an app's view
// carries (enough for the console's chart).
const viewRuns = 20
