package engine

import (
	"context"
	"encoding/json"
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
	// Instances are the backend's instances as last observed by this
	// replica (in ha.mode shard and on a standby: empty unless this
	// replica drives the app; Versions still counts them).
	Instances []adapters.Instance `json:"instances"`
	// Versions counts the instances per version, newest rollout first:
	// from Instances, or as the replica driving the app recorded them.
	Versions []VersionCount `json:"versions,omitempty"`
	// Driver names the replica driving the app (empty for a lone
	// graylane).
	Driver string `json:"driver,omitempty"`
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

// ViewStore is an optional capability of a Store: a read that may be a
// little behind (etcd: a serializable read, answered by the member at
// once instead of after a round through the leader, which waits behind
// the writes of a storm). The API's views use it; passes never do.
type ViewStore interface {
	LoadView(ctx context.Context, app string) (Record, int64, error)
}

// App returns app's view, or an error wrapping ErrNotFound.
func (e *Engine) App(ctx context.Context, app string) (AppView, error) {
	load := e.cfg.Store.Load
	if vs, ok := e.cfg.Store.(ViewStore); ok {
		load = vs.LoadView
	}
	rec, rev, err := load(ctx, app)
	if err != nil {
		return AppView{}, err
	}
	v, ok := e.view(app, rec, rev, nil)
	if !ok {
		return AppView{}, fmt.Errorf("app %s: %w", app, ErrNotFound)
	}
	return v, nil
}

// view builds app's view from its persisted record (rev 0: none) and what
// the engine holds in memory; ok is false when the app is unknown. rel,
// if not nil, is rec.Spec already decoded (it must not be modified).
func (e *Engine) view(app string, rec Record, rev int64, rel *spec.Release) (AppView, bool) {
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
	if rel == nil && len(rec.Spec) > 0 {
		var r spec.Release
		if json.Unmarshal(rec.Spec, &r) == nil {
			rel = &r
		}
	}
	if rel != nil {
		v.Spec = rel
		v.Status.TotalSteps = len(rel.Strategy.Steps)
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
	if insts != nil {
		v.Status.Versions = VersionCounts(insts, rec.Status.CanaryVersion, rec.Status.StableVersion)
	} else {
		v.Status.Versions = rec.Observed
	}
	v.Status.Driver = rec.Driver
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

// AppNames returns every app the engine knows (a record or a document),
// sorted: a walk over every app (App for each) without holding every
// view at once.
func (e *Engine) AppNames(ctx context.Context) ([]string, error) {
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
	out := make([]string, 0, len(names))
	for a := range names {
		out = append(out, a)
	}
	sort.Strings(out)
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
	d, err := e.latest(ctx, app)
	if err != nil {
		return nil, err
	}
	if d.present && d.err == nil && d.rel != nil {
		return d.rel, nil
	}
	return nil, fmt.Errorf("app %s has no valid spec yet: %w", app, ErrNotFound)
}

// specHead decodes only what a list row shows of a record's spec (its
// version, strategy, backend and number of steps): the apps index is fed
// every record change of every app, on every replica.
func specHead(raw []byte) *spec.Release {
	if len(raw) == 0 {
		return nil
	}
	var h struct {
		Version  string `json:"version"`
		Strategy struct {
			Type  string            `json:"type"`
			Steps []json.RawMessage `json:"steps"`
		} `json:"strategy"`
		Backend struct {
			Type string `json:"type"`
		} `json:"backend"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return nil
	}
	rel := &spec.Release{Version: h.Version}
	rel.Strategy.Type = h.Strategy.Type
	rel.Strategy.Steps = make([]spec.Step, len(h.Strategy.Steps))
	rel.Backend.Type = h.Backend.Type
	return rel
}

// summaryOfRecord is an app's list row built from a record alone.
func (e *Engine) summaryOfRecord(app string, rec Record, rev int64) (Summary, bool) {
	v, ok := e.view(app, rec, rev, specHead(rec.Spec))
	if !ok {
		return Summary{}, false
	}
	return SummaryOf(v), true
}
