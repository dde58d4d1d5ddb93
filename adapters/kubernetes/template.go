package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/graylane/graylane/spec"
)

// deployRecord is the part of a Deployment graylane owns. Its JSON is kept
// in AnnotationApplied; the live object's record differing from it is drift.
type deployRecord struct {
	Version                 string `json:"version"`
	Image                   string `json:"image"`
	Replicas                int32  `json:"replicas"`
	MaxSurge                string `json:"maxSurge,omitempty"`
	MaxUnavailable          string `json:"maxUnavailable,omitempty"`
	ProgressDeadlineSeconds int32  `json:"progressDeadlineSeconds,omitempty"`
}

func (r deployRecord) json() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// appliedRecord returns the record graylane last wrote on d, if any.
func appliedRecord(d *appsv1.Deployment) (deployRecord, bool) {
	raw := d.Annotations[AnnotationApplied]
	if raw == "" {
		return deployRecord{}, false
	}
	var r deployRecord
	if json.Unmarshal([]byte(raw), &r) != nil {
		return deployRecord{}, false
	}
	return r, true
}

// liveRecord reads graylane's fields from a live Deployment.
func liveRecord(d *appsv1.Deployment) deployRecord {
	r := deployRecord{Version: d.Spec.Template.Annotations[AnnotationVersion]}
	if d.Spec.Replicas != nil {
		r.Replicas = *d.Spec.Replicas
	} else {
		r.Replicas = 1
	}
	if c := findContainer(&d.Spec.Template, d.Spec.Template.Annotations[AnnotationContainer]); c != nil {
		r.Image = c.Image
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			r.MaxSurge = ru.MaxSurge.String()
		}
		if ru.MaxUnavailable != nil {
			r.MaxUnavailable = ru.MaxUnavailable.String()
		}
	}
	if d.Spec.ProgressDeadlineSeconds != nil {
		r.ProgressDeadlineSeconds = *d.Spec.ProgressDeadlineSeconds
	}
	return r
}

// drift describes how live differs from what graylane applied ("" if not).
func (r deployRecord) drift(live deployRecord) string {
	var d []string
	if live.Replicas != r.Replicas {
		d = append(d, fmt.Sprintf("replicas %d (graylane set %d)", live.Replicas, r.Replicas))
	}
	if live.Image != r.Image {
		d = append(d, fmt.Sprintf("image %s (graylane set %s)", live.Image, r.Image))
	}
	if live.Version != r.Version {
		d = append(d, fmt.Sprintf("template version %q (graylane set %q)", live.Version, r.Version))
	}
	if live.MaxSurge != r.MaxSurge || live.MaxUnavailable != r.MaxUnavailable {
		d = append(d, fmt.Sprintf("maxSurge/maxUnavailable %s/%s (graylane set %s/%s)", live.MaxSurge, live.MaxUnavailable, r.MaxSurge, r.MaxUnavailable))
	}
	if live.ProgressDeadlineSeconds != r.ProgressDeadlineSeconds {
		d = append(d, fmt.Sprintf("progressDeadlineSeconds %d (graylane set %d)", live.ProgressDeadlineSeconds, r.ProgressDeadlineSeconds))
	}
	return strings.Join(d, ", ")
}

// strategy maps the spec's rolling parameters onto a Deployment's.
func strategy(rel *spec.Release) (surge, unavail intstr.IntOrString, deadline int32) {
	conv := func(v *spec.IntOrPercent) intstr.IntOrString {
		if v == nil {
			return intstr.FromString("25%")
		}
		if v.Percent {
			return intstr.FromString(v.String())
		}
		return intstr.FromInt32(int32(v.Value))
	}
	s := &rel.Strategy
	d := math.Ceil(s.EffectiveProgressDeadline().Seconds())
	return conv(s.MaxSurge), conv(s.MaxUnavailable), int32(max(1, min(d, math.MaxInt32)))
}

// desiredRecord is what graylane wants of a Deployment holding version v.
func desiredRecord(rel *spec.Release, kb *spec.KubernetesBackend, v string, replicas int) (deployRecord, error) {
	img, err := spec.RenderKubernetes(kb.Image, spec.KubernetesTemplateData{App: rel.App, Version: spec.CodeVersion(v)})
	if err != nil {
		return deployRecord{}, fmt.Errorf("render image for %s: %w", v, err)
	}
	surge, unavail, deadline := strategy(rel)
	return deployRecord{Version: v, Image: img, Replicas: int32(replicas),
		MaxSurge: surge.String(), MaxUnavailable: unavail.String(), ProgressDeadlineSeconds: deadline}, nil
}

// specTemplate renders the spec's pod template for version v and decodes it
// strictly (an unknown field is an error).
func specTemplate(rel *spec.Release, kb *spec.KubernetesBackend, v string) (*corev1.PodTemplateSpec, error) {
	rendered, err := spec.RenderKubernetesTemplate(map[string]any(kb.Template), spec.KubernetesTemplateData{App: rel.App, Version: v})
	if err != nil {
		return nil, fmt.Errorf("render backend.kubernetes.template: %w", err)
	}
	raw, err := json.Marshal(rendered)
	if err != nil {
		return nil, fmt.Errorf("backend.kubernetes.template: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var t corev1.PodTemplateSpec
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("backend.kubernetes.template is not a pod template: %w", err)
	}
	return &t, nil
}

// findContainer returns the container named name, or the first one when
// name is "".
func findContainer(t *corev1.PodTemplateSpec, name string) *corev1.Container {
	for i := range t.Spec.Containers {
		if name == "" || t.Spec.Containers[i].Name == name {
			return &t.Spec.Containers[i]
		}
	}
	return nil
}

// versionTemplate turns base (the spec's template, or the primary
// Deployment's) into version v's pod template for Deployment depName: the
// versioned container's image, graylane's labels and annotations.
func versionTemplate(rel *spec.Release, kb *spec.KubernetesBackend, base *corev1.PodTemplateSpec, v, depName string, rec deployRecord) (corev1.PodTemplateSpec, error) {
	t := *base.DeepCopy()
	c := findContainer(&t, kb.Container)
	if c == nil {
		return t, fmt.Errorf("pod template of %s has no container %q", depName, kb.Container)
	}
	c.Image = rec.Image
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	t.Labels[LabelApp] = rel.App
	t.Labels[LabelVersion] = VersionLabel(v)
	t.Labels[LabelDeployment] = depName
	t.Annotations[AnnotationVersion] = v
	t.Annotations[AnnotationContainer] = c.Name
	delete(t.Annotations, AnnotationPort)
	if len(c.Ports) > 0 {
		t.Annotations[AnnotationPort] = strconv.Itoa(int(c.Ports[0].ContainerPort))
	} else if s := kb.Service; s != nil && s.TargetPort > 0 {
		t.Annotations[AnnotationPort] = strconv.Itoa(s.TargetPort)
	}
	return t, nil
}

// applyRecord writes rec into d's spec and annotations.
func applyRecord(d *appsv1.Deployment, rec deployRecord) {
	n := rec.Replicas
	d.Spec.Replicas = &n
	surge, unavail := intstr.Parse(rec.MaxSurge), intstr.Parse(rec.MaxUnavailable)
	d.Spec.Strategy = appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail},
	}
	pd := rec.ProgressDeadlineSeconds
	d.Spec.ProgressDeadlineSeconds = &pd
	if c := findContainer(&d.Spec.Template, d.Spec.Template.Annotations[AnnotationContainer]); c != nil {
		c.Image = rec.Image
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationApplied] = rec.json()
	d.Annotations[AnnotationVersion] = rec.Version
	d.Annotations[AnnotationManagedBy] = ManagedBy
}

// newDeployment builds a Deployment graylane creates.
func newDeployment(app, ns, name string, tmpl corev1.PodTemplateSpec, rec deployRecord) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   ns,
			Labels:      map[string]string{LabelApp: app},
			Annotations: map[string]string{AnnotationCreated: "true"},
		},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelApp: app, LabelDeployment: name}},
			Template: tmpl,
		},
	}
	applyRecord(d, rec)
	return d
}
