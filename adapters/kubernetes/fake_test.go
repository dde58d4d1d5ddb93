package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/kubernetes"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// Edge cases a real API server does not stage on demand: write conflicts,
// permission errors on one verb, and objects the API server would reject.

func fakeBackend(t *testing.T, namespaces ...string) (*kubernetes.Backend, *fake.Clientset) {
	cs := fake.NewClientset()
	b, err := kubernetes.New(kubernetes.Config{Client: cs, Namespaces: namespaces, Logger: logger(t), SyncTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, cs
}

func writes(cs *fake.Clientset, verb, resource string) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

func TestApplyRetriesWriteConflicts(t *testing.T) {
	ctx := context.Background()
	b, cs := fakeBackend(t)
	rel := release("cart", "shop", "v1", nil)
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 2}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	conflicts := 0
	cs.PrependReactor("update", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "cart", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 3}, adapters.NoStep); err != nil {
		t.Fatalf("Apply after a conflict: %v", err)
	}
	d, err := cs.AppsV1().Deployments("shop").Get(ctx, "cart", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 3 || conflicts != 1 || writes(cs, "update", "deployments") != 2 {
		t.Fatalf("replicas %d after %d conflicts and %d updates; want 3 after one retried conflict", *d.Spec.Replicas, conflicts, writes(cs, "update", "deployments"))
	}
	// idempotent: the same Apply writes nothing
	before := writes(cs, "update", "deployments")
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 3}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	if after := writes(cs, "update", "deployments"); after != before {
		t.Fatalf("a repeated Apply wrote %d times", after-before)
	}
}

func TestApplyNamesTheObjectOnAPIErrors(t *testing.T) {
	ctx := context.Background()
	b, cs := fakeBackend(t)
	rel := release("cart", "shop", "v1", nil)
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 2}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	cs.PrependReactor("update", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "cart", errors.New("RBAC: update not allowed"))
	})
	err := b.Apply(ctx, rel, traffic.Replicas{"v1": 3}, adapters.NoStep)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "deployment shop/cart") || !strings.Contains(err.Error(), "apply cart") {
		t.Fatalf("Apply = %v; want a wrapped Forbidden naming app cart and deployment shop/cart", err)
	}
}

func TestApplyOutsideWatchedNamespaces(t *testing.T) {
	b, cs := fakeBackend(t, "shop")
	err := b.Apply(context.Background(), release("cart", "other", "v1", nil), traffic.Replicas{"v1": 1}, adapters.NoStep)
	if !errors.Is(err, kubernetes.ErrNamespaceNotWatched) {
		t.Fatalf("Apply in an unwatched namespace = %v, want ErrNamespaceNotWatched", err)
	}
	if n := len(cs.Actions()); n != 0 {
		t.Fatalf("%d API calls for an unwatched namespace, want none", n)
	}
}

func TestApplyRejectsTemplatesTheAPIWouldNot(t *testing.T) {
	b, cs := fakeBackend(t)
	rel := release("cart", "shop", "v1", nil, func(r *spec.Release) {
		r.Backend.Kubernetes.Template["spec"] = map[string]any{"containers": []any{map[string]any{"name": "app", "portz": []any{}}}}
	})
	err := b.Apply(context.Background(), rel, traffic.Replicas{"v1": 1}, adapters.NoStep)
	if err == nil || !strings.Contains(err.Error(), "portz") || !strings.Contains(err.Error(), "deployment shop/cart") {
		t.Fatalf("Apply with an unknown pod template field = %v, want an error naming portz and the deployment", err)
	}
	if n := writes(cs, "create", "deployments"); n != 0 {
		t.Fatalf("%d deployments created from an invalid template", n)
	}
}

func TestObserveReportsDeploymentProblems(t *testing.T) {
	ctx := context.Background()
	b, cs := fakeBackend(t)
	rel := release("cart", "shop", "v1", nil)
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 1}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	// The fake has no controllers: write the pod and the conditions the
	// deployment and replicaset controllers would.
	d, _ := cs.AppsV1().Deployments("shop").Get(ctx, "cart", metav1.GetOptions{})
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: "True", Reason: "FailedCreate", Message: `pods "cart-1" is forbidden: exceeded quota`}}
	if _, err := cs.AppsV1().Deployments("shop").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := podFromTemplate(d, "cart-abc")
	if _, err := cs.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	in := observeOne(t, b, "cart", "reported the ReplicaFailure", func(in adapters.Instance) bool {
		return strings.HasPrefix(in.Meta[kubernetes.MetaDeploymentProblem], "ReplicaFailure: FailedCreate")
	})
	if in.Ready || in.Version != "v1" || !strings.Contains(in.Message, "exceeded quota") {
		t.Fatalf("instance %+v", in)
	}
}

// observeOne polls Observe (the informers catch up with the fake's
// writes asynchronously) until app has one instance for which ok holds.
func observeOne(t *testing.T, b *kubernetes.Backend, app, what string, ok func(adapters.Instance) bool) adapters.Instance {
	t.Helper()
	var in adapters.Instance
	testenv.Eventually(t, 10*time.Second, what, func() error {
		ins, err := b.Observe(context.Background(), app)
		if err != nil {
			t.Fatal(err)
		}
		if len(ins) == 1 && ok(ins[0]) {
			in = ins[0]
			return nil
		}
		return fmt.Errorf("instances %+v", ins)
	})
	return in
}

func podFromTemplate(d *appsv1.Deployment, name string) *corev1.Pod {
	t := d.Spec.Template
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace, Labels: t.Labels, Annotations: t.Annotations},
		Spec:       t.Spec,
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
}

// A Deployment's ProgressDeadlineExceeded marks its instances stalled (for
// the planner) only when the controller set it for the current spec: a
// condition left from before the last change is stale.
func TestObserveReportsStallForCurrentGenerationOnly(t *testing.T) {
	ctx := context.Background()
	b, cs := fakeBackend(t)
	rel := release("cart", "shop", "v2", nil)
	if err := b.Apply(ctx, rel, traffic.Replicas{"v2": 1}, adapters.NoStep); err != nil {
		t.Fatal(err)
	}
	d, _ := cs.AppsV1().Deployments("shop").Get(ctx, "cart", metav1.GetOptions{})
	pod := podFromTemplate(d, "cart-abc")
	if _, err := cs.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setStatus := func(observed int64) {
		t.Helper()
		d, _ := cs.AppsV1().Deployments("shop").Get(ctx, "cart", metav1.GetOptions{})
		d.Generation = 4
		d.Status.ObservedGeneration = observed
		d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: "False",
			Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "cart-7d9" has timed out progressing.`}}
		if _, err := cs.AppsV1().Deployments("shop").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(3) // the controller has not seen generation 4 yet
	in := observeOne(t, b, "cart", "reported the condition", func(in adapters.Instance) bool {
		return strings.HasPrefix(in.Meta[kubernetes.MetaDeploymentProblem], "ProgressDeadlineExceeded")
	})
	if s := in.Meta[adapters.MetaStalled]; s != "" {
		t.Fatalf("stalled %q from a condition of an older generation", s)
	}
	setStatus(4)
	in = observeOne(t, b, "cart", "stalled", func(in adapters.Instance) bool { return in.Meta[adapters.MetaStalled] != "" })
	if s := in.Meta[adapters.MetaStalled]; !strings.Contains(s, "ProgressDeadlineExceeded") || !strings.Contains(s, "cart") || in.Version != "v2" {
		t.Fatalf("stalled %q on %s", s, in.Version)
	}
}

// A rolling update keeps its target while the Deployment controller gets
// ahead of graylane. The engine plans from one Observe and applies a little
// later; meanwhile the controller replaced another old pod by a new one. The
// old version's want (what the engine saw of it, less what it may remove)
// then exceeds the pods left: that is the controller's progress, not a
// request to roll back, and the Deployment's template must stay on the new
// version (switching it back and forth is what made TestKubernetes/Rolling
// see the Deployment's generation go from 1 to 4 under load).
func TestRollingKeepsItsTargetWhileTheControllerIsAhead(t *testing.T) {
	ctx := context.Background()
	b, cs := fakeBackend(t, "shop")
	rel := func(v string) *spec.Release {
		return release("cart", "shop", v, nil, replicas(4), rolling(1, 1))
	}
	var pods []string
	setPods := func(counts map[string]int) {
		t.Helper()
		for _, name := range pods {
			if err := cs.CoreV1().Pods("shop").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		pods = nil
		for v, n := range counts {
			for i := range n {
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
					Name: fmt.Sprintf("cart-%s-%d", v, i), Namespace: "shop",
					Labels:      map[string]string{kubernetes.LabelApp: "cart", kubernetes.LabelDeployment: "cart"},
					Annotations: map[string]string{kubernetes.AnnotationVersion: v},
				}}
				if _, err := cs.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				pods = append(pods, p.Name)
			}
		}
		// the informer's cache has it once Observe reports it
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("pods %v in the cache", counts), func() error {
			ins, err := b.Observe(ctx, "cart")
			if err != nil {
				return err
			}
			got := map[string]int{}
			for _, in := range ins {
				got[in.Version]++
			}
			return testenv.Check(fmt.Sprint(got) == fmt.Sprint(counts), "cache has %v", got)
		})
	}
	template := func() string {
		d, err := cs.AppsV1().Deployments("shop").Get(ctx, "cart", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Annotations[kubernetes.AnnotationVersion]
	}
	apply := func(v string, want traffic.Replicas) {
		t.Helper()
		if err := b.Apply(ctx, rel(v), want, adapters.NoStep); err != nil {
			t.Fatal(err)
		}
	}

	apply("v1", traffic.Replicas{"v1": 4})
	setPods(map[string]int{"v1": 4})
	apply("v2", traffic.Replicas{"v1": 3, "v2": 1}) // the roll starts
	if got := template(); got != "v2" {
		t.Fatalf("the roll did not start: template on %q", got)
	}
	updates := writes(cs, "update", "deployments")

	// The engine observes {v1: 3, v2: 2} and plans {v1: 3, v2: 2}; before it
	// applies, the controller has replaced one more v1 pod (and something
	// else, say a proxy following the app, observed that).
	setPods(map[string]int{"v1": 3, "v2": 2}) // ends with an Observe: the engine's view
	setPods(map[string]int{"v1": 2, "v2": 3})
	apply("v2", traffic.Replicas{"v1": 3, "v2": 2})
	if got := template(); got != "v2" {
		t.Fatalf("the Deployment's template went back to %q while the roll to v2 was ahead of graylane", got)
	}
	if n := writes(cs, "update", "deployments") - updates; n != 0 {
		t.Fatalf("graylane wrote the Deployment %d times mid-roll; want none", n)
	}

	// A real roll back (the engine wants v1 back at full size, v2 gone) is
	// still one.
	apply("v2", traffic.Replicas{"v1": 4, "v2": 0})
	if got := template(); got != "v1" {
		t.Fatalf("rolled back: template on %q, want v1", got)
	}
}
