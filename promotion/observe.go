package promotion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/internal/etcdjson"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
)

// refresh observes app in the named environments now (the API does
// before it evaluates, so a rule never judges stale data).
func (c *Controller) refresh(ctx context.Context, app string, envs ...string) error {
	for _, name := range envs {
		e, err := c.env(name)
		if err != nil {
			return err
		}
		v, err := e.Engine.App(ctx, app)
		if errors.Is(err, engine.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s in %s: %w", app, name, err)
		}
		if _, err := c.observeView(ctx, name, v); err != nil {
			return err
		}
	}
	return nil
}

// observeView brings the app's state in env in line with its engine view
// and stores it when it changed:
//
//   - Desired is the bundle of the spec in force;
//   - Current is that bundle once the release is Healthy with it stable
//     (HealthySince: when it was promoted, from the release records or
//     the status history, else now), with the analysis its release ran;
//   - Failed is set when the desired bundle's release was rejected
//     (aborted, rolled back, failed analysis) or passed its deadline.
func (c *Controller) observeView(ctx context.Context, envName string, v engine.AppView) (*environments.State, error) {
	e, err := c.env(envName)
	if err != nil {
		return nil, err
	}
	defer c.lock(envName, v.App)()
	prev, rev, err := c.cfg.Store.State(ctx, envName, v.App)
	if err != nil {
		return nil, err
	}
	now := c.clock.Now()
	st := environments.State{Env: envName, App: v.App, Phase: v.Status.Phase, Message: v.Status.Message}
	if prev != nil {
		st.History = append([]environments.Run(nil), prev.History...)
		st.Current, st.Failed = prev.Current, prev.Failed
	}
	if v.Spec == nil {
		return c.saveState(ctx, prev, st, rev)
	}
	b, eff, err := e.Bundle(ctx, v.Spec)
	if err != nil {
		return nil, fmt.Errorf("bundle of %s in %s: %w", v.App, envName, err)
	}
	st.Desired, st.DesiredVersion = b.Digest, b.Version
	if prev == nil || prev.Desired != b.Digest {
		known, err := c.cfg.Store.HasBundle(ctx, v.App, b.Digest)
		if err != nil {
			return nil, err
		}
		if !known {
			b.Env, b.FirstSeen = envName, now
			if err := c.cfg.Store.PutBundle(ctx, b); err != nil {
				return nil, fmt.Errorf("store bundle %s of %s: %w", environments.Short(b.Digest), v.App, err)
			}
		}
	}
	s := v.Status
	id := v.Identity
	switch {
	case id == "":
		// not planned yet
	case s.Phase == rollout.Healthy && s.StableVersion == id && s.CanaryVersion == "":
		if st.Current == nil || st.Current.Bundle != b.Digest {
			run := environments.Run{Bundle: b.Digest, Version: b.Version, Identity: id, ConfigDigest: eff, HealthySince: now}
			c.describeRun(ctx, e, v, &run)
			st.Current = &run
			for i := range st.History {
				if st.History[i].Until.IsZero() {
					st.History[i].Until = now
				}
			}
			st.History = append([]environments.Run{run}, st.History...)
			if len(st.History) > environments.MaxRuns {
				st.History = st.History[:environments.MaxRuns]
			}
		}
		if st.Failed != nil && st.Failed.Bundle == b.Digest {
			st.Failed = nil
		}
	case s.RejectedVersion == id || (s.CanaryVersion == id && s.DeadlineExceeded):
		if st.Failed == nil || st.Failed.Bundle != b.Digest {
			f := environments.Failure{Bundle: b.Digest, Version: b.Version, Reason: s.Message, At: now}
			c.describeFailure(ctx, e, v, &f)
			st.Failed = &f
		}
	}
	if st.Current != nil && s.StableVersion != st.Current.Identity && s.CanaryVersion != st.Current.Identity {
		// the bundle no longer runs (rolled back to another one)
		st.Current = nil
	}
	return c.saveState(ctx, prev, st, rev)
}

// describeRun fills a Healthy run's start and analysis from the release
// records (or, without them, the status history).
func (c *Controller) describeRun(ctx context.Context, e *Env, v engine.AppView, run *environments.Run) {
	for _, h := range v.Status.History {
		if h.Version == run.Identity && h.Outcome == "promoted" {
			run.HealthySince = h.At
			break
		}
	}
	run.Analysis, run.AnalysisDetail = environments.AnalysisNone, "no release record"
	if e.Revisions == nil {
		run.AnalysisDetail = "release records are not kept"
		return
	}
	revs, err := e.Revisions(ctx, v.App)
	if err != nil {
		c.log.Warn("release records", "app", v.App, "err", err)
		run.Analysis, run.AnalysisDetail = "", "release records unavailable: "+err.Error()
		return
	}
	for _, r := range revs {
		if r.Identity != run.Identity || r.Outcome != records.Promoted {
			continue
		}
		run.Revision = r.Number
		if !r.EndedAt.IsZero() {
			run.HealthySince = r.EndedAt
		}
		run.Analysis, run.AnalysisDetail = analysisOf(&r, v)
		return
	}
}

// analysisOf says whether a promoted revision ran analysis and passed.
func analysisOf(r *records.Revision, v engine.AppView) (string, string) {
	switch {
	case strings.HasPrefix(r.Strategy, "none"):
		return environments.AnalysisNone, "the first release of an app skips the strategy and its analysis"
	case r.Fast:
		return environments.AnalysisNone, "it was rolled back to without steps or analysis"
	case len(r.Verdicts) == 0:
		if v.Spec != nil && v.Spec.Strategy.Analysis == nil {
			return environments.AnalysisNone, "its strategy has no analysis"
		}
		return environments.AnalysisNone, "no analysis check ran"
	}
	var names []string
	for _, vd := range r.Verdicts {
		if !vd.OK {
			return environments.AnalysisNone, "check " + vd.Check + " did not pass: " + vd.Message
		}
		names = append(names, vd.Check)
	}
	return environments.AnalysisPassed, "passed " + strings.Join(names, ", ")
}

// describeFailure says why the desired bundle's release failed, from the
// release records when they have it.
func (c *Controller) describeFailure(ctx context.Context, e *Env, v engine.AppView, f *environments.Failure) {
	if e.Revisions == nil {
		f.Analysis = strings.Contains(strings.ToLower(f.Reason), "analysis")
		return
	}
	revs, err := e.Revisions(ctx, v.App)
	if err != nil {
		return
	}
	for _, r := range revs {
		if r.Identity != v.Identity || r.Outcome == "" || r.Outcome == records.Promoted {
			continue
		}
		if r.Reason != "" {
			f.Reason = r.Reason
		}
		f.Analysis = strings.HasPrefix(r.Reason, "analysis failed")
		if !r.FailedAt.IsZero() {
			f.At = r.FailedAt
		}
		return
	}
}

// saveState writes st if it differs from prev (UpdatedAt aside).
func (c *Controller) saveState(ctx context.Context, prev *environments.State, st environments.State, rev int64) (*environments.State, error) {
	if prev != nil {
		a, b := *prev, st
		a.UpdatedAt, b.UpdatedAt, a.Schema, b.Schema = st.UpdatedAt, st.UpdatedAt, 0, 0
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) == string(jb) {
			return prev, nil
		}
	}
	st.UpdatedAt = c.clock.Now()
	err := c.cfg.Store.PutState(ctx, st, rev)
	if errors.Is(err, etcdjson.ErrConflict) {
		// another replica wrote it meanwhile: the next round starts from theirs
		cur, _, gerr := c.cfg.Store.State(ctx, st.Env, st.App)
		return cur, gerr
	}
	if err != nil {
		return nil, fmt.Errorf("state of %s in %s: %w", st.App, st.Env, err)
	}
	return &st, nil
}
