package process

import (
	"context"
	"fmt"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Router is the Backend's app proxies seen as an adapters.TrafficRouter:
// each app's split is put in force on the proxy that also receives the app's
// ready instances, and recorded in the state dir so a restarted graylane
// serves it again at once.
type Router struct{ b *Backend }

var _ adapters.TrafficRouter = (*Router)(nil)

// Weights returns the split in force for app (empty before the first
// SetWeights). No side effects.
func (r *Router) Weights(ctx context.Context, app string) (traffic.Split, error) {
	if err := ctx.Err(); err != nil {
		return traffic.Split{}, err
	}
	return r.b.router.Weights(ctx, app)
}

// SetWeights validates s, opens rel.App's proxy on backend.process.proxy if
// it is not open yet (also before the app's first Apply), records s and puts
// it in force. An invalid split is rejected before anything changes.
// Idempotent.
func (r *Router) SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rel == nil {
		return fmt.Errorf("set weights: nil release: %w", spec.ErrInvalid)
	}
	if err := spec.CheckApp(rel.App); err != nil {
		return fmt.Errorf("set weights: app %v: %w", err, spec.ErrInvalid)
	}
	if err := traffic.ValidateSplit(s); err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	a, err := r.b.getApp(rel.App, true)
	if err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	p, err := r.b.router.Ensure(rel)
	if err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	next := appFile{Release: a.rel, Replicas: a.want, Split: &traffic.Split{Weights: append([]traffic.VersionWeight(nil), s.Weights...), Preview: s.Preview}}
	if next.Release == nil {
		next.Release = rel.Clone()
	}
	if err := r.b.saveLocked(a, next); err != nil {
		return fmt.Errorf("set weights of app %s: record split: %w", rel.App, err)
	}
	a.rel, a.split = next.Release, next.Split
	if err := p.SetSplit(s); err != nil {
		return fmt.Errorf("set weights of app %s: %w", rel.App, err)
	}
	return nil
}
