package kubernetes

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/graylane/graylane/adapters"
)

// Instance.Meta keys set by Observe.
const (
	MetaNamespace  = "namespace"
	MetaNode       = "node"
	MetaDeployment = "deployment"
	MetaImage      = "image"
	// MetaDrift says how the pod's Deployment was changed outside graylane.
	MetaDrift = "drift"
	// MetaDeploymentProblem carries a failing Deployment condition, e.g.
	// "ProgressDeadlineExceeded: ReplicaSet \"cart-7d9\" has timed out progressing."
	MetaDeploymentProblem = "deploymentProblem"
)

// Observe returns one instance per pod of the app (labelled
// graylane.io/app) in the watched namespaces, from the informers' caches:
// ID is the pod name, Version its graylane.io/version annotation, Addr its
// pod IP and port, Ready its Ready condition. Terminating pods are left out
// (they are on their way out and out of the Service's endpoints). Problems
// of a pod's Deployment (drift, ProgressDeadlineExceeded) are reported in
// its Meta and Message and logged once.
func (b *Backend) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.caches(ctx); err != nil {
		return nil, fmt.Errorf("observe %s: %w", app, err)
	}
	problems := b.deploymentProblems(app)
	var out []adapters.Instance
	for _, p := range b.cachedPods(app) {
		if p.DeletionTimestamp != nil {
			continue
		}
		in := adapters.Instance{
			ID:      p.Name,
			Version: podVersion(p),
			Ready:   podReady(p),
			Meta: map[string]string{
				MetaNamespace:  p.Namespace,
				MetaDeployment: p.Labels[LabelDeployment],
			},
		}
		if p.Spec.NodeName != "" {
			in.Meta[MetaNode] = p.Spec.NodeName
		}
		if c := podContainer(p); c != nil {
			in.Meta[MetaImage] = c.Image
		}
		if port := p.Annotations[AnnotationPort]; port != "" && p.Status.PodIP != "" {
			in.Addr = net.JoinHostPort(p.Status.PodIP, port)
		}
		if !in.Ready {
			in.Message = podMessage(p)
		}
		if pr, ok := problems[p.Namespace+"/"+p.Labels[LabelDeployment]]; ok {
			if pr.drift != "" {
				in.Meta[MetaDrift] = pr.drift
			}
			if pr.stalled != "" {
				in.Meta[adapters.MetaStalled] = pr.stalled
			}
			if pr.condition != "" {
				in.Meta[MetaDeploymentProblem] = pr.condition
				if !in.Ready {
					in.Message += "; deployment " + pr.condition
				}
			}
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	b.remember(app, out)
	return out, nil
}

func seenKey(ns, version string) string { return ns + "/" + version }

// remember keeps, per namespace and version, the most pods Observe reported of app since
// its last Apply (see rollingView). It changes nothing Observe or any other
// caller sees.
func (b *Backend) remember(app string, ins []adapters.Instance) {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := b.seen[app]
	if seen == nil {
		seen = map[string]int{}
		b.seen[app] = seen
	}
	counts := map[string]int{}
	for _, in := range ins {
		counts[seenKey(in.Meta[MetaNamespace], in.Version)]++
	}
	for v, n := range counts {
		seen[v] = max(seen[v], n)
	}
}

// problem is what is wrong with a Deployment: drift, a failing condition,
// and whether the Deployment controller gave up on the rollout (stalled).
type problem struct{ drift, condition, stalled string }

// deploymentProblems finds drift and failing conditions on the app's
// Deployments (keyed namespace/name) and logs each new one once.
func (b *Backend) deploymentProblems(app string) map[string]problem {
	out := map[string]problem{}
	for _, d := range b.cachedDeployments(app) {
		if !managed(d) {
			continue
		}
		var pr problem
		if applied, ok := appliedRecord(d); ok {
			pr.drift = applied.drift(liveRecord(d))
		}
		pr.condition = failingCondition(d)
		pr.stalled = stalled(d)
		key := d.Namespace + "/" + d.Name
		msg := pr.drift + "|" + pr.condition
		b.mu.Lock()
		changed := b.reported[key] != msg
		b.reported[key] = msg
		b.mu.Unlock()
		if changed && pr.drift != "" {
			b.log.Warn("deployment changed outside graylane (drift)", "app", app, "namespace", d.Namespace, "deployment", d.Name, "drift", pr.drift)
		}
		if changed && pr.condition != "" {
			b.log.Warn("deployment is failing", "app", app, "namespace", d.Namespace, "deployment", d.Name, "condition", pr.condition)
		}
		if pr != (problem{}) {
			out[key] = pr
		}
	}
	return out
}

// failingCondition reports ProgressDeadlineExceeded and ReplicaFailure.
func failingCondition(d *appsv1.Deployment) string {
	if msg, ok := deadlineExceeded(d); ok {
		return "ProgressDeadlineExceeded: " + msg
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return "ReplicaFailure: " + c.Reason + ": " + c.Message
		}
	}
	return ""
}

// deadlineExceeded returns the message of the Deployment's
// ProgressDeadlineExceeded condition, if it has one.
func deadlineExceeded(d *appsv1.Deployment) (string, bool) {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return c.Message, true
		}
	}
	return "", false
}

// stalled reports a ProgressDeadlineExceeded the Deployment controller
// set for the Deployment's current spec: a condition from before the last
// change (status.observedGeneration behind metadata.generation) is stale,
// e.g. right after graylane rolled the image back.
func stalled(d *appsv1.Deployment) string {
	if d.Status.ObservedGeneration != d.Generation {
		return ""
	}
	if msg, ok := deadlineExceeded(d); ok {
		return "Deployment " + d.Name + ": ProgressDeadlineExceeded: " + msg
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podContainer(p *corev1.Pod) *corev1.Container {
	name := p.Annotations[AnnotationContainer]
	for i := range p.Spec.Containers {
		if name == "" || p.Spec.Containers[i].Name == name {
			return &p.Spec.Containers[i]
		}
	}
	return nil
}

// podMessage explains a pod that is not ready.
func podMessage(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return strings.TrimSpace("unschedulable: " + c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "ContainerCreating":
			msg := cs.Name + ": " + cs.State.Waiting.Reason
			if cs.RestartCount > 0 {
				msg += fmt.Sprintf(" (%d restarts)", cs.RestartCount)
			}
			return msg
		case cs.State.Terminated != nil:
			return fmt.Sprintf("%s: exited: %s (exit code %d)", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		}
	}
	switch p.Status.Phase {
	case corev1.PodPending, "":
		return "pending"
	case corev1.PodRunning:
		return "running, not ready"
	default:
		return strings.ToLower(string(p.Status.Phase))
	}
}
