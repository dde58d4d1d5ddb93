package engine

import (
	"context"
	"errors"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// ConfigReleaser keeps the config bound to a release in step with it
// (configrelease.Manager). The engine calls it only for releases with a
// config section.
type ConfigReleaser interface {
	// Prepare validates rel's config section (reading files given by
	// reference) and returns the release identity its instances run as;
	// invalid config returns a *spec.ValidationError.
	Prepare(ctx context.Context, rel *spec.Release) (string, error)
	// Reconcile brings the config centres in line with the status, asks
	// the instances which config they loaded, and reports the gate.
	Reconcile(ctx context.Context, in configrelease.Pass) (configrelease.Result, error)
	// View returns an app's config status for the API (nil: none yet).
	View(app string) *configrelease.View
}

// configPass is what the config layer contributes to one pass.
type configPass struct {
	gate    *rollout.ConfigGate
	events  []rollout.Event
	requeue time.Duration
}

// checkConfig rejects a document whose config section is invalid once
// its referenced files are read, like any invalid spec: the last good spec
// stays in force and nothing is written or started. Other errors (etcd
// unreachable) are left to the pass, which fails and is retried.
func (e *Engine) checkConfig(ctx context.Context, pd parsedDoc) parsedDoc {
	if e.cfg.Config == nil || pd.err != nil || pd.rel == nil || pd.rel.Config == nil {
		return pd
	}
	_, err := e.cfg.Config.Prepare(ctx, pd.rel)
	var verr *spec.ValidationError
	if errors.As(err, &verr) {
		pd.err, pd.rel = err, nil
	}
	return pd
}

// configIdentity returns rel as the planner and the backend see it: with
// its version replaced by the release identity (a config-only change runs
// as "<version>_cfg<digest>").
func (e *Engine) configIdentity(ctx context.Context, rel *spec.Release) (*spec.Release, string, error) {
	if e.cfg.Config == nil || rel.Config == nil {
		return rel, rel.Version, nil
	}
	id, err := e.cfg.Config.Prepare(ctx, rel)
	if err != nil {
		return nil, "", err
	}
	if id == rel.Version {
		return rel, id, nil
	}
	out := rel.Clone()
	out.Version = id
	return out, id, nil
}

// configReconcile runs the config layer for one pass; insts gain the
// checksum each instance reports.
func (e *Engine) configReconcile(ctx context.Context, app string, orig *spec.Release, id string, st rollout.Status, insts []adapters.Instance) (configPass, []adapters.Instance, error) {
	if e.cfg.Config == nil || orig.Config == nil {
		return configPass{}, insts, nil
	}
	res, err := e.cfg.Config.Reconcile(ctx, configrelease.Pass{App: app, Spec: orig, Identity: id, Status: st, Instances: insts})
	if err != nil {
		return configPass{}, insts, err
	}
	if res.Instances != nil {
		insts = res.Instances
	}
	return configPass{gate: res.Gate, events: res.Events, requeue: res.RequeueAfter}, insts, nil
}

// configView returns an app's config status, nil without config.
func (e *Engine) configView(app string) *configrelease.View {
	if e.cfg.Config == nil {
		return nil
	}
	return e.cfg.Config.View(app)
}

// sooner returns the earlier of two requeue delays (0 = none).
func sooner(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	if b <= 0 {
		return a
	}
	return min(a, b)
}
