package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// ServiceRouter is the Service selector router: blue-green traffic
// switching with an active and a preview Service.
//
//   - A split with one version at 100% points the active Service's selector
//     at that version's pods (graylane.io/version), so switching a
//     blue-green is one selector update.
//   - Split.Preview points the preview Service at that version; without a
//     preview it selects what the active Service selects.
//   - Kubernetes Services have no weights: a split giving two or more
//     versions traffic selects every version of the app, and each then gets
//     its share of the ready pods, not its weight. graylane's planner never
//     asks for such a split in a blue-green (the only strategy the router
//     is used for by default); use traffic.type nginx or gray for weighted
//     canaries.
//   - The split in force is recorded on the active Service
//     (graylane.io/split); Weights reads it back after checking that both
//     selectors still are what graylane set. A selector changed behind
//     graylane's back is drift: Weights and SetWeights return an error
//     wrapping ErrDrift instead of overwriting it, until graylane's own
//     desired split changes.
type ServiceRouter struct{ b *Backend }

// Interface guards.
var (
	_ adapters.TrafficRouter = (*ServiceRouter)(nil)
	_ adapters.Forgetter     = (*ServiceRouter)(nil)
)

// Router returns the Service selector router sharing b's client.
func (b *Backend) Router() *ServiceRouter { return &ServiceRouter{b: b} }

// selectors returns the active and preview Services' selectors for s.
func selectors(app string, s traffic.Split) (active, preview map[string]string) {
	active = map[string]string{LabelApp: app}
	var on []string
	for _, w := range s.Weights {
		if w.Weight > 0 {
			on = append(on, w.Version)
		}
	}
	switch len(on) {
	case 0:
		active[LabelVersion] = "" // no pod has an empty version: routes nowhere
	case 1:
		active[LabelVersion] = VersionLabel(on[0])
	}
	preview = active
	if s.Preview != "" {
		preview = map[string]string{LabelApp: app, LabelVersion: VersionLabel(s.Preview)}
	}
	return active, preview
}

// SetWeights points the app's active and preview Services at the split's
// versions, creating the Services (from backend.kubernetes.service) if
// needed. It returns once the API server accepted both selectors.
func (r *ServiceRouter) SetWeights(ctx context.Context, rel *spec.Release, s traffic.Split) error {
	if err := traffic.ValidateSplit(s); err != nil {
		return fmt.Errorf("set traffic split of %s: %w", rel.App, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	kb, err := kube(rel)
	if err != nil {
		return err
	}
	if kb.Service == nil {
		return fmt.Errorf("the Service router of %s needs backend.kubernetes.service: %w", rel.App, adapters.ErrUnsupported)
	}
	ns := kb.NamespaceOrDefault()
	if !r.b.watches(ns) {
		return fmt.Errorf("set traffic split of %s in %s: %w", rel.App, ns, ErrNamespaceNotWatched)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	active, preview := selectors(rel.App, s)
	log := r.b.log.With("app", rel.App, "namespace", ns, "router", "service")
	if err := r.b.syncService(ctx, log, rel, ns, serviceWant{Name: kb.ServiceName(rel.App), Role: RoleActive, Selector: active, Split: string(raw)}); err != nil {
		return fmt.Errorf("set traffic split of %s: %w", rel.App, err)
	}
	if err := r.b.syncService(ctx, log, rel, ns, serviceWant{Name: kb.PreviewServiceName(rel.App), Role: RolePreview, Selector: preview}); err != nil {
		return fmt.Errorf("set traffic split of %s: %w", rel.App, err)
	}
	return nil
}

// Weights returns the split graylane put in force on the app's active
// Service (empty before any SetWeights), or an error wrapping ErrDrift when
// a selector was changed behind graylane's back.
func (r *ServiceRouter) Weights(ctx context.Context, app string) (traffic.Split, error) {
	if err := ctx.Err(); err != nil {
		return traffic.Split{}, err
	}
	active, err := r.find(ctx, app, RoleActive)
	if err != nil || active == nil {
		return traffic.Split{}, err
	}
	applied, ok := serviceApplied(active)
	if !ok || applied.Split == "" {
		return traffic.Split{}, nil
	}
	var s traffic.Split
	if err := json.Unmarshal([]byte(applied.Split), &s); err != nil {
		return traffic.Split{}, fmt.Errorf("traffic split of %s on service %s/%s: %w", app, active.Namespace, active.Name, err)
	}
	if live := serviceLive(active); !live.equal(applied) {
		return traffic.Split{}, fmt.Errorf("traffic split of %s: service %s/%s selects %v, graylane set %v: %w",
			app, active.Namespace, active.Name, live.Selector, applied.Selector, ErrDrift)
	}
	preview, err := r.find(ctx, app, RolePreview)
	if err != nil {
		return traffic.Split{}, err
	}
	if preview != nil {
		if pa, ok := serviceApplied(preview); ok && !serviceLive(preview).equal(pa) {
			return traffic.Split{}, fmt.Errorf("traffic split of %s: preview service %s/%s selects %v, graylane set %v: %w",
				app, preview.Namespace, preview.Name, preview.Spec.Selector, pa.Selector, ErrDrift)
		}
	}
	return s, nil
}

// find returns the app's managed Service with the role, or nil.
func (r *ServiceRouter) find(ctx context.Context, app, role string) (*corev1.Service, error) {
	var found *corev1.Service
	for _, ns := range r.b.namespaces() {
		list, err := r.b.cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "=" + app + "," + LabelServiceRole + "=" + role})
		if err != nil {
			return nil, fmt.Errorf("traffic split of %s: list services in %q: %w", app, ns, err)
		}
		for i := range list.Items {
			s := &list.Items[i]
			if !managed(s) {
				continue
			}
			if found != nil {
				return nil, fmt.Errorf("traffic split of %s: two %s services, %s/%s and %s/%s", app, role, found.Namespace, found.Name, s.Namespace, s.Name)
			}
			found = s
		}
	}
	return found, nil
}

// Forget deletes the Services graylane created for app.
func (r *ServiceRouter) Forget(ctx context.Context, app string) error {
	for _, ns := range r.b.namespaces() {
		if err := r.b.forgetServices(ctx, ns, app); err != nil {
			return err
		}
	}
	return nil
}

// RouterFor returns the traffic router graylane uses for a kubernetes
// release whose traffic section names none (traffic.type empty): the
// Service router for a blue-green, which needs backend.kubernetes.service
// (else an error wrapping adapters.ErrUnsupported), and nil for rolling and
// canary releases (traffic follows ready pods through one Service).
func (b *Backend) RouterFor(rel *spec.Release) (adapters.TrafficRouter, error) {
	if rel.Strategy.Type != spec.BlueGreen {
		return nil, nil
	}
	if kb, err := kube(rel); err != nil || kb.Service == nil {
		return nil, fmt.Errorf("a bluegreen release of %s on kubernetes switches a Service: set backend.kubernetes.service (or traffic.type nginx or gray): %w", rel.App, adapters.ErrUnsupported)
	}
	return b.Router(), nil
}
