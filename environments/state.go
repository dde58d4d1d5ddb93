package environments

import (
	"time"

	"github.com/graylane/graylane/rollout"
)

// Analysis outcomes of a Run.
const (
	// AnalysisPassed: the release ran analysis checks and every check
	// passed.
	AnalysisPassed = "passed"
	// AnalysisFailed: an analysis check failed the release.
	AnalysisFailed = "failed"
	// AnalysisNone: the release ran no analysis (none configured, a first
	// release, a rollback or promote-full skipped it).
	AnalysisNone = "none"
)

// Run is one bundle's run in one environment, as graylane observed it.
type Run struct {
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	// Identity is the environment's release identity of the bundle (the
	// version, or "<version>_cfg<digest>" for a config-only change).
	Identity string `json:"identity"`
	// ConfigDigest is the effective config (after the environment's
	// overlay): what targets hold and instances report.
	ConfigDigest string `json:"configDigest,omitempty"`
	// HealthySince is when the bundle became Healthy here.
	HealthySince time.Time `json:"healthySince"`
	// Until is when another bundle replaced it (zero while it runs).
	Until time.Time `json:"until,omitempty"`
	// Analysis is AnalysisPassed, AnalysisNone (or "" unknown);
	// AnalysisDetail says which checks ran.
	Analysis       string `json:"analysis,omitempty"`
	AnalysisDetail string `json:"analysisDetail,omitempty"`
	// Revision is the release record (records.Revision) that rolled it out.
	Revision int `json:"revision,omitempty"`
}

// Failure is the last attempt of a bundle in an environment that did not
// end Healthy.
type Failure struct {
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	// Analysis is true when an analysis check failed it.
	Analysis bool      `json:"analysis,omitempty"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// MaxRuns bounds State.History.
const MaxRuns = 20

// State is one app in one environment: the bundle its document asks for,
// the bundle running Healthy and since when, the last failure, and the
// bundles that ran here before. graylane keeps it in etcd, following the
// environment's engine.
type State struct {
	Schema int    `json:"schema"`
	Env    string `json:"env"`
	App    string `json:"app"`
	// Desired is the bundle of the document in force, DesiredVersion its
	// code version.
	Desired        string `json:"desired,omitempty"`
	DesiredVersion string `json:"desiredVersion,omitempty"`
	// Phase and Message are the release's, as the engine last reported.
	Phase   rollout.Phase `json:"phase,omitempty"`
	Message string        `json:"message,omitempty"`
	// Current is the bundle running Healthy (nil: none yet).
	Current *Run `json:"current,omitempty"`
	// Failed is the desired bundle's last attempt if it failed.
	Failed *Failure `json:"failed,omitempty"`
	// History lists the bundles that ran Healthy here, newest first
	// (Current included).
	History   []Run     `json:"history,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// RunOf returns the newest run of bundle here (nil: it never ran
// Healthy here).
func (s *State) RunOf(bundle string) *Run {
	if s == nil {
		return nil
	}
	for i := range s.History {
		if s.History[i].Bundle == bundle {
			return &s.History[i]
		}
	}
	return nil
}

// Promotable returns the bundle of s that a downstream environment may
// take: the one its document asks for, running Healthy. When there is
// none, it returns the refusal saying why (rule source or analysis).
func (s *State) Promotable(from string) (*Run, *Refusal) {
	switch {
	case s == nil || s.Desired == "":
		return nil, &Refusal{Rule: RuleSource, Reason: "it has no release in " + from}
	case s.Failed != nil && s.Failed.Bundle == s.Desired && s.Failed.Analysis:
		return nil, &Refusal{Rule: RuleAnalysis, Reason: "analysis failed in " + from + " for " + s.Failed.Version + " (bundle " + Short(s.Failed.Bundle) + "): " + s.Failed.Reason}
	case s.Failed != nil && s.Failed.Bundle == s.Desired:
		return nil, &Refusal{Rule: RuleSource, Reason: s.Failed.Version + " (bundle " + Short(s.Failed.Bundle) + ") failed in " + from + ": " + s.Failed.Reason}
	case s.Current == nil || s.Current.Bundle != s.Desired:
		return nil, &Refusal{Rule: RuleSoak, Reason: s.DesiredVersion + " (bundle " + Short(s.Desired) + ") is still rolling out in " + from + " (" + string(s.Phase) + ")"}
	case s.Phase != rollout.Healthy:
		return nil, &Refusal{Rule: RuleSoak, Reason: s.Current.Version + " is " + string(s.Phase) + " in " + from + ", not Healthy"}
	}
	return s.Current, nil
}
