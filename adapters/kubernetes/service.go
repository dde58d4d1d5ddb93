package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"

	"github.com/graylane/graylane/spec"
)

// serviceWant is what graylane wants of one Service of an app.
type serviceWant struct {
	Name     string
	Role     string
	Selector map[string]string
	// Split is the JSON of the split in force (active Service of the
	// Service router); "" elsewhere.
	Split string
}

// serviceRecord is the part of a Service graylane owns (AnnotationApplied).
type serviceRecord struct {
	Selector map[string]string `json:"selector"`
	Split    string            `json:"split,omitempty"`
}

func (r serviceRecord) equal(o serviceRecord) bool {
	return maps.Equal(r.Selector, o.Selector) && r.Split == o.Split
}

func serviceApplied(s *corev1.Service) (serviceRecord, bool) {
	raw := s.Annotations[AnnotationApplied]
	if raw == "" {
		return serviceRecord{}, false
	}
	var r serviceRecord
	if json.Unmarshal([]byte(raw), &r) != nil {
		return serviceRecord{}, false
	}
	return r, true
}

func serviceLive(s *corev1.Service) serviceRecord {
	return serviceRecord{Selector: s.Spec.Selector, Split: s.Annotations[AnnotationSplit]}
}

// syncService creates the Service, or updates its selector, with the same
// rules as Deployments: only objects graylane manages, and a Service
// changed behind graylane's back while its desired state did not change is
// drift (an error wrapping ErrDrift), not overwritten. graylane sets ports
// only on the Services it creates.
func (b *Backend) syncService(ctx context.Context, log *slog.Logger, rel *spec.Release, ns string, w serviceWant) error {
	kb := rel.Backend.Kubernetes
	svcs := b.cs.CoreV1().Services(ns)
	where := fmt.Sprintf("service %s/%s", ns, w.Name)
	want := serviceRecord{Selector: w.Selector, Split: w.Split}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := svcs.Get(ctx, w.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			target := kb.Service.TargetPort
			if target == 0 {
				target = kb.TemplatePort()
			}
			if target == 0 {
				target = kb.Service.ServicePort()
			}
			s = &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{
					Name: w.Name, Namespace: ns,
					Labels:      map[string]string{LabelApp: rel.App, LabelServiceRole: w.Role},
					Annotations: map[string]string{AnnotationManagedBy: ManagedBy, AnnotationCreated: "true"},
				},
				Spec: corev1.ServiceSpec{
					Selector: w.Selector,
					Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP,
						Port: int32(kb.Service.ServicePort()), TargetPort: intstr.FromInt(target)}},
				},
			}
			setServiceRecord(s, want)
			if _, err := svcs.Create(ctx, s, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("apply %s: create %s: %w", rel.App, where, rbacHint(err, "create", "services", ns))
			}
			log.Info("created service", "service", w.Name, "role", w.Role, "selector", w.Selector)
			return nil
		}
		if err != nil {
			return fmt.Errorf("apply %s: get %s: %w", rel.App, where, rbacHint(err, "get", "services", ns))
		}
		if !managed(s) {
			return fmt.Errorf("apply %s: %s %w: annotate it %s=%s to hand it to graylane", rel.App, where, ErrNotManaged, AnnotationManagedBy, ManagedBy)
		}
		if a := s.Labels[LabelApp]; a != "" && a != rel.App {
			return fmt.Errorf("apply %s: %s belongs to graylane app %s: %w", rel.App, where, a, ErrNotManaged)
		}
		cur := serviceLive(s)
		applied, has := serviceApplied(s)
		if has && applied.equal(want) {
			if !cur.equal(applied) {
				return fmt.Errorf("apply %s: %s: selector %v (graylane set %v): %w; graylane will not overwrite it until its own desired state changes (or remove the annotation %s to hand it back)",
					rel.App, where, cur.Selector, applied.Selector, ErrDrift, AnnotationApplied)
			}
			return nil
		}
		s = s.DeepCopy()
		s.Spec.Selector = w.Selector
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[LabelApp] = rel.App
		s.Labels[LabelServiceRole] = w.Role
		setServiceRecord(s, want)
		if _, err := svcs.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return fmt.Errorf("apply %s: update %s: %w", rel.App, where, rbacHint(err, "update", "services", ns))
		}
		log.Info("service selector set", "service", w.Name, "role", w.Role, "selector", w.Selector)
		return nil
	})
}

// rbacHint adds to a Forbidden answer of the API server which permission
// graylane's account lacks and where the rules it needs are.
func rbacHint(err error, verb, resource, ns string) error {
	if !apierrors.IsForbidden(err) {
		return err
	}
	return &forbiddenError{err: err, hint: fmt.Sprintf("graylane's account may not %s %s in namespace %s: give it the rules of deployments/kubernetes/rbac.yaml (or rbac-namespaced.yaml; the Helm chart's rbac.create does)", verb, resource, ns)}
}

type forbiddenError struct {
	err  error
	hint string
}

func (e *forbiddenError) Error() string { return e.err.Error() + " (" + e.hint + ")" }
func (e *forbiddenError) Unwrap() error { return e.err }

func setServiceRecord(s *corev1.Service, r serviceRecord) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	b, _ := json.Marshal(r)
	s.Annotations[AnnotationApplied] = string(b)
	if r.Split == "" {
		delete(s.Annotations, AnnotationSplit)
	} else {
		s.Annotations[AnnotationSplit] = r.Split
	}
}
