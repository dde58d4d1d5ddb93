package kubestack

import (
	"strings"
	"time"
)

// Pod annotations that make kwok (the fake kubelet) play a pod differently.
// Put them on a Pod, or on a Deployment's pod template, before the pod is
// scheduled; changing them later has no effect on a pod that already runs.
// A pod without any of them becomes Running and Ready at once.
//
// When several are set, AnnotationCrashLoop wins over AnnotationNeverReady,
// which wins over AnnotationReadyAfter.
const (
	// AnnotationReadyAfter holds a Go duration ("2s", "1m30s"). The pod becomes
	// Running at once with its containers started but not ready (like a
	// failing readiness probe) and turns Ready after that delay. The delay is
	// counted from the pod's last change as kwok sees it, which is normally
	// the moment it became Running; a later update to the pod restarts it.
	AnnotationReadyAfter = "kubestack.graylane.io/ready-after"

	// AnnotationNeverReady, set to "true", keeps the pod Running with its
	// containers started but never Ready: a rollout that waits for it stalls
	// and, past its progressDeadlineSeconds, the Deployment reports
	// Progressing=False with reason ProgressDeadlineExceeded.
	AnnotationNeverReady = "kubestack.graylane.io/never-ready"

	// AnnotationCrashLoop, set to "true", makes the pod look like a crashing
	// container: phase Running, Ready=False, every container waiting in
	// CrashLoopBackOff with restartCount 3 and a last state terminated with
	// exit code 1 (reason Error).
	AnnotationCrashLoop = "kubestack.graylane.io/crash-loop"
)

// ReadyAfter returns the annotations that make a pod Ready only d after it
// starts running (see AnnotationReadyAfter).
func ReadyAfter(d time.Duration) map[string]string {
	return map[string]string{AnnotationReadyAfter: d.String()}
}

// NeverReady returns the annotations that keep a pod from ever becoming
// Ready (see AnnotationNeverReady).
func NeverReady() map[string]string {
	return map[string]string{AnnotationNeverReady: "true"}
}

// CrashLoop returns the annotations that make a pod crash-loop (see
// AnnotationCrashLoop).
func CrashLoop() map[string]string {
	return map[string]string{AnnotationCrashLoop: "true"}
}

// kwokStages renders the pod Stages kwok is started with: kwok's own "fast"
// pod stages (ready, complete for Job pods, delete) restricted to pods
// without graylane's annotations, plus one stage set per annotation. Node
// stages are not listed, so kwok uses its defaults for them.
func kwokStages() string {
	notDeleted := expr(".metadata.deletionTimestamp", "DoesNotExist")
	noIP := expr(".status.podIP", "DoesNotExist")
	hasIP := expr(".status.podIP", "Exists")
	crash := annotation(AnnotationCrashLoop, "In", "true")
	noCrash := annotation(AnnotationCrashLoop, "NotIn", "true")
	never := annotation(AnnotationNeverReady, "In", "true")
	noNever := annotation(AnnotationNeverReady, "NotIn", "true")
	after := annotation(AnnotationReadyAfter, "Exists")
	noAfter := annotation(AnnotationReadyAfter, "DoesNotExist")
	notReady := expr(`.status.conditions.[] | select(.type == "Ready") | .status`, "In", "False")

	var b strings.Builder
	stage(&b, "pod-ready", "", podRunningTemplate(true), notDeleted, noIP, noCrash, noNever, noAfter)
	stage(&b, "graylane-pod-crash-loop", "", podCrashLoopTemplate, notDeleted, noIP, crash)
	stage(&b, "graylane-pod-never-ready", "", podRunningTemplate(false), notDeleted, noIP, noCrash, never)
	stage(&b, "graylane-pod-running-unready", "", podRunningTemplate(false), notDeleted, noIP, noCrash, noNever, after)
	stage(&b, "graylane-pod-ready-after", `.metadata.annotations["`+AnnotationReadyAfter+`"]`,
		podBecomeReadyTemplate, notDeleted, hasIP, noCrash, noNever, after, notReady)
	stage(&b, "pod-complete", "", podCompleteTemplate, notDeleted,
		expr(".status.phase", "In", "Running"), expr(".metadata.ownerReferences.[].kind", "In", "Job"))
	b.WriteString(podDeleteStage)
	return b.String()
}

func annotation(key, op string, values ...string) string {
	return expr(`.metadata.annotations["`+key+`"]`, op, values...)
}

// expr renders one kwok selector matchExpression (its key is a jq query).
func expr(key, op string, values ...string) string {
	s := "    - key: '" + key + "'\n      operator: '" + op + "'\n"
	if len(values) > 0 {
		s += "      values:\n"
		for _, v := range values {
			s += "      - '" + v + "'\n"
		}
	}
	return s
}

// stage renders one kwok Stage for pods. delayFrom, when set, is a jq query
// yielding a Go duration string to wait before the stage is played.
func stage(b *strings.Builder, name, delayFrom, template string, exprs ...string) {
	b.WriteString("---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: " + name + "\n")
	b.WriteString("spec:\n  resourceRef:\n    apiGroup: v1\n    kind: Pod\n  selector:\n    matchExpressions:\n")
	for _, e := range exprs {
		b.WriteString(e)
	}
	if delayFrom != "" {
		b.WriteString("  delay:\n    durationFrom:\n      expressionFrom: '" + delayFrom + "'\n")
	}
	b.WriteString("  next:\n    statusTemplate: |\n")
	for _, line := range strings.Split(strings.TrimSpace(template), "\n") {
		b.WriteString("      " + line + "\n")
	}
}

// podRunningTemplate is kwok's fast pod-ready template; with ready false the
// containers run but are not ready, like a failing readiness probe.
func podRunningTemplate(ready bool) string {
	r, reason := "True", ""
	if !ready {
		r, reason = "False", "\n  reason: ContainersNotReady"
	}
	return `
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "` + r + `"
  type: Ready` + reason + `
- lastTransitionTime: {{ $now | Quote }}
  status: "` + r + `"
  type: ContainersReady` + reason + `
{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: {{ .conditionType | Quote }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: ` + strings.ToLower(r) + `
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
initContainerStatuses:
{{ range .spec.initContainers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  {{ if eq .restartPolicy "Always" }}
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
  {{ else }}
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
  {{ end }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
`
}

// podBecomeReadyTemplate flips a running, unready pod to Ready (strategic
// merge: conditions merge by type; container statuses are rewritten).
const podBecomeReadyTemplate = `
{{ $now := Now }}
{{ $started := or .status.startTime $now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
  reason: ""
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
  reason: ""
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $started | Quote }}
{{ end }}
`

const podCrashLoopTemplate = `
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: Ready
  reason: ContainersNotReady
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: ContainersReady
  reason: ContainersNotReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: false
  restartCount: 3
  state:
    waiting:
      reason: CrashLoopBackOff
      message: {{ printf "back-off 40s restarting failed container=%s" .name | Quote }}
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
`

// podCompleteTemplate is kwok's fast pod-complete template (Job pods).
const podCompleteTemplate = `
{{ $now := Now }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
{{ end }}
phase: Succeeded
`

// podDeleteStage is kwok's fast pod-delete stage: a pod being deleted loses
// its finalizers and is removed at once (there is no container to stop).
const podDeleteStage = `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    finalizers:
      empty: true
    delete: true
`
