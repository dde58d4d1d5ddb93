package engine

import (
	"context"
	"errors"
	"fmt"
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
	// Entry returns the config bound to a release identity (ok false when
	// the history does not have it), for the revision that rolls it out.
	Entry(ctx context.Context, app, identity string) (configrelease.HistoryEntry, bool, error)
}

// configPass is what the config layer contributes to one pass.
type configPass struct {
	gate    *rollout.ConfigGate
	events  []rollout.Event
	requeue time.Duration
}

// checkConfig prepares the newest document's config section (once per
// pass: bindIdentity reuses the answer) and rejects the document when the
// section is invalid once its referenced files are read, like any invalid
// spec: the last good spec stays in force and nothing is written or
// started. Other errors (etcd unreachable) are left to bindIdentity, which
// fails the pass; it is retried.
func (p *pass) checkConfig(ctx context.Context) {
	d := p.doc
	if p.e.cfg.Config == nil || d.err != nil || d.rel == nil || d.rel.Config == nil {
		return
	}
	id, err := p.e.cfg.Config.Prepare(ctx, d.rel)
	p.prepared = &prepared{rel: d.rel, identity: id, err: err}
	var verr *spec.ValidationError
	if errors.As(err, &verr) {
		p.doc.err, p.doc.rel = err, nil
	}
}

// bindIdentity sets p.identity and makes p.rel the release as the planner
// and the backend see it: with its version replaced by the release
// identity (a config-only change runs as "<version>_cfg<digest>").
func (p *pass) bindIdentity(ctx context.Context) error {
	rel := p.spec
	p.identity = rel.Version
	if p.e.cfg.Config == nil || rel.Config == nil {
		return nil
	}
	var id string
	var err error
	if pr := p.prepared; pr != nil && pr.rel == rel {
		id, err = pr.identity, pr.err
	} else {
		id, err = p.e.cfg.Config.Prepare(ctx, rel) // the last good spec
	}
	if err != nil {
		return err
	}
	p.identity = id
	if id != rel.Version {
		out := rel.Clone()
		out.Version = id
		p.rel = out
	}
	return nil
}

// reconcileConfig runs the config layer for one pass; the instances gain
// the checksum each one reports.
func (p *pass) reconcileConfig(ctx context.Context, insts []adapters.Instance) (configPass, []adapters.Instance, error) {
	if p.e.cfg.Config == nil || p.spec.Config == nil {
		return configPass{}, insts, nil
	}
	if sh := p.e.cfg.Shard; sh != nil {
		if err := sh.Check(); err != nil {
			return configPass{}, insts, fmt.Errorf("not writing config centres: %w", err)
		}
	}
	res, err := p.e.cfg.Config.Reconcile(ctx, configrelease.Pass{App: p.app, Spec: p.spec, Identity: p.identity, Status: p.rec.Status, Instances: insts})
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
