package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// AppView is what the API shows for an app.
type AppView struct {
	App  string        `json:"app"`
	Spec *spec.Release `json:"spec,omitempty"`
	// DocumentVersion is the version of the app's document in the centre
	// as last read (etcd: mod revision; Nacos, Apollo: MD5), for a
	// compare-and-swap write (If-Match). Empty when the app has none.
	DocumentVersion string `json:"documentVersion,omitempty"`
	// Env is the environment the app is in (the engine's).
	Env string `json:"env,omitempty"`
	// Identity is the release identity of Spec ("" before its first pass).
	Identity string     `json:"identity,omitempty"`
	Status   StatusView `json:"status"`
}

// StatusView is an app's status with its live instances.
type StatusView struct {
	rollout.Status
	// TotalSteps is the number of canary steps.
	TotalSteps int `json:"totalSteps"`
	// Instances are the backend's instances as last observed.
	Instances []adapters.Instance `json:"instances"`
	// ObservedWeights is the traffic split the router last reported (or
	// was last set to), by version; Weights is what graylane wants.
	ObservedWeights map[string]int `json:"observedWeights,omitempty"`
	// ObservedRevision is the source revision of the spec in force.
	ObservedRevision int64 `json:"observedRevision"`
	// SpecError is the error of a newer, rejected document.
	SpecError *FieldError `json:"specError,omitempty"`
	// LastError is the last reconcile error ("" when the last pass worked).
	LastError string `json:"lastError,omitempty"`
	// LastCommand is the last command's outcome.
	LastCommand *CommandResult `json:"lastCommand,omitempty"`
	// Analysis holds the latest runs of each analysis check against the
	// version being rolled out.
	Analysis map[string]rollout.CheckResult `json:"analysis,omitempty"`
	// Config is the config-in-step status: what each target holds, the
	// gate, drift (config.go).
	Config *configrelease.View `json:"config,omitempty"`
	// Source names the config centre and whether it is reachable.
	Source SourceView `json:"source"`
	// UpdatedAt is when the status last changed.
	UpdatedAt time.Time `json:"updatedAt"`
}

// SourceView describes the config centre.
type SourceView struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// App returns app's view, or an error wrapping ErrNotFound.
func (e *Engine) App(ctx context.Context, app string) (AppView, error) {
	rec, rev, err := e.cfg.Store.Load(ctx, app)
	if err != nil {
		return AppView{}, err
	}
	v, ok := e.view(app, rec, rev)
	if !ok {
		return AppView{}, fmt.Errorf("app %s: %w", app, ErrNotFound)
	}
	return v, nil
}

// view builds app's view from its persisted record (rev 0: none) and what
// the engine holds in memory; ok is false when the app is unknown.
func (e *Engine) view(app string, rec Record, rev int64) (AppView, bool) {
	e.mu.Lock()
	doc, haveDoc := e.docs.Get(app)
	pd := e.parsed[app]
	var insts []adapters.Instance
	var observed map[string]int
	lastErr := ""
	if l := e.live[app]; l != nil {
		insts = append(insts, l.instances...)
		lastErr = l.lastError
		for _, w := range l.split.Weights {
			if observed == nil {
				observed = map[string]int{}
			}
			observed[w.Version] = w.Weight
		}
	}
	srcErr := e.sourceErr
	e.mu.Unlock()
	if rev == 0 && !haveDoc {
		return AppView{}, false
	}
	v := AppView{App: app, Env: e.cfg.Env, Identity: rec.Identity}
	if haveDoc {
		v.DocumentVersion = doc.Version
	}
	if len(rec.Spec) > 0 {
		var rel spec.Release
		if json.Unmarshal(rec.Spec, &rel) == nil {
			v.Spec = &rel
			v.Status.TotalSteps = len(rel.Strategy.Steps)
		}
	}
	v.Status.Status = rec.Status
	v.Status.ObservedRevision = rec.SpecRevision
	v.Status.SpecError = rec.SpecError
	if v.Status.SpecError == nil && pd.err != nil {
		v.Status.SpecError = &FieldError{Error: pd.err.Error(), Field: spec.FieldOf(pd.err), Revision: pd.revision}
	}
	v.Status.LastCommand = rec.LastCommand
	v.Status.UpdatedAt = rec.UpdatedAt
	v.Status.Instances = append([]adapters.Instance{}, insts...)
	v.Status.LastError = lastErr
	v.Status.ObservedWeights = observed
	sort.Slice(v.Status.Instances, func(i, j int) bool { return v.Status.Instances[i].ID < v.Status.Instances[j].ID })
	if e.cfg.Analysis != nil && rec.Status.CanaryVersion != "" {
		if res := e.cfg.Analysis.Results(app); len(res) > 0 {
			for k, r := range res {
				if len(r.Runs) > viewRuns {
					r.Runs = r.Runs[len(r.Runs)-viewRuns:]
				}
				res[k] = r
			}
			v.Status.Analysis = res
		}
	}
	v.Status.Source = SourceView{Name: e.cfg.Source.Name(), Ready: srcErr == nil}
	v.Status.Config = e.configView(app)
	if srcErr != nil {
		v.Status.Source.Error = srcErr.Error()
	}
	if v.Status.Phase == "" && v.Spec == nil && v.Status.SpecError != nil {
		v.Status.Phase = rollout.Degraded
		v.Status.Message = "no valid spec yet: " + v.Status.SpecError.Error
	}
	return v, true
}

// Apps returns every app's view, sorted by name.
func (e *Engine) Apps(ctx context.Context) ([]AppView, error) {
	names := map[string]bool{}
	stored, err := e.cfg.Store.Apps(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range stored {
		names[a] = true
	}
	e.mu.Lock()
	for _, en := range e.docs.Entries() {
		names[en.App] = true
	}
	e.mu.Unlock()
	var out []AppView
	for a := range names {
		v, err := e.App(ctx, a)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out, nil
}

// Release returns the release in force for app, as adapters need it to
// reach an app they have not been applied to in this process (a status
// URL, hosts): the last good spec persisted, or, before the app's first
// pass has persisted one, its newest valid document — that first pass is
// the one asking, from Backend.Observe, so a new app is "not yet
// persisted", not an error. The result must not be modified. An app with
// neither yields an error wrapping ErrNotFound.
func (e *Engine) Release(ctx context.Context, app string) (*spec.Release, error) {
	rec, _, err := e.cfg.Store.Load(ctx, app)
	if err != nil {
		return nil, err
	}
	if len(rec.Spec) > 0 {
		var rel spec.Release
		if err := json.Unmarshal(rec.Spec, &rel); err != nil {
			return nil, fmt.Errorf("decode the spec of %s: %w", app, err)
		}
		return &rel, nil
	}
	if d := e.latest(app); d.present && d.err == nil && d.rel != nil {
		return d.rel, nil
	}
	return nil, fmt.Errorf("app %s has no valid spec yet: %w", app, ErrNotFound)
}
