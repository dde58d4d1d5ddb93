package promotion

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/internal/etcdjson"
	"github.com/graylane/graylane/internal/randid"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/specdoc"
)

// Ways a promotion is asked for (Caller.Via, Request.Via).
const (
	ViaAPI     = "api"
	ViaConsole = "console"
	ViaAuto    = "autoPromote"
	ViaPlan    = "plan"
)

// Outcomes of Promote and Approve.
const (
	// Promoted: the bundle was written to the target's centre.
	Promoted = "promoted"
	// Pending: a request is recorded and waits for the rule named (soak,
	// approvals, a window); graylane carries it out when every rule
	// allows. Nothing changed in the target.
	Pending = "pending"
	// Refused: a rule that waiting does not change refused it; nothing
	// was recorded or changed.
	Refused = "refused"
	// Approved: an approval was recorded; the promotion still waits.
	Approved = "approved"
)

// ErrInvalid is returned (wrapped) for bad input.
var ErrInvalid = errors.New("invalid promotion input")

// Caller is who asks.
type Caller struct {
	// Name is the token name (the audit trail's actor).
	Name string
	// Via is api, console, plan or autoPromote.
	Via string
	// CanRelease is true when the caller's role in the target lets it
	// carry promotions out; false: it may only request them (someone else
	// then approves: the request needs at least one approval).
	CanRelease bool
}

// Result is the answer to Promote and Approve.
type Result struct {
	Outcome string `json:"outcome"`
	Env     string `json:"env"`
	App     string `json:"app"`
	From    string `json:"from,omitempty"`
	// Rule and Reason name the rule that refused or holds it.
	Rule    string                `json:"rule,omitempty"`
	Reason  string                `json:"reason,omitempty"`
	Verdict *environments.Verdict `json:"verdict,omitempty"`
	Request *environments.Request `json:"request,omitempty"`
	// DocumentVersion is the target centre's version of the document
	// written (Promoted).
	DocumentVersion string `json:"documentVersion,omitempty"`
}

// waitable rules can change by themselves or by approvals: a promotion
// refused only by them is recorded as a pending request.
var waitable = map[string]bool{environments.RuleSoak: true, environments.RuleApprovals: true, environments.RuleWindow: true}

func onlyWaitable(v environments.Verdict) bool {
	if v.Candidate == nil {
		return false
	}
	for _, r := range v.Refusals {
		if !waitable[r.Rule] {
			return false
		}
	}
	return true
}

// Promote asks for app's bundle in env's source environment (env's from)
// to be promoted into env. bundle, if set, must be that bundle. It is
// carried out now when every rule allows and the caller may release into
// env; recorded as a pending request when only soak, approvals or a
// window hold it (graylane carries it out once they allow); refused
// otherwise. Refusals change nothing.
func (c *Controller) Promote(ctx context.Context, env, app, bundle string, who Caller) (Result, error) {
	res := Result{Env: env, App: app}
	t, err := c.env(env)
	if err != nil {
		return res, err
	}
	if err := spec.CheckApp(app); err != nil {
		return res, fmt.Errorf("%w: app: %v", ErrInvalid, err)
	}
	rules := t.Config
	res.From = rules.From
	if rules.From == "" {
		res.Outcome, res.Rule, res.Reason = Refused, environments.RuleSource, env+" takes no bundles from another environment (it has no from): release into it directly"
		return res, nil
	}
	if err := c.refresh(ctx, app, append([]string{rules.From, env}, rules.RequireAnalysis...)...); err != nil {
		return res, err
	}
	defer c.lock(env, app)()
	req, rev, err := c.cfg.Store.Request(ctx, env, app)
	if err != nil {
		return res, err
	}
	pending := pendingOnly(req)
	in, err := c.input(ctx, rules, app, pending, bundle)
	if err != nil {
		return res, err
	}
	v := environments.Evaluate(in)
	res.Verdict = &v
	if v.Allowed && who.CanRelease {
		r := c.newRequest(rules, app, v.Candidate, who, pending)
		out, err := c.execute(ctx, t, r, rev)
		out.Verdict = &v
		return out, err
	}
	if !v.Allowed && !onlyWaitable(v) {
		res.Outcome, res.Rule, res.Reason = Refused, v.Rule(), v.Reason()
		return res, nil
	}
	// record (or keep) the pending request
	r := c.newRequest(rules, app, v.Candidate, who, pending)
	if !who.CanRelease && r.MinApprovals < 1 {
		r.MinApprovals = 1
	}
	in.Request = &r
	v = environments.Evaluate(in)
	res.Verdict = &v
	r.Rule, r.Reason = v.Rule(), v.Reason()
	if err := c.cfg.Store.PutRequest(ctx, r, rev); err != nil {
		return res, fmt.Errorf("record the promotion request: %w", err)
	}
	if pending == nil || pending.ID != r.ID {
		c.audit(ctx, audit.Record{Actor: who.Name, Via: who.Via, Env: env, App: app, Action: fmt.Sprintf("request promotion of %s (bundle %s) from %s", r.Version, environments.Short(r.Bundle), r.From),
			Target: r.ID, Outcome: audit.Allowed, Content: map[string]any{"bundle": r.Bundle, "rule": r.Rule, "reason": r.Reason}})
	}
	res.Outcome, res.Rule, res.Reason, res.Request = Pending, v.Rule(), v.Reason(), &r
	return res, nil
}

// pendingOnly is req if it is pending, else nil.
func pendingOnly(req *environments.Request) *environments.Request {
	if req != nil && req.State == environments.Pending {
		return req
	}
	return nil
}

// newRequest is the pending request for cand: the existing one when it
// is for the same bundle (its approvals kept), else a new one by who.
func (c *Controller) newRequest(rules *environments.Environment, app string, cand *environments.Run, who Caller, pending *environments.Request) environments.Request {
	if pending != nil && pending.Bundle == cand.Bundle {
		return *pending
	}
	now := c.clock.Now()
	return environments.Request{ID: "r-" + now.UTC().Format("20060102T150405") + "-" + randid.Hex(3), Env: rules.Name, App: app, From: rules.From,
		Bundle: cand.Bundle, Version: cand.Version, RequestedBy: who.Name, Via: who.Via, RequestedAt: now,
		State: environments.Pending, UpdatedAt: now}
}

// input gathers what Evaluate needs about app for a promotion into rules.
func (c *Controller) input(ctx context.Context, rules *environments.Environment, app string, req *environments.Request, bundle string) (environments.Input, error) {
	in := environments.Input{Target: rules, Request: req, Bundle: bundle, Freeze: c.frozen(rules.Name), Now: c.clock.Now(), Upstream: map[string]*environments.State{}}
	var err error
	if in.SourceState, _, err = c.cfg.Store.State(ctx, rules.From, app); err != nil {
		return in, err
	}
	if in.TargetState, _, err = c.cfg.Store.State(ctx, rules.Name, app); err != nil {
		return in, err
	}
	for _, up := range rules.RequireAnalysis {
		if in.Upstream[up], _, err = c.cfg.Store.State(ctx, up, app); err != nil {
			return in, err
		}
	}
	return in, nil
}

// execute writes r's bundle into the target's centre and records the
// request as promoted (or failed, when the document cannot take it).
func (c *Controller) execute(ctx context.Context, t *Env, r environments.Request, rev int64) (Result, error) {
	res := Result{Env: r.Env, App: r.App, From: r.From}
	b, err := c.cfg.Store.Bundle(ctx, r.App, r.Bundle)
	if err != nil {
		return res, err
	}
	docVersion, err := c.write(ctx, t, b, r)
	now := c.clock.Now()
	var bad *writeError
	switch {
	case errors.As(err, &bad):
		r.State, r.Rule, r.Reason, r.UpdatedAt = environments.Failed, environments.RuleSource, bad.Error(), now
	case err != nil:
		return res, err // retried: the centre may be back
	default:
		r.State, r.Rule, r.Reason, r.PromotedAt, r.DocumentVersion, r.UpdatedAt = environments.Promoted, "", "", now, docVersion, now
	}
	if perr := c.cfg.Store.PutRequest(ctx, r, rev); perr != nil && !errors.Is(perr, etcdjson.ErrConflict) {
		c.log.Error("record the promotion", "env", r.Env, "app", r.App, "err", perr)
	}
	var approvers []string
	for _, a := range r.Valid(r.Bundle, now) {
		approvers = append(approvers, a.By)
	}
	ar := audit.Record{Actor: r.RequestedBy, Via: "promotion", Env: r.Env, App: r.App, Target: r.ID,
		Action:  fmt.Sprintf("promote %s (bundle %s) from %s into %s", r.Version, environments.Short(r.Bundle), r.From, r.Env),
		Content: map[string]any{"bundle": r.Bundle, "version": r.Version, "requestedBy": r.RequestedBy, "approvedBy": strings.Join(approvers, ","), "documentVersion": docVersion, "plan": r.Plan}}
	if bad != nil {
		ar.Outcome, ar.Error = audit.Failed, bad.Error()
		c.audit(ctx, ar)
		res.Outcome, res.Rule, res.Reason, res.Request = Refused, r.Rule, r.Reason, &r
		return res, nil
	}
	ar.Outcome = audit.Allowed
	c.audit(ctx, ar)
	c.log.Info("bundle promoted", "env", r.Env, "app", r.App, "from", r.From, "version", r.Version, "bundle", environments.Short(r.Bundle), "by", r.RequestedBy)
	res.Outcome, res.Request, res.DocumentVersion = Promoted, &r, docVersion
	return res, nil
}

// writeError is a promotion the target's document cannot take (it is
// invalid with the bundle, or has no config section for its files):
// retrying does not help.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// write puts the bundle into the target's release document with
// compare-and-swap: the version and the files' contents change; the rest
// stays the target's own.
func (c *Controller) write(ctx context.Context, t *Env, b environments.Bundle, r environments.Request) (string, error) {
	if t.Writer == nil {
		return "", &writeError{fmt.Errorf("%s's release source %s is read-only: it cannot be promoted into", r.Env, t.Source.Name())}
	}
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		en, err := t.Source.Get(ctx, r.App)
		if errors.Is(err, configsync.ErrNotFound) {
			return "", &writeError{fmt.Errorf("%s has no release document in %s: create %s's own (backend, replicas, strategy, config targets) first; a promotion moves only the bundle", r.App, r.Env, r.Env)}
		}
		if err != nil {
			return "", fmt.Errorf("read %s from %s (%s): %w", r.App, r.Env, t.Source.Name(), err)
		}
		doc, err := specdoc.SetBundle(en.Data, b.Version, b.Files)
		if err != nil {
			return "", &writeError{fmt.Errorf("%s's document of %s cannot take bundle %s: %w", r.Env, r.App, environments.Short(b.Digest), err)}
		}
		rel, err := spec.Parse(doc)
		if err != nil {
			return "", &writeError{fmt.Errorf("%s's document of %s with bundle %s is invalid: %w", r.Env, r.App, environments.Short(b.Digest), err)}
		}
		got, _, err := t.Bundle(ctx, rel)
		if err != nil {
			return "", &writeError{fmt.Errorf("%s's document of %s with bundle %s: %w", r.Env, r.App, environments.Short(b.Digest), err)}
		}
		if got.Digest != b.Digest {
			return "", &writeError{fmt.Errorf("%s's document of %s would carry bundle %s, not %s", r.Env, r.App, environments.Short(got.Digest), environments.Short(b.Digest))}
		}
		if t.Intent != nil {
			in := records.Intent{App: r.App, Digest: records.DocumentDigest(doc), Actor: r.RequestedBy, Via: "promotion",
				Action: "promote from " + r.From, Version: b.Version, At: c.clock.Now()}
			if err := t.Intent(ctx, in); err != nil {
				return "", fmt.Errorf("record the intent to write %s: %w", r.App, err)
			}
		}
		put, err := t.Writer.Put(ctx, r.App, doc, en.Version)
		if errors.Is(err, configsync.ErrConflict) {
			last = err
			continue
		}
		if err != nil {
			return "", fmt.Errorf("write %s to %s (%s): %w", r.App, r.Env, t.Source.Name(), err)
		}
		return put.Version, nil
	}
	return "", fmt.Errorf("write %s to %s: gave up after repeated concurrent edits: %w", r.App, r.Env, last)
}

// Approve records who's approval of the pending promotion of app into
// env (of its bundle; bundle, if set, must be it) and carries the
// promotion out if that was the last rule holding it.
func (c *Controller) Approve(ctx context.Context, env, app, bundle string, who Caller) (Result, error) {
	res := Result{Env: env, App: app}
	t, err := c.env(env)
	if err != nil {
		return res, err
	}
	res.From = t.Config.From
	unlock := c.lock(env, app)
	req, rev, err := c.cfg.Store.Request(ctx, env, app)
	if err != nil {
		unlock()
		return res, err
	}
	if refusal := environments.CheckApproval(req, who.Name); refusal != nil {
		unlock()
		res.Outcome, res.Rule, res.Reason = Refused, refusal.Rule, refusal.Reason
		return res, nil
	}
	if bundle != "" && !strings.HasPrefix(req.Bundle, bundle) {
		unlock()
		res.Outcome, res.Rule, res.Reason = Refused, environments.RuleNoRequest, fmt.Sprintf("the pending promotion of %s into %s is of bundle %s, not %s", app, env, environments.Short(req.Bundle), bundle)
		return res, nil
	}
	now := c.clock.Now()
	r := *req
	r.Approvals = append(append([]environments.Approval(nil), r.Approvals...), environments.Approval{By: who.Name, Via: who.Via, At: now, Expires: now.Add(t.Config.TTL()), Bundle: r.Bundle})
	r.UpdatedAt = now
	err = c.cfg.Store.PutRequest(ctx, r, rev)
	unlock()
	if err != nil {
		return res, fmt.Errorf("record the approval: %w", err)
	}
	c.log.Info("promotion approved", "env", env, "app", app, "by", who.Name, "bundle", environments.Short(r.Bundle))
	out, _, err := c.advanceResult(ctx, env, app)
	if err != nil {
		return res, err
	}
	if out.Outcome != Promoted {
		// the controller's own loop, woken by the approval's write, may
		// have carried the request out between the write and here
		if now, _, err := c.cfg.Store.Request(ctx, env, app); err == nil && now != nil && now.ID == r.ID && now.State == environments.Promoted {
			out.Outcome, out.Request, out.DocumentVersion = Promoted, now, now.DocumentVersion
			return out, nil
		}
		out.Outcome = Approved
	}
	return out, nil
}

// advance carries out app's pending request into env, or an automatic
// promotion, when every rule allows; supersedes and expires stale
// requests. It returns when a time rule may allow it (zero: none).
func (c *Controller) advance(ctx context.Context, env, app string) (time.Time, error) {
	_, at, err := c.advanceResult(ctx, env, app)
	return at, err
}

func (c *Controller) advanceResult(ctx context.Context, env, app string) (Result, time.Time, error) {
	res := Result{Env: env, App: app}
	t, err := c.env(env)
	if err != nil {
		return res, time.Time{}, err
	}
	rules := t.Config
	res.From = rules.From
	defer c.lock(env, app)()
	req, rev, err := c.cfg.Store.Request(ctx, env, app)
	if err != nil {
		return res, time.Time{}, err
	}
	pending := pendingOnly(req)
	if pending == nil && !rules.AutoPromote {
		return res, time.Time{}, nil
	}
	in, err := c.input(ctx, rules, app, pending, "")
	if err != nil {
		return res, time.Time{}, err
	}
	if in.SourceState == nil && pending == nil {
		return res, time.Time{}, nil // the app is not in the source environment
	}
	v := environments.Evaluate(in)
	res.Verdict = &v
	res.Rule, res.Reason = v.Rule(), v.Reason()
	now := c.clock.Now()
	if pending != nil {
		r := *pending
		switch {
		case v.Candidate == nil || v.Candidate.Bundle != r.Bundle:
			why := v.Reason()
			if v.Candidate != nil {
				why = fmt.Sprintf("%s now runs %s (bundle %s)", rules.From, v.Candidate.Version, environments.Short(v.Candidate.Bundle))
			}
			r.State, r.Rule, r.Reason, r.UpdatedAt = environments.Superseded, v.Rule(), why, now
		case now.Sub(r.RequestedAt) > rules.TTL():
			r.State, r.Rule, r.Reason, r.UpdatedAt = environments.Expired, v.Rule(), fmt.Sprintf("waited longer than %s: %s", rules.TTL(), v.Reason()), now
		case v.Allowed:
			out, err := c.execute(ctx, t, r, rev)
			out.Verdict = &v
			return out, time.Time{}, err
		default:
			if r.Rule == v.Rule() && r.Reason == v.Reason() {
				res.Outcome, res.Request = Pending, pending
				return res, v.RetryAt, nil
			}
			r.Rule, r.Reason, r.UpdatedAt = v.Rule(), v.Reason(), now
			if err := c.cfg.Store.PutRequest(ctx, r, rev); err != nil && !errors.Is(err, etcdjson.ErrConflict) {
				return res, time.Time{}, err
			}
			res.Outcome, res.Request = Pending, &r
			return res, v.RetryAt, nil
		}
		if err := c.cfg.Store.PutRequest(ctx, r, rev); err != nil && !errors.Is(err, etcdjson.ErrConflict) {
			return res, time.Time{}, err
		}
		c.audit(ctx, audit.Record{Actor: "graylane", Via: "promotion", Env: env, App: app, Target: r.ID, Outcome: audit.Failed,
			Action: fmt.Sprintf("promotion request of %s (bundle %s) by %s %s", r.Version, environments.Short(r.Bundle), r.RequestedBy, r.State), Error: r.Reason})
		res.Outcome, res.Request = Refused, &r
		return res, time.Time{}, nil
	}
	// autoPromote
	if v.Candidate == nil || v.Refuses(environments.RuleUpToDate) {
		return res, v.RetryAt, nil
	}
	if req != nil && req.State == environments.Promoted && req.Bundle == v.Candidate.Bundle {
		// written already: the target's engine has not seen the document
		// yet (a centre's change notification takes its time), or someone
		// moved the target away since; either way autoPromote writes a
		// bundle once, and a newer bundle is promoted again
		return res, time.Time{}, nil
	}
	auto := Caller{Name: environments.AutoRequester, Via: ViaAuto, CanRelease: true}
	if v.Allowed {
		r := c.newRequest(rules, app, v.Candidate, auto, nil)
		out, err := c.execute(ctx, t, r, rev)
		out.Verdict = &v
		return out, time.Time{}, err
	}
	if onlyWaitable(v) && v.Refuses(environments.RuleApprovals) && (req == nil || req.Bundle != v.Candidate.Bundle) {
		// approvers need a request to approve
		r := c.newRequest(rules, app, v.Candidate, auto, nil)
		r.Rule, r.Reason = v.Rule(), v.Reason()
		if err := c.cfg.Store.PutRequest(ctx, r, rev); err != nil && !errors.Is(err, etcdjson.ErrConflict) {
			return res, time.Time{}, err
		}
		c.audit(ctx, audit.Record{Actor: auto.Name, Via: ViaAuto, Env: env, App: app, Target: r.ID, Outcome: audit.Allowed,
			Action: fmt.Sprintf("request promotion of %s (bundle %s) from %s", r.Version, environments.Short(r.Bundle), r.From)})
		res.Outcome, res.Request = Pending, &r
	}
	return res, v.RetryAt, nil
}
