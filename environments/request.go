package environments

import (
	"sort"
	"time"
)

// Request states.
const (
	// Pending: waiting for its rules (approvals, soak, a window).
	Pending = "pending"
	// Promoted: the bundle was written to the target's centre.
	Promoted = "promoted"
	// Superseded: the source environment moved to another bundle, or a
	// newer request replaced it.
	Superseded = "superseded"
	// Expired: it waited longer than its approvals count.
	Expired = "expired"
	// Cancelled by an operator.
	Cancelled = "cancelled"
	// Failed: writing the bundle to the target's centre failed for good.
	Failed = "failed"
)

// AutoRequester is the requester of automatic promotions.
const AutoRequester = "graylane (autoPromote)"

// Approval is one approver's consent to promote one bundle.
type Approval struct {
	By      string    `json:"by"`
	Via     string    `json:"via,omitempty"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
	// Bundle is the bundle approved: an approval never counts for another.
	Bundle string `json:"bundle"`
}

// Request is a promotion of one bundle of one app into one environment:
// asked for by someone (or by autoPromote or a release plan), approved
// by others, carried out by graylane when every rule allows it. There is
// at most one pending request per app and environment; the record keeps
// the latest, its approvals and outcome.
type Request struct {
	Schema  int    `json:"schema"`
	ID      string `json:"id"`
	Env     string `json:"env"`
	App     string `json:"app"`
	From    string `json:"from"`
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	// RequestedBy is the token name that asked (AutoRequester for
	// autoPromote); Via is api, console or plan.
	RequestedBy string    `json:"requestedBy"`
	Via         string    `json:"via,omitempty"`
	RequestedAt time.Time `json:"requestedAt"`
	// Plan is the release plan the request belongs to, if any.
	Plan string `json:"plan,omitempty"`
	// MinApprovals raises the target's approvals for this request: 1 when
	// the requester may only request promotions into the target (a
	// developer's token in prod), so that someone else must approve.
	MinApprovals int        `json:"minApprovals,omitempty"`
	Approvals    []Approval `json:"approvals,omitempty"`
	State        string     `json:"state"`
	// Rule and Reason are the rule that holds (pending) or ended it.
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
	// PromotedAt is when the bundle was written to the target's centre,
	// DocumentVersion the centre's version of the document written.
	PromotedAt      time.Time `json:"promotedAt,omitempty"`
	DocumentVersion string    `json:"documentVersion,omitempty"`
	UpdatedAt       time.Time `json:"updatedAt"`
}

// Valid returns the approvals that count for bundle at now: of that
// bundle, not expired, by someone other than the requester, one per name
// (the newest), sorted by name.
func (r *Request) Valid(bundle string, now time.Time) []Approval {
	if r == nil {
		return nil
	}
	by := map[string]Approval{}
	for _, a := range r.Approvals {
		if a.Bundle != bundle || a.By == r.RequestedBy || !now.Before(a.Expires) {
			continue
		}
		if old, ok := by[a.By]; !ok || a.At.After(old.At) {
			by[a.By] = a
		}
	}
	out := make([]Approval, 0, len(by))
	for _, a := range by {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].By < out[j].By })
	return out
}

// Stale counts approvals of other bundles (they no longer count).
func (r *Request) Stale(bundle string) int {
	if r == nil {
		return 0
	}
	n := 0
	for _, a := range r.Approvals {
		if a.Bundle != bundle {
			n++
		}
	}
	return n
}

// Freeze stops promotions into an environment and releases starting in
// it, with a reason shown everywhere.
type Freeze struct {
	Schema int       `json:"schema"`
	Env    string    `json:"env"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}
