package kubernetes_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/kubestack"
	"github.com/graylane/graylane/testsupport/testenv"
)

// BenchmarkRolloutVersionEdit measures, on the real control plane, a
// rolling update of a 4-replica Deployment whose pods become Ready 2 s after
// they start (maxSurge 1, maxUnavailable 0), two ways in each iteration:
//
//   - controller: a bare image patch of a Deployment graylane does not
//     manage, until the Deployment reports the rollout complete (what
//     `kubectl rollout status` waits for);
//   - graylane: a version edit in the config source, until graylane reports
//     the new version Healthy. The same Deployment is watched meanwhile, so
//     graylane's overhead is split into edit -> image patch and Deployment
//     complete -> Healthy.
//
// Run: GRAYLANE_INTEGRATION=1 go test -run '^$' -bench RolloutVersionEdit -benchtime 5x ./adapters/kubernetes/
func BenchmarkRolloutVersionEdit(b *testing.B) {
	testenv.IntegrationTest(b)
	c := startCluster(b)
	cs := c.Clientset()
	ready := kubestack.ReadyAfter(2 * time.Second)

	bareNS := c.NewNamespace(b)
	bare := bareDeployment("bare", ready)
	if _, err := cs.AppsV1().Deployments(bareNS).Create(context.Background(), bare, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	waitComplete(b, cs, bareNS, "bare", "registry.example.com/shop/bare:v0", time.Now())

	r := newRig(b, c, "bench")
	rel := func(v string) *spec.Release {
		return release("bench", r.ns, v, ready, replicas(4), rolling(1, 0))
	}
	r.put(rel("v0"))
	r.healthy("v0", 4, 60*time.Second)

	var ctrl, gray, toPatch, tail []time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		v := fmt.Sprintf("v%d", i)

		// controller alone
		img := "registry.example.com/shop/bare:" + v
		start := time.Now()
		patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, img)
		if _, err := cs.AppsV1().Deployments(bareNS).Patch(context.Background(), "bare", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
		ctrl = append(ctrl, waitComplete(b, cs, bareNS, "bare", img, start).complete)

		// graylane
		msgs, unsubscribe := r.eng.Broker().Subscribe("bench")
		w := startWatch(b, cs, r.ns, "bench", image("bench", v))
		start = time.Now()
		got := make(chan marks, 1)
		go func() { got <- w.wait(b, start) }()
		r.put(rel(v))
		var healthy time.Duration
		for healthy == 0 {
			select {
			case m := <-msgs:
				if m.App != nil && m.App.Status.Phase == rollout.Healthy && m.App.Status.StableVersion == v {
					healthy = time.Since(start)
				}
			case <-time.After(2 * time.Minute):
				b.Fatalf("%s not Healthy after 2m", v)
			}
		}
		unsubscribe()
		k := <-got
		if b.Failed() {
			b.FailNow()
		}
		gray = append(gray, healthy)
		toPatch = append(toPatch, k.patched)
		tail = append(tail, healthy-k.complete)
	}
	b.StopTimer()
	ms := func(ds []time.Duration) float64 {
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return float64(sum.Microseconds()) / 1000 / float64(len(ds))
	}
	b.ReportMetric(ms(ctrl)/1000, "controller-s/rollout")
	b.ReportMetric(ms(gray)/1000, "graylane-s/rollout")
	b.ReportMetric(ms(gray)-ms(ctrl), "overhead-ms/rollout")
	b.ReportMetric(ms(toPatch), "edit-to-patch-ms")
	b.ReportMetric(ms(tail), "complete-to-healthy-ms")
	b.Logf("controller %v; graylane %v; edit->patch %v; deployment complete->Healthy %v", sorted(ctrl), sorted(gray), sorted(toPatch), sorted(tail))
}

func sorted(ds []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), ds...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	for i := range out {
		out[i] = out[i].Round(time.Millisecond)
	}
	return out
}

func bareDeployment(name string, annotations map[string]string) *appsv1.Deployment {
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(4)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/shop/" + name + ":v0"}}},
			},
		},
	}
}

// marks are when a watched Deployment first showed the new image and when
// it first reported that image rolled out completely.
type marks struct{ patched, complete time.Duration }

type deploymentWatch struct {
	w     watch.Interface
	image string
}

func startWatch(tb testing.TB, cs k8s.Interface, ns, name, image string) *deploymentWatch {
	tb.Helper()
	w, err := cs.AppsV1().Deployments(ns).Watch(context.Background(), metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		tb.Fatal(err)
	}
	return &deploymentWatch{w: w, image: image}
}

// wait returns the marks relative to start, reading the watch until the
// rollout is complete. It may run in its own goroutine (it reports
// failures with Error).
func (dw *deploymentWatch) wait(tb testing.TB, start time.Time) marks {
	defer dw.w.Stop()
	var m marks
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-dw.w.ResultChan():
			if !ok {
				tb.Error("deployment watch closed")
				return m
			}
			d, isDep := ev.Object.(*appsv1.Deployment)
			if !isDep {
				continue
			}
			now := time.Since(start)
			if m.patched == 0 && d.Spec.Template.Spec.Containers[0].Image == dw.image {
				m.patched = now
			}
			if ok, _ := rolledOut(d, dw.image); ok && m.patched != 0 {
				m.complete = now
				return m
			}
		case <-timeout:
			tb.Errorf("deployment not rolled out to %s after 2m", dw.image)
			return m
		}
	}
}

func waitComplete(tb testing.TB, cs k8s.Interface, ns, name, image string, start time.Time) marks {
	tb.Helper()
	w := startWatch(tb, cs, ns, name, image)
	return w.wait(tb, start)
}
