package environments

import (
	"fmt"
	"strings"
	"time"
)

// Rules a promotion may be refused by, in the order Evaluate checks them.
// Each refusal names one; the API and CLI show it.
const (
	// RuleFrozen: the target environment is frozen.
	RuleFrozen = "frozen"
	// RuleSource: the source environment has nothing to promote (no
	// release there, or its release failed for another reason than
	// analysis).
	RuleSource = "source"
	// RuleAnalysis: the bundle's release failed analysis upstream.
	RuleAnalysis = "analysis"
	// RuleUpToDate: the target already runs (or is rolling out) the bundle.
	RuleUpToDate = "up-to-date"
	// RuleSoak: the bundle has not been Healthy in the source environment
	// for the target's soak (or is still rolling out there).
	RuleSoak = "soak"
	// RulePreProduction: the bundle has not passed analysis in an
	// environment of the target's requireAnalysis.
	RulePreProduction = "pre-production"
	// RuleApprovals: too few valid approvals of the bundle.
	RuleApprovals = "approvals"
	// RuleWindow: outside the target's windows.
	RuleWindow = "window"
	// RuleSelfApproval: the requester approved their own promotion.
	RuleSelfApproval = "self-approval"
	// RuleNoRequest: an approval with no promotion requested.
	RuleNoRequest = "no-request"
	// RuleScope: the caller's token is not scoped to the environment or app.
	RuleScope = "scope"
	// RuleRole: the caller's role in the environment does not allow it.
	RuleRole = "role"
	// RulePlan: a release plan stopped.
	RulePlan = "plan"
)

// Refusal is one rule that does not allow a promotion, and why.
type Refusal struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

func (r Refusal) String() string { return r.Rule + ": " + r.Reason }

// Input is what Evaluate looks at. It is pure data: Evaluate does no I/O
// and reads no clock.
type Input struct {
	// Target is the environment promoted into; Source the one it takes
	// bundles from (Target.From).
	Target *Environment
	// SourceState is the app in the source environment, TargetState in
	// the target (nil: none there).
	SourceState, TargetState *State
	// Upstream holds the app's state in the environments of
	// Target.RequireAnalysis, by name.
	Upstream map[string]*State
	// Freeze is the target's freeze, nil when it is not frozen.
	Freeze *Freeze
	// Request is the pending request into the target (nil: none).
	Request *Request
	// Bundle, if set, is the bundle asked for; it must be the source's
	// promotable one.
	Bundle string
	Now    time.Time
}

// Verdict is Evaluate's answer.
type Verdict struct {
	// Allowed is true when no rule refuses: the bundle may be written to
	// the target's centre now.
	Allowed bool `json:"allowed"`
	// Refusals lists every rule that refuses, in Evaluate's order; the
	// first is the one to show.
	Refusals []Refusal `json:"refusals,omitempty"`
	// Candidate is the bundle that would be promoted (nil: none).
	Candidate *Run `json:"candidate,omitempty"`
	// Approvals counts the valid approvals of the candidate and Needed
	// how many the target asks for; ApprovedBy names them.
	Approvals  int      `json:"approvals"`
	Needed     int      `json:"needed"`
	ApprovedBy []string `json:"approvedBy,omitempty"`
	// RetryAt is the earliest time a time rule (soak, window) may allow
	// it (zero: no time rule refuses, or it never will).
	RetryAt time.Time `json:"retryAt,omitempty"`
}

// Rule is the first refusing rule ("" when allowed).
func (v Verdict) Rule() string {
	if len(v.Refusals) == 0 {
		return ""
	}
	return v.Refusals[0].Rule
}

// Reason is the first refusal's reason.
func (v Verdict) Reason() string {
	if len(v.Refusals) == 0 {
		return ""
	}
	return v.Refusals[0].Reason
}

// Refuses reports whether rule is among the refusals.
func (v Verdict) Refuses(rule string) bool {
	for _, r := range v.Refusals {
		if r.Rule == rule {
			return true
		}
	}
	return false
}

func (v Verdict) String() string {
	if v.Allowed {
		return "allowed"
	}
	s := make([]string, len(v.Refusals))
	for i, r := range v.Refusals {
		s[i] = r.String()
	}
	return strings.Join(s, "; ")
}

// Evaluate decides whether the source environment's bundle may enter the
// target now. The rules, in order (each refusal is listed; the first is
// the one shown):
//
//	frozen          the target is frozen
//	source/analysis the source has a bundle running Healthy that its
//	                document asks for (not rolling out, not failed; a
//	                failed analysis is refused by rule analysis)
//	up-to-date      the target does not already ask for that bundle
//	soak            it has been Healthy in the source for Target.Soak:
//	                Now - HealthySince >= Soak
//	pre-production  it passed analysis in every Target.RequireAnalysis
//	approvals       at least Target.Approvals (or the request's
//	                MinApprovals) valid approvals of that bundle
//	                (distinct names, not the requester's, not expired:
//	                Request.Valid)
//	window          Now is inside one of Target's windows
//
// With Bundle set, a different promotable bundle is refused (rule soak:
// the bundle asked for is not the one running Healthy in the source).
func Evaluate(in Input) Verdict {
	t := in.Target
	v := Verdict{Needed: t.Approvals}
	refuse := func(rule, format string, a ...any) {
		v.Refusals = append(v.Refusals, Refusal{Rule: rule, Reason: fmt.Sprintf(format, a...)})
	}
	retry := func(at time.Time) {
		if !at.IsZero() && (v.RetryAt.IsZero() || at.Before(v.RetryAt)) {
			v.RetryAt = at
		}
	}
	if in.Freeze != nil {
		refuse(RuleFrozen, "%s is frozen by %s since %s: %s", t.Name, in.Freeze.By, in.Freeze.At.UTC().Format(time.RFC3339), in.Freeze.Reason)
	}
	cand, why := in.SourceState.Promotable(t.From)
	if why != nil {
		v.Refusals = append(v.Refusals, *why)
		return v // the other rules are about a bundle
	}
	if in.Bundle != "" && in.Bundle != cand.Bundle {
		refuse(RuleSoak, "bundle %s is not the one running Healthy in %s (%s, bundle %s)", Short(in.Bundle), t.From, cand.Version, Short(cand.Bundle))
		return v
	}
	v.Candidate = cand
	if ts := in.TargetState; ts != nil && ts.Desired == cand.Bundle {
		what := "runs"
		if ts.Current == nil || ts.Current.Bundle != cand.Bundle {
			what = "is rolling out"
		}
		refuse(RuleUpToDate, "%s already %s %s (bundle %s)", t.Name, what, cand.Version, Short(cand.Bundle))
	}
	if soaked := cand.HealthySince.Add(t.Soak.Duration); in.Now.Before(soaked) {
		refuse(RuleSoak, "%s has been Healthy in %s for %s; %s needs %s (soaked at %s)", cand.Version, t.From,
			in.Now.Sub(cand.HealthySince).Round(time.Second), t.Name, t.Soak.Duration, soaked.UTC().Format(time.RFC3339))
		retry(soaked)
	}
	for _, env := range t.RequireAnalysis {
		r := in.Upstream[env].RunOf(cand.Bundle)
		switch {
		case r == nil:
			refuse(RulePreProduction, "%s (bundle %s) has not run in %s; %s accepts only bundles that passed analysis there", cand.Version, Short(cand.Bundle), env, t.Name)
		case r.Analysis != AnalysisPassed:
			detail := "it ran no analysis there"
			if r.AnalysisDetail != "" {
				detail = r.AnalysisDetail
			}
			refuse(RulePreProduction, "%s (bundle %s) has not passed analysis in %s (%s); %s accepts only bundles that did", cand.Version, Short(cand.Bundle), env, detail, t.Name)
		}
	}
	if r := in.Request; r != nil && r.Bundle == cand.Bundle && r.MinApprovals > v.Needed {
		v.Needed = r.MinApprovals
	}
	valid := in.Request.Valid(cand.Bundle, in.Now)
	v.Approvals = len(valid)
	for _, a := range valid {
		v.ApprovedBy = append(v.ApprovedBy, a.By)
	}
	if v.Approvals < v.Needed {
		msg := fmt.Sprintf("%d of %d approvals of %s (bundle %s) into %s", v.Approvals, v.Needed, cand.Version, Short(cand.Bundle), t.Name)
		if len(valid) > 0 {
			msg += " (approved by " + strings.Join(v.ApprovedBy, ", ") + ")"
		}
		if in.Request == nil || in.Request.Bundle != cand.Bundle {
			msg += "; request it with promote, then approvers other than the requester approve"
		} else {
			msg += "; requested by " + in.Request.RequestedBy + ", who cannot approve it"
		}
		if n := in.Request.Stale(cand.Bundle); n > 0 {
			msg += fmt.Sprintf("; %d approval(s) of an earlier bundle no longer count", n)
		}
		refuse(RuleApprovals, "%s", msg)
	}
	if ws := t.ParsedWindows(); !ws.Open(in.Now) {
		msg := fmt.Sprintf("%s is outside the windows of %s (%s)", in.Now.UTC().Format(time.RFC3339), t.Name, ws)
		if next, ok := ws.Next(in.Now); ok {
			msg += "; next opens " + next.Format("Mon 2006-01-02 15:04 MST")
			retry(next)
		}
		refuse(RuleWindow, "%s", msg)
	}
	v.Allowed = len(v.Refusals) == 0
	return v
}

// CheckApproval decides whether by may approve req's bundle now: there
// must be a pending request, and by must not be its requester.
func CheckApproval(req *Request, by string) *Refusal {
	switch {
	case req == nil || req.State != Pending:
		return &Refusal{Rule: RuleNoRequest, Reason: "no promotion is requested; request it with promote first"}
	case req.RequestedBy == by:
		return &Refusal{Rule: RuleSelfApproval, Reason: by + " requested this promotion and cannot approve it; approvals come from other token names"}
	}
	return nil
}
