package environments

import (
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// A Monday inside prod's window (10:00-16:00 Shanghai = 02:00-08:00 UTC).
var monday = time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)

func prodEnv(t *testing.T) *Environment {
	t.Helper()
	set, err := Parse([]any{
		map[string]any{"name": "test"},
		map[string]any{"name": "pre", "from": "test"},
		map[string]any{"name": "prod", "from": "test", "soak": "1h", "approvals": 2, "windows": []any{"Mon-Thu 10:00-16:00 Asia/Shanghai"}},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := set.Get("prod")
	return e
}

func healthy(env, bundle, version string, since time.Time) *State {
	r := Run{Bundle: bundle, Version: version, Identity: version, HealthySince: since, Analysis: AnalysisPassed}
	return &State{Env: env, App: "shop", Desired: bundle, DesiredVersion: version, Phase: rollout.Healthy, Current: &r, History: []Run{r}}
}

func approved(bundle, requester string, by ...string) *Request {
	r := &Request{Env: "prod", App: "shop", From: "test", Bundle: bundle, RequestedBy: requester, State: Pending}
	for _, b := range by {
		r.Approvals = append(r.Approvals, Approval{By: b, Bundle: bundle, At: monday.Add(-time.Hour), Expires: monday.Add(23 * time.Hour)})
	}
	return r
}

// Each row changes one thing of an input every rule allows, and names
// the rule that must refuse it (first).
func TestEvaluateRules(t *testing.T) {
	prod := prodEnv(t)
	ok := func() Input {
		return Input{Target: prod, SourceState: healthy("test", "b2", "v2", monday.Add(-2*time.Hour)),
			TargetState: healthy("prod", "b1", "v1", monday.Add(-48*time.Hour)),
			Request:     approved("b2", "alice", "bob", "carol"), Now: monday}
	}
	if v := Evaluate(ok()); !v.Allowed || v.Candidate.Bundle != "b2" || v.Approvals != 2 || strings.Join(v.ApprovedBy, ",") != "bob,carol" {
		t.Fatalf("the allowed input was refused: %v (%+v)", v, v)
	}
	for _, tc := range []struct {
		name, rule, says string
		change           func(*Input)
	}{
		{"frozen", RuleFrozen, "change freeze for the holidays", func(in *Input) {
			in.Freeze = &Freeze{Env: "prod", Reason: "change freeze for the holidays", By: "ops", At: monday}
		}},
		{"not soaked", RuleSoak, "needs 1h0m0s", func(in *Input) { in.SourceState = healthy("test", "b2", "v2", monday.Add(-10*time.Minute)) }},
		{"still rolling out", RuleSoak, "still rolling out in test", func(in *Input) {
			in.SourceState.Desired, in.SourceState.DesiredVersion, in.SourceState.Phase = "b3", "v3", rollout.Progressing
		}},
		{"one approval of two", RuleApprovals, "1 of 2 approvals", func(in *Input) { in.Request = approved("b2", "alice", "bob") }},
		{"self approval does not count", RuleApprovals, "requested by alice, who cannot approve it", func(in *Input) { in.Request = approved("b2", "alice", "alice", "bob") }},
		{"same approver twice counts once", RuleApprovals, "1 of 2", func(in *Input) { in.Request = approved("b2", "alice", "bob", "bob") }},
		{"expired approval", RuleApprovals, "1 of 2", func(in *Input) { in.Request.Approvals[0].Expires = monday }},
		{"approvals of an earlier bundle", RuleApprovals, "2 approval(s) of an earlier bundle no longer count", func(in *Input) { in.Request = approved("b1", "alice", "bob", "carol") }},
		{"outside the window", RuleWindow, "next opens Tue 2026-12-08 10:00 CST", func(in *Input) { in.Now = monday.Add(6 * time.Hour) }},
		{"analysis failed upstream", RuleAnalysis, "error-rate over 1%", func(in *Input) {
			in.SourceState.Desired, in.SourceState.DesiredVersion, in.SourceState.Phase = "b3", "v3", rollout.RolledBack
			in.SourceState.Failed = &Failure{Bundle: "b3", Version: "v3", Analysis: true, Reason: "error-rate over 1%"}
		}},
		{"nothing upstream", RuleSource, "no release in test", func(in *Input) { in.SourceState = nil }},
		{"already there", RuleUpToDate, "prod already runs v2", func(in *Input) { in.TargetState = healthy("prod", "b2", "v2", monday) }},
		{"another bundle asked for", RuleSoak, "bundle b9 is not the one running Healthy in test", func(in *Input) { in.Bundle = "b9" }},
	} {
		in := ok()
		tc.change(&in)
		v := Evaluate(in)
		if v.Allowed || v.Rule() != tc.rule || !strings.Contains(v.Reason(), tc.says) {
			t.Errorf("%s: verdict %q (rule %q), want rule %s saying %q", tc.name, v, v.Rule(), tc.rule, tc.says)
		}
	}
}

// RetryAt is when a time rule may pass: the soak's end or the window's
// next opening, whichever is first.
func TestEvaluateRetryAt(t *testing.T) {
	prod := prodEnv(t)
	in := Input{Target: prod, SourceState: healthy("test", "b2", "v2", monday.Add(-30*time.Minute)), Request: approved("b2", "a", "b", "c"), Now: monday}
	if v := Evaluate(in); !v.RetryAt.Equal(monday.Add(30 * time.Minute)) {
		t.Fatalf("RetryAt %v, want the soak's end %v", v.RetryAt, monday.Add(30*time.Minute))
	}
}

// The pre-production gate: prod accepts only bundles that passed
// analysis in pre.
func TestPreProductionGate(t *testing.T) {
	prod := prodEnv(t)
	prod.RequireAnalysis = []string{"pre"}
	prod.Approvals, prod.Soak = 0, spec.Duration{}
	pre := healthy("pre", "b2", "v2", monday.Add(-time.Hour))
	in := Input{Target: prod, SourceState: healthy("test", "b2", "v2", monday.Add(-2*time.Hour)), Upstream: map[string]*State{"pre": pre}, Now: monday}
	if v := Evaluate(in); !v.Allowed {
		t.Fatalf("passed in pre, refused: %v", v)
	}
	pre.History[0].Analysis, pre.History[0].AnalysisDetail = AnalysisNone, "the first release skips the strategy"
	if v := Evaluate(in); v.Rule() != RulePreProduction || !strings.Contains(v.Reason(), "first release skips") {
		t.Fatalf("no analysis in pre: %v", v)
	}
	in.Upstream = nil
	if v := Evaluate(in); v.Rule() != RulePreProduction || !strings.Contains(v.Reason(), "has not run in pre") {
		t.Fatalf("never in pre: %v", v)
	}
}

func TestCheckApproval(t *testing.T) {
	req := approved("b2", "alice")
	if r := CheckApproval(req, "alice"); r == nil || r.Rule != RuleSelfApproval {
		t.Fatalf("self-approval: %v", r)
	}
	if r := CheckApproval(req, "bob"); r != nil {
		t.Fatalf("bob refused: %v", r)
	}
	if r := CheckApproval(nil, "bob"); r == nil || r.Rule != RuleNoRequest {
		t.Fatalf("no request: %v", r)
	}
}
