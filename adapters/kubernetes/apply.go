package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Apply maps want onto the app's Deployments (see planDeployments) and, for
// rolling and canary releases with a service, keeps the Service selecting
// every version. It returns once the API server accepted the changes; the
// Deployment controller does the rest and Observe reports it.
//
// Apply writes a Deployment only when graylane's own desired state for it
// changed since it last wrote it. If the live object differs from what
// graylane last wrote while the desired state did not change, someone else
// changed it: Apply leaves it alone and returns an error wrapping ErrDrift
// (after applying everything else).
//
// For a rolling release, which version the Deployment rolls to is judged
// against the pods the engine planned from (rollingView), so a Deployment
// controller that got ahead of graylane does not look like a roll back.
func (b *Backend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, _ adapters.Step) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	kb, err := kube(rel)
	if err != nil {
		return err
	}
	ns := kb.NamespaceOrDefault()
	primary := kb.DeploymentName(rel.App)
	if !b.watches(ns) {
		return fmt.Errorf("apply %s in %s: %w (watched: %v)", rel.App, ns, ErrNamespaceNotWatched, b.cfg.Namespaces)
	}
	if err := b.caches(ctx); err != nil {
		return fmt.Errorf("apply %s in %s: %w", rel.App, ns, err)
	}
	log := b.log.With("app", rel.App, "namespace", ns)

	live, err := b.liveDeployments(ctx, ns, rel.App, primary)
	if err != nil {
		return err
	}
	observed := b.rollingView(rel.App, ns)
	in := planInput{Strategy: rel.Strategy.Type, R: rel.ReplicaCount(), Want: want, Observed: observed,
		Desired: rel.Version, Primary: primary, CanCreatePrimary: kb.Template != nil}
	for _, d := range live {
		in.Deployments = append(in.Deployments, deployState{
			Name: d.Name, Version: d.Spec.Template.Annotations[AnnotationVersion], Replicas: int(ptrOr(d.Spec.Replicas, 1)),
			Pods: int(d.Status.Replicas), Primary: d.Name == primary, Created: created(d),
		})
	}
	acts, err := planDeployments(in)
	if err != nil {
		return fmt.Errorf("apply %s: namespace %s: %w", rel.App, ns, err)
	}
	var errs []error
	for _, a := range acts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.applyDeployment(ctx, log, rel, kb, ns, a, live); err != nil {
			if !errors.Is(err, ErrDrift) {
				return err
			}
			errs = append(errs, err)
		}
	}
	if kb.Service != nil && rel.Strategy.Type != spec.BlueGreen {
		// Rolling and canary: one Service selecting every version, traffic
		// follows ready pods. (Blue-green Services belong to ServiceRouter.)
		if err := b.syncService(ctx, log, rel, ns, serviceWant{Name: kb.ServiceName(rel.App), Role: RoleActive,
			Selector: map[string]string{LabelApp: rel.App}}); err != nil {
			if !errors.Is(err, ErrDrift) {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rollingView counts the app's pods per version (not terminating) for
// deciding which version a rolling update moves to (rollingTarget: a
// version grows when it is wanted above its pods), and forgets what Observe
// reported since the last Apply.
//
// The count of each version is the larger of the cache's now and the most
// Observe reported since the app's last Apply. The engine plans an Apply
// from an Observe and applies a little later; meanwhile the Deployment
// controller, rolling to the new version, replaces more old pods. Compared
// with the cache alone, the old version's want (what the engine saw of it,
// less what it may remove) would then look like a request to grow it back,
// and the Deployment's template would be switched back and forth. Against
// what the engine saw, an old version never grows unless the engine asks it
// to (a rollback).
func (b *Backend) rollingView(app, ns string) map[string]int {
	observed := map[string]int{}
	for _, p := range b.cachedPods(app) {
		if p.Namespace == ns && p.DeletionTimestamp == nil {
			observed[podVersion(p)]++
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, n := range b.seen[app] {
		if v, ok := strings.CutPrefix(key, ns+"/"); ok {
			observed[v] = max(observed[v], n)
		}
	}
	delete(b.seen, app)
	return observed
}

// liveDeployments lists the app's Deployments (and the primary, which an
// operator may have handed over without graylane's label yet), keeping the
// ones graylane manages. An unmanaged primary is an error.
func (b *Backend) liveDeployments(ctx context.Context, ns, app, primary string) (map[string]*appsv1.Deployment, error) {
	list, err := b.cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "=" + app})
	if err != nil {
		return nil, fmt.Errorf("apply %s: list deployments in %s: %w", app, ns, rbacHint(err, "list", "deployments", ns))
	}
	out := map[string]*appsv1.Deployment{}
	for i := range list.Items {
		d := &list.Items[i]
		if managed(d) {
			out[d.Name] = d
		} else {
			b.log.Warn("deployment carries graylane's app label but not its managed-by annotation; leaving it alone",
				"app", app, "namespace", ns, "deployment", d.Name)
		}
	}
	if _, ok := out[primary]; !ok {
		d, err := b.cs.AppsV1().Deployments(ns).Get(ctx, primary, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("apply %s: get deployment %s/%s: %w", app, ns, primary, err)
		case !managed(d):
			return nil, fmt.Errorf("apply %s: deployment %s/%s %w: annotate it %s=%s to hand it to graylane",
				app, ns, primary, ErrNotManaged, AnnotationManagedBy, ManagedBy)
		case d.Labels[LabelApp] != "" && d.Labels[LabelApp] != app:
			return nil, fmt.Errorf("apply %s: deployment %s/%s belongs to graylane app %s: %w", app, ns, primary, d.Labels[LabelApp], ErrNotManaged)
		default:
			out[primary] = d
		}
	}
	return out, nil
}

// applyDeployment makes one action true.
func (b *Backend) applyDeployment(ctx context.Context, log *slog.Logger, rel *spec.Release, kb *spec.KubernetesBackend, ns string, a deployAction, live map[string]*appsv1.Deployment) error {
	deps := b.cs.AppsV1().Deployments(ns)
	where := fmt.Sprintf("deployment %s/%s", ns, a.Name)
	if a.Delete {
		if err := deps.Delete(ctx, a.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("apply %s: delete idle %s: %w", rel.App, where, err)
		}
		log.Info("deleted idle deployment", "deployment", a.Name, "version", a.Version)
		return nil
	}
	if a.Version == "" {
		return nil // never templated by graylane and not wanted: leave it
	}
	rec, err := desiredRecord(rel, kb, a.Version, a.Replicas)
	if err != nil {
		return fmt.Errorf("apply %s: %s: %w", rel.App, where, err)
	}
	if a.Create {
		base, err := b.baseTemplate(rel, kb, a.Version, live)
		if err != nil {
			return fmt.Errorf("apply %s: %s: %w", rel.App, where, err)
		}
		tmpl, err := versionTemplate(rel, kb, base, a.Version, a.Name, rec)
		if err != nil {
			return fmt.Errorf("apply %s: %s: %w", rel.App, where, err)
		}
		if _, err := deps.Create(ctx, newDeployment(rel.App, ns, a.Name, tmpl, rec), metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("apply %s: create %s: %w (created concurrently; retrying)", rel.App, where, err)
			}
			return fmt.Errorf("apply %s: create %s for %s: %w", rel.App, where, a.Version, rbacHint(err, "create", "deployments", ns))
		}
		log.Info("created deployment", "deployment", a.Name, "version", a.Version, "replicas", a.Replicas)
		return nil
	}
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := live[a.Name]
		if !first {
			fresh, err := deps.Get(ctx, a.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("apply %s: get %s: %w", rel.App, where, err)
			}
			d = fresh
		}
		first = false
		d = d.DeepCopy()
		cur := liveRecord(d)
		applied, hasApplied := appliedRecord(d)
		retemplate := cur.Version != a.Version
		if hasApplied && applied == rec && !retemplate {
			if drift := applied.drift(cur); drift != "" {
				return fmt.Errorf("apply %s: %s: %s: %w; graylane will not overwrite it until its own desired state for it changes (or remove the annotation %s to hand it back)",
					rel.App, where, drift, ErrDrift, AnnotationApplied)
			}
			return nil
		}
		if hasApplied && applied != rec {
			if drift := applied.drift(cur); drift != "" {
				log.Warn("overriding changes made outside graylane: its desired state changed", "deployment", a.Name, "drift", drift)
			}
		}
		if retemplate {
			base, err := b.baseTemplate(rel, kb, a.Version, live)
			if err != nil {
				return fmt.Errorf("apply %s: %s: %w", rel.App, where, err)
			}
			if a.Primary && kb.Template == nil {
				base = &d.Spec.Template // an operator's Deployment: keep its template, change the image
			}
			tmpl, err := versionTemplate(rel, kb, base, a.Version, a.Name, rec)
			if err != nil {
				return fmt.Errorf("apply %s: %s: %w", rel.App, where, err)
			}
			if !a.Primary || kb.Template != nil {
				// keep labels the Deployment's immutable selector needs
				for k, v := range d.Spec.Selector.MatchLabels {
					tmpl.Labels[k] = v
				}
			}
			d.Spec.Template = tmpl
		}
		if d.Labels == nil {
			d.Labels = map[string]string{}
		}
		d.Labels[LabelApp] = rel.App
		applyRecord(d, rec)
		if _, err := deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return fmt.Errorf("apply %s: update %s to %s x%d: %w", rel.App, where, a.Version, a.Replicas, rbacHint(err, "update", "deployments", ns))
		}
		if retemplate {
			log.Info("deployment now runs version", "deployment", a.Name, "version", a.Version, "from", cur.Version, "replicas", a.Replicas)
		} else {
			log.Info("scaled deployment", "deployment", a.Name, "version", a.Version, "replicas", a.Replicas, "from", cur.Replicas)
		}
		return nil
	})
}

// baseTemplate is the pod template versions are made from: the spec's, or
// the primary Deployment's (an operator's Deployment handed to graylane).
func (b *Backend) baseTemplate(rel *spec.Release, kb *spec.KubernetesBackend, v string, live map[string]*appsv1.Deployment) (*corev1.PodTemplateSpec, error) {
	if kb.Template != nil {
		return specTemplate(rel, kb, v)
	}
	p := live[kb.DeploymentName(rel.App)]
	if p == nil {
		return nil, fmt.Errorf("primary deployment %s: %w", kb.DeploymentName(rel.App), ErrNoDeployment)
	}
	t := p.Spec.Template.DeepCopy()
	for k := range t.Labels {
		if k == LabelDeployment || k == LabelVersion {
			delete(t.Labels, k)
		}
	}
	return t, nil
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// podVersion returns a pod's exact version.
func podVersion(p *corev1.Pod) string {
	if v := p.Annotations[AnnotationVersion]; v != "" {
		return v
	}
	return p.Labels[LabelVersion]
}
