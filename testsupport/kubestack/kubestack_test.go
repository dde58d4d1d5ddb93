package kubestack_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/graylane/graylane/testsupport/kubestack"
	"github.com/graylane/graylane/testsupport/testenv"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testenv.Integration() {
		os.Exit(m.Run()) // the unit tier builds no control plane
	}
	// Build (or find in the cache) the binaries before m.Run: go test's
	// -timeout alarm starts in m.Run, and a cold build takes minutes. An
	// error is remembered and reported by Start (fail or skip).
	start := time.Now()
	err := kubestack.BuildBinaries()
	if testing.Verbose() || err != nil {
		fmt.Printf("kubestack: BuildBinaries took %v (err=%v)\n", time.Since(start).Round(time.Millisecond), err)
	}
	os.Exit(m.Run())
}

// TestStack starts one control plane and proves, in parallel subtests, that
// Deployments roll out for real and that kwok's annotations make pods slow,
// never ready or crash-looping.
func TestStack(t *testing.T) {
	testenv.IntegrationTest(t)
	began := time.Now()
	c := kubestack.Start(t)
	logRSS(t, c, "after start")
	t.Cleanup(func() {
		logRSS(t, c, "at end")
		t.Logf("kubestack: test body took %v (start %v)", time.Since(began).Round(time.Millisecond), c.StartupTime().Round(time.Millisecond))
	})
	if _, err := os.Stat(c.Kubeconfig()); err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	if v, err := c.Clientset().Discovery().ServerVersion(); err != nil || v.GitVersion != kubestack.KubernetesVersion {
		t.Fatalf("server version = %v, %v; want %s", v, err, kubestack.KubernetesVersion)
	}

	t.Run("RollingUpdate", func(t *testing.T) { t.Parallel(); testRollingUpdate(t, c) })
	t.Run("SlowReadiness", func(t *testing.T) { t.Parallel(); testSlowReadiness(t, c) })
	t.Run("ProgressDeadlineExceeded", func(t *testing.T) { t.Parallel(); testProgressDeadline(t, c) })
	t.Run("CrashLoop", func(t *testing.T) { t.Parallel(); testCrashLoop(t, c) })
}

func logRSS(t *testing.T, c *kubestack.Cluster, when string) {
	rss := c.RSS()
	var total uint64
	var parts []string
	for comp, b := range rss {
		total += b
		parts = append(parts, fmt.Sprintf("%s=%dMiB", comp, b>>20))
	}
	sort.Strings(parts)
	t.Logf("kubestack: RSS %s: total %d MiB (%s)", when, total>>20, strings.Join(parts, " "))
}

func deployment(name string, replicas int32, image string, annotations map[string]string) *appsv1.Deployment {
	one := intstr.FromInt32(1)
	zero := intstr.FromInt32(0)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: name, Image: image}},
				},
			},
		},
	}
}

// waitFor polls cond (testenv.Poll) until it returns true or ctx ends; an
// error from cond fails the test at once.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	err := testenv.Poll(ctx, func() error {
		ok, err := cond()
		if err != nil {
			return testenv.Stop(err)
		}
		return testenv.Check(ok, "timed out")
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func testRollingUpdate(t *testing.T, c *kubestack.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := c.Clientset()
	ns := c.NewNamespace(t)
	deps := cs.AppsV1().Deployments(ns)

	if _, err := deps.Create(ctx, deployment("web", 4, "registry.example/web:v1", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitRolledOut(t, ctx, cs, ns, "web", 4, "registry.example/web:v1")
	t.Logf("initial rollout of 4 replicas took %v", time.Since(t0).Round(time.Millisecond))

	// Watch the rollout so maxSurge 1 / maxUnavailable 0 can be checked:
	// the ReplicaSets' desired sizes never add up to more than 4+1, and the
	// Deployment never reports fewer than 4 available. (Status counts of
	// pods lag behind scale-downs, so they may briefly add up to more.)
	rsList, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int32{}
	for _, rs := range rsList.Items {
		sizes[rs.Name] = *rs.Spec.Replicas
	}
	rsw, err := cs.AppsV1().ReplicaSets(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=web", ResourceVersion: rsList.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer rsw.Stop()
	dw, err := deps.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=web", ResourceVersion: rsList.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer dw.Stop()
	maxDesired := make(chan int32, 1)
	go func() {
		m := int32(0)
		for ev := range rsw.ResultChan() {
			if rs, ok := ev.Object.(*appsv1.ReplicaSet); ok {
				if ev.Type == watch.Deleted {
					delete(sizes, rs.Name)
				} else {
					sizes[rs.Name] = *rs.Spec.Replicas
				}
				sum := int32(0)
				for _, n := range sizes {
					sum += n
				}
				m = max(m, sum)
			}
		}
		maxDesired <- m
	}()
	minAvailable := make(chan int32, 1)
	go func() {
		m := int32(4)
		for ev := range dw.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				m = min(m, d.Status.AvailableReplicas)
			}
		}
		minAvailable <- m
	}()

	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.example/web:v2"}]}}}}`)
	t1 := time.Now()
	if _, err := deps.Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, ctx, cs, ns, "web", 4, "registry.example/web:v2")
	t.Logf("rolling update to v2 took %v", time.Since(t1).Round(time.Millisecond))
	rsw.Stop()
	dw.Stop()
	surge, avail := <-maxDesired, <-minAvailable
	t.Logf("during the update: ReplicaSets sized up to %d pods in all, at least %d available", surge, avail)
	if surge != 5 || avail < 4 {
		t.Errorf("rollout broke maxSurge 1 / maxUnavailable 0: ReplicaSets sized up to %d (want 5), down to %d available", surge, avail)
	}
}

// waitRolledOut waits until the Deployment has observed its spec and
// updatedReplicas == availableReplicas == readyReplicas == replicas == want,
// and exactly want pods, all Ready, run image.
func waitRolledOut(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, want int32, image string) {
	t.Helper()
	var last string
	waitFor(t, ctx, "rollout of "+image, func() (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := d.Status
		last = fmt.Sprintf("gen %d/%d replicas %d updated %d ready %d available %d",
			st.ObservedGeneration, d.Generation, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas)
		if st.ObservedGeneration < d.Generation || st.Replicas != want || st.UpdatedReplicas != want ||
			st.AvailableReplicas != want || st.ReadyReplicas != want ||
			d.Spec.Template.Spec.Containers[0].Image != image {
			return false, nil
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, err
		}
		n := int32(0)
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil {
				return false, nil
			}
			if p.Spec.Containers[0].Image != image || !podReady(p) {
				last += fmt.Sprintf("; pod %s image %s ready %v", p.Name, p.Spec.Containers[0].Image, podReady(p))
				return false, nil
			}
			n++
		}
		return n == want, nil
	})
	t.Logf("%s: %s", name, last)
}

func testSlowReadiness(t *testing.T, c *kubestack.Cluster) {
	const delay = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := c.Clientset()
	ns := c.NewNamespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "slow", Annotations: kubestack.ReadyAfter(delay)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/slow:v1"}}},
	}
	created := time.Now()
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var runningAt, readyAt time.Time
	waitFor(t, ctx, "slow pod Ready", func() (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "slow", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Status.Phase == corev1.PodRunning && runningAt.IsZero() {
			runningAt = time.Now()
			if podReady(p) {
				return false, fmt.Errorf("pod was Ready as soon as it was Running")
			}
		}
		if podReady(p) {
			readyAt = time.Now()
			return true, nil
		}
		return false, nil
	})
	if runningAt.IsZero() {
		t.Fatal("never saw the pod Running but not Ready")
	}
	t.Logf("slow pod: Running (not Ready) after %v, Ready after %v (annotation %s=%s)",
		runningAt.Sub(created).Round(time.Millisecond), readyAt.Sub(created).Round(time.Millisecond),
		kubestack.AnnotationReadyAfter, delay)
	// The delay starts when kwok sees the Running pod, a moment before we do.
	if got := readyAt.Sub(runningAt); got < delay-300*time.Millisecond {
		t.Errorf("pod became Ready %v after Running, want about %v", got, delay)
	}
	if got := readyAt.Sub(created); got > delay+10*time.Second {
		t.Errorf("pod became Ready only %v after creation, want about %v", got, delay)
	}
}

func testProgressDeadline(t *testing.T, c *kubestack.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := c.Clientset()
	ns := c.NewNamespace(t)
	d := deployment("stuck", 1, "registry.example/stuck:v1", kubestack.NeverReady())
	deadline := int32(15)
	d.Spec.ProgressDeadlineSeconds = &deadline
	created := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var cond appsv1.DeploymentCondition
	sawUnready := false
	waitFor(t, ctx, "ProgressDeadlineExceeded", func() (bool, error) {
		if !sawUnready {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=stuck"})
			if err != nil {
				return false, err
			}
			for i := range pods.Items {
				p := &pods.Items[i]
				if p.Status.Phase == corev1.PodRunning && !podReady(p) {
					sawUnready = true
				}
				if podReady(p) {
					return false, fmt.Errorf("never-ready pod %s became Ready", p.Name)
				}
			}
		}
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "stuck", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
				cond = c
				return true, nil
			}
		}
		return false, nil
	})
	elapsed := time.Since(created)
	t.Logf("ProgressDeadlineExceeded after %v: %s", elapsed.Round(time.Millisecond), cond.Message)
	if !sawUnready {
		t.Error("never saw the pod Running and not Ready")
	}
	if elapsed < 14*time.Second {
		t.Errorf("deadline exceeded after only %v, want >= ~15s", elapsed)
	}
}

func testCrashLoop(t *testing.T, c *kubestack.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := c.Clientset()
	ns := c.NewNamespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crash", Annotations: kubestack.CrashLoop()},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/crash:v1"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "crash-looping pod", func() (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "crash", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
			return false, err
		}
		st := p.Status.ContainerStatuses[0]
		if podReady(p) || st.Ready {
			return false, fmt.Errorf("crash-looping pod is Ready")
		}
		return st.State.Waiting != nil && st.State.Waiting.Reason == "CrashLoopBackOff" &&
			st.RestartCount > 0 && st.LastTerminationState.Terminated != nil &&
			st.LastTerminationState.Terminated.ExitCode == 1, nil
	})
}
