package kubernetes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"github.com/graylane/graylane/adapters/adaptertest"
	"github.com/graylane/graylane/adapters/kubernetes"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/kubestack"
	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/graylane/graylane/traffic"
)

// TestKubernetes starts one real control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok) and runs every scenario
// against it in parallel, each in its own namespace.
func TestKubernetes(t *testing.T) {
	testenv.IntegrationTest(t)
	began := time.Now()
	c := startCluster(t)
	t.Cleanup(func() {
		t.Logf("control plane up in %v; scenarios took %v", c.StartupTime().Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	})
	for _, s := range []struct {
		name string
		run  func(*testing.T, *kubestack.Cluster)
	}{
		{"BackendConformance", testBackendConformance},
		{"RouterConformance", testRouterConformance},
		{"Rolling", testRolling},
		{"Canary", testCanary},
		{"CanaryAbort", testCanaryAbort},
		{"BlueGreen", testBlueGreen},
		{"ProgressDeadlineRollsBack", testProgressDeadlineRollback},
		{"ProgressDeadlineReported", testProgressDeadlineReported},
		{"RestartMidCanary", testRestartMidCanary},
		{"Drift", testDrift},
		{"ServiceDrift", testServiceDrift},
		{"OperatorDeployment", testOperatorDeployment},
		{"DeleteApp", testDeleteApp},
		{"ShippedRBACIsEnough", testShippedRBAC},
		{"ServiceForbiddenIsNotHealthy", testServiceForbidden},
	} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t, c)
		})
	}
}

// testBackendConformance runs the shared Backend suite. Its releases are
// canaries: one Deployment per version, scaled exactly, which is what the
// suite's "never disturb another version" cases check. (A rolling release
// hands the roll to the Deployment controller, which replaces pods by
// design.)
func testBackendConformance(t *testing.T, c *kubestack.Cluster) {
	adaptertest.RunBackend(t, func(t *testing.T) *adaptertest.BackendHarness {
		ns := c.NewNamespace(t)
		be := newBackend(t, c.Clientset(), ns)
		return &adaptertest.BackendHarness{
			Backend:    be,
			Release:    func(v string) *spec.Release { return release("conf", ns, v, nil) },
			Eventually: 60 * time.Second,
		}
	})
}

// testRouterConformance runs the shared TrafficRouter suite against the
// Service router (there is no data plane to probe: the traffic cases skip;
// BlueGreen checks the Services' real endpoints).
func testRouterConformance(t *testing.T, c *kubestack.Cluster) {
	adaptertest.RunRouter(t, func(t *testing.T) *adaptertest.RouterHarness {
		ns := c.NewNamespace(t)
		be := newBackend(t, c.Clientset(), ns)
		return &adaptertest.RouterHarness{
			Router: be.Router(),
			Release: func(v string) *spec.Release {
				return release("route", ns, v, nil, blueGreen(false), withService)
			},
		}
	})
}

func rolling(surge, unavailable int) func(*spec.Release) {
	return func(r *spec.Release) {
		r.Strategy = spec.Strategy{Type: spec.Rolling, MaxSurge: spec.Int(surge), MaxUnavailable: spec.Int(unavailable)}
	}
}

func blueGreen(auto bool) func(*spec.Release) {
	return func(r *spec.Release) {
		r.Strategy = spec.Strategy{Type: spec.BlueGreen, AutoPromotionEnabled: ptr(auto), ScaleDownDelay: spec.D(time.Second)}
	}
}

func withService(r *spec.Release) { r.Backend.Kubernetes.Service = &spec.KubernetesService{Port: 80} }

func replicas(n int) func(*spec.Release) { return func(r *spec.Release) { r.Replicas = ptr(n) } }

func image(app, v string) string { return "registry.example.com/shop/" + app + ":" + v }

// testRolling: a version change in the source rolls the one Deployment in
// place through its own RollingUpdate; availability never drops below
// replicas - maxUnavailable.
func testRolling(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "roll")
	rel := func(v string) *spec.Release {
		return release("roll", r.ns, v, kubestack.ReadyAfter(time.Second), replicas(4), rolling(1, 1))
	}
	r.put(rel("v1"))
	r.healthy("v1", 4, 60*time.Second)
	d := getDeployment(t, r.cs, r.ns, "roll")
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxSurge.String() != "1" || ru.MaxUnavailable.String() != "1" || ptrVal(d.Spec.ProgressDeadlineSeconds) != 600 {
		t.Fatalf("deployment strategy %+v, progressDeadlineSeconds %v; want maxSurge 1, maxUnavailable 1, 600", d.Spec.Strategy, d.Spec.ProgressDeadlineSeconds)
	}

	genBefore := d.Generation
	watch := watchAvailability(t, r.cs, r.ns, "roll")
	started := time.Now()
	r.put(rel("v2"))
	v := r.healthy("v2", 4, 90*time.Second)
	took := time.Since(started)
	waitCluster(t, "deployment rolled out to v2", 30*time.Second, func() (bool, string) {
		return rolledOut(getDeployment(t, r.cs, r.ns, "roll"), image("roll", "v2"))
	})
	minAvail, maxPods, events := watch.result()
	t.Logf("v1 -> v2 on 4 replicas (1s readiness): Healthy after %v; availableReplicas >= %d, status.replicas <= %d over %d watch events", took.Round(time.Millisecond), minAvail, maxPods, events)
	if minAvail < 3 {
		t.Errorf("availableReplicas dropped to %d during the roll, want >= replicas - maxUnavailable = 3", minAvail)
	}
	if d := getDeployment(t, r.cs, r.ns, "roll"); d.Generation != genBefore+1 {
		t.Errorf("deployment generation went from %d to %d: graylane wrote its spec more than once (one image change expected)", genBefore, d.Generation)
	}
	if events < 3 {
		t.Errorf("saw only %d watch events: the roll was not observed", events)
	}
	deps, err := r.cs.AppsV1().Deployments(r.ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelApp + "=roll"})
	if err != nil || len(deps.Items) != 1 {
		t.Fatalf("deployments of roll: %v (err %v), want exactly the one rolled in place", len(deps.Items), err)
	}
	for _, in := range v.Status.Instances {
		if in.Addr == "" || !strings.HasSuffix(in.Addr, ":8080") || in.Meta[kubernetes.MetaImage] != image("roll", "v2") {
			t.Errorf("instance %+v: want a pod IP:8080 address and image v2", in)
		}
	}
}

// testCanary: weight steps scale one Deployment per version (no router:
// the stable version shrinks as the canary grows, one Service selects
// both), a pause waits for promote, and promotion scales the old version
// away without ever growing it back: with traffic following pod counts,
// scaleDownDelay does not apply (issue 13: v1 went back to 4 pods, taking
// half of the users, for scaleDownDelay).
func testCanary(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "cany")
	rel := func(v string) *spec.Release {
		return release("cany", r.ns, v, nil, replicas(4), withService, func(rel *spec.Release) {
			rel.Strategy = spec.Strategy{Type: spec.Canary, ScaleDownDelay: spec.D(2 * time.Second), Steps: []spec.Step{
				{SetWeight: ptr(25)}, {Pause: &spec.Pause{Duration: spec.D(time.Second)}}, {SetWeight: ptr(50)}, {Pause: &spec.Pause{}}, {SetWeight: ptr(100)},
			}}
		})
	}
	r.put(rel("v1"))
	r.healthy("v1", 4, 60*time.Second)
	r.put(rel("v2"))
	r.wait("a canary of 1 beside 3 stable at 25%", 60*time.Second, func(v engine.AppView) bool {
		return v.Status.CanaryVersion == "v2" && v.Status.Step >= 1 && readyOf(v.Status.Instances, "v2") >= 1
	})
	r.wait("paused at step 4 with 2+2", 60*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Step == 3 && readyOf(v.Status.Instances, "v2") == 2 &&
			readyOf(v.Status.Instances, "v1") == 2 && len(v.Status.Instances) == 4
	})
	if d := getDeployment(t, r.cs, r.ns, "cany"); ptrVal(d.Spec.Replicas) != 2 || d.Spec.Template.Annotations[kubernetes.AnnotationVersion] != "v1" {
		t.Errorf("stable deployment cany: %d replicas of %s, want 2 of v1", ptrVal(d.Spec.Replicas), d.Spec.Template.Annotations[kubernetes.AnnotationVersion])
	}
	if d := getDeployment(t, r.cs, r.ns, "cany-v2"); ptrVal(d.Spec.Replicas) != 2 || d.Labels[kubernetes.LabelApp] != "cany" {
		t.Errorf("canary deployment cany-v2: %d replicas, labels %v; want 2, app cany", ptrVal(d.Spec.Replicas), d.Labels)
	}
	// One Service selects both versions: its endpoints are all four pods.
	waitCluster(t, "service cany to select v1 and v2 pods", 30*time.Second, func() (bool, string) {
		eps, err1 := endpoints(r.cs, r.ns, "cany")
		v1, err2 := podIPs(r.cs, r.ns, "v1")
		v2, err3 := podIPs(r.cs, r.ns, "v2")
		all := maps.Clone(v1)
		maps.Copy(all, v2)
		return errors.Join(err1, err2, err3) == nil && len(v1) == 2 && len(v2) == 2 && sameSet(eps, all), "endpoints " + strings.Join(slices.Sorted(maps.Keys(eps)), ",")
	})

	old := watchAvailability(t, r.cs, r.ns, "cany")
	r.command(rollout.CmdPromote)
	r.healthy("v2", 4, 60*time.Second) // 4 v2 pods and nothing else: v1 was scaled away
	_, oldPods, events := old.result()
	if wanted := old.wanted(); oldPods > 2 || wanted > 2 {
		t.Errorf("after promote the old deployment cany grew to %d pods (spec.replicas up to %d; %d watch events), want at most the 2 it had", oldPods, wanted, events)
	}
	if d := getDeployment(t, r.cs, r.ns, "cany"); ptrVal(d.Spec.Replicas) != 0 {
		t.Errorf("old deployment cany has %d replicas after promotion, want 0", ptrVal(d.Spec.Replicas))
	}
	if d := getDeployment(t, r.cs, r.ns, "cany-v2"); ptrVal(d.Spec.Replicas) != 4 {
		t.Errorf("deployment cany-v2 has %d replicas, want 4", ptrVal(d.Spec.Replicas))
	}
	for _, want := range []string{"RolloutStarted", "StepCompleted", "Promoted"} {
		if !slices.Contains(r.events(), want) {
			t.Errorf("events %v lack %s", r.events(), want)
		}
	}
}

// testCanaryAbort: abort mid-canary scales the canary to zero and restores
// the stable version's size.
func testCanaryAbort(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "abrt")
	rel := func(v string) *spec.Release {
		return release("abrt", r.ns, v, nil, replicas(2), func(rel *spec.Release) {
			rel.Strategy = spec.Strategy{Type: spec.Canary, Steps: []spec.Step{{SetWeight: ptr(50)}, {Pause: &spec.Pause{}}, {SetWeight: ptr(100)}}}
		})
	}
	r.put(rel("v1"))
	r.healthy("v1", 2, 60*time.Second)
	before := getDeployment(t, r.cs, r.ns, "abrt").UID
	r.put(rel("v2"))
	r.wait("paused with 1 canary beside 1 stable", 60*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && readyOf(v.Status.Instances, "v2") == 1 && readyOf(v.Status.Instances, "v1") == 1
	})
	r.command(rollout.CmdAbort)
	v := r.wait("aborted, v1 back at 2, no v2", 60*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Degraded && v.Status.StableVersion == "v1" && readyOf(v.Status.Instances, "v1") == 2 && countOf(v.Status.Instances, "v2") == 0
	})
	if v.Status.RejectedVersion != "v2" {
		t.Errorf("rejected version %q, want v2", v.Status.RejectedVersion)
	}
	waitCluster(t, "canary deployment abrt-v2 at zero or deleted", 30*time.Second, func() (bool, string) {
		d, err := r.cs.AppsV1().Deployments(r.ns).Get(context.Background(), "abrt-v2", metav1.GetOptions{})
		if err != nil {
			return strings.Contains(err.Error(), "not found"), err.Error()
		}
		return ptrVal(d.Spec.Replicas) == 0, fmt.Sprintf("replicas %d", ptrVal(d.Spec.Replicas))
	})
	if d := getDeployment(t, r.cs, r.ns, "abrt"); d.UID != before || ptrVal(d.Spec.Replicas) != 2 {
		t.Errorf("stable deployment: uid %s replicas %d, want the same object (%s) at 2", d.UID, ptrVal(d.Spec.Replicas), before)
	}
}

// testBlueGreen: the new version comes up at full size beside the old one,
// reachable through the preview Service; promote switches the active
// Service's selector. Checked on the Services' EndpointSlices.
func testBlueGreen(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "bg")
	rel := func(v string) *spec.Release { return release("bg", r.ns, v, nil, blueGreen(false), withService) }
	endpointsAre := func(svc, version string) {
		t.Helper()
		waitCluster(t, "service "+svc+" to select exactly the "+version+" pods", 30*time.Second, func() (bool, string) {
			eps, err1 := endpoints(r.cs, r.ns, svc)
			ips, err2 := podIPs(r.cs, r.ns, version)
			return errors.Join(err1, err2) == nil && len(ips) == 2 && sameSet(eps, ips), "endpoints " + strings.Join(slices.Sorted(maps.Keys(eps)), ",") + " pods " + strings.Join(slices.Sorted(maps.Keys(ips)), ",")
		})
	}
	r.put(rel("v1"))
	r.healthy("v1", 2, 60*time.Second)
	endpointsAre("bg", "v1")
	svc, err := r.cs.CoreV1().Services(r.ns).Get(context.Background(), "bg", metav1.GetOptions{})
	if err != nil || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.IntValue() != 8080 {
		t.Fatalf("service bg: %v %+v, want port 80 -> 8080", err, svc)
	}

	r.put(rel("v2"))
	v := r.wait("v2 ready for preview, waiting for promote", 60*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Preview == "v2" && readyOf(v.Status.Instances, "v2") == 2 && readyOf(v.Status.Instances, "v1") == 2
	})
	if w := v.Status.Weights; w["v1"] != 100 {
		t.Errorf("weights during preview %v, want v1 100", w)
	}
	endpointsAre("bg-preview", "v2")
	endpointsAre("bg", "v1")

	r.command(rollout.CmdPromote)
	r.wait("switched to v2", 30*time.Second, func(v engine.AppView) bool {
		return v.Status.StableVersion == "v2" && v.Status.Weights["v2"] == 100
	})
	endpointsAre("bg", "v2")
	r.healthy("v2", 2, 60*time.Second) // and v1 scaled away after scaleDownDelay
}

// neverReadyV2 makes kwok keep v2's pods from ever becoming Ready (the pod
// template's annotations are templates too).
var neverReadyV2 = map[string]string{kubestack.AnnotationNeverReady: `{{if eq .Version "v2"}}true{{else}}false{{end}}`}

func stalling(autoRollback bool) func(*spec.Release) {
	return func(r *spec.Release) {
		r.Strategy = spec.Strategy{Type: spec.Rolling, MaxSurge: spec.Int(1), MaxUnavailable: spec.Int(0),
			ProgressDeadline: spec.D(5 * time.Second), AutoRollback: autoRollback}
	}
}

// testProgressDeadlineRollsBack: v2's pods never become Ready; the progress
// deadline fails the release and auto-rollback restores v1, with the
// Deployment never below replicas - maxUnavailable available.
func testProgressDeadlineRollback(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "stuck")
	rel := func(v string) *spec.Release { return release("stuck", r.ns, v, neverReadyV2, stalling(true)) }
	r.put(rel("v1"))
	r.healthy("v1", 2, 60*time.Second)
	if d := getDeployment(t, r.cs, r.ns, "stuck"); ptrVal(d.Spec.ProgressDeadlineSeconds) != 5 {
		t.Fatalf("progressDeadlineSeconds = %d, want the spec's 5s", ptrVal(d.Spec.ProgressDeadlineSeconds))
	}
	watch := watchAvailability(t, r.cs, r.ns, "stuck")
	r.put(rel("v2"))
	r.wait("a v2 pod running but not ready", 30*time.Second, func(v engine.AppView) bool {
		return countOf(v.Status.Instances, "v2") == 1 && readyOf(v.Status.Instances, "v2") == 0
	})
	v := r.wait("rolled back to v1", 60*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.RolledBack && v.Status.StableVersion == "v1" &&
			readyOf(v.Status.Instances, "v1") == 2 && len(v.Status.Instances) == 2
	})
	if v.Status.RejectedVersion != "v2" || !strings.Contains(v.Status.Message, "v2 was rolled back") {
		t.Errorf("status %q rejected %q, want v2 rolled back", v.Status.Message, v.Status.RejectedVersion)
	}
	for _, want := range []string{"ProgressDeadlineExceeded", "RolledBack"} {
		if !slices.Contains(r.events(), want) {
			t.Errorf("events %v lack %s", r.events(), want)
		}
	}
	waitCluster(t, "deployment back on v1", 30*time.Second, func() (bool, string) {
		return rolledOut(getDeployment(t, r.cs, r.ns, "stuck"), image("stuck", "v1"))
	})
	minAvail, _, _ := watch.result()
	if minAvail < 2 {
		t.Errorf("availableReplicas dropped to %d, want >= 2 (maxUnavailable 0)", minAvail)
	}
}

// testProgressDeadlineReported: without autoRollback the release is
// Degraded, and the Deployment's own ProgressDeadlineExceeded condition is
// reported on the stuck instances; setting the version back recovers.
func testProgressDeadlineReported(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "stall")
	rel := func(v string) *spec.Release { return release("stall", r.ns, v, neverReadyV2, stalling(false)) }
	r.put(rel("v1"))
	r.healthy("v1", 2, 60*time.Second)
	r.put(rel("v2"))
	v := r.wait("Degraded with the Deployment's ProgressDeadlineExceeded on the v2 instance", 60*time.Second, func(v engine.AppView) bool {
		if v.Status.Phase != rollout.Degraded {
			return false
		}
		for _, in := range v.Status.Instances {
			if in.Version == "v2" && strings.HasPrefix(in.Meta[kubernetes.MetaDeploymentProblem], "ProgressDeadlineExceeded") && strings.Contains(in.Message, "ProgressDeadlineExceeded") {
				return true
			}
		}
		return false
	})
	if readyOf(v.Status.Instances, "v1") != 2 {
		t.Errorf("v1 lost ready instances while v2 stalled: %s", describe(v.Status.Instances))
	}
	r.put(rel("v1"))
	r.healthy("v1", 2, 60*time.Second)
}

// testRestartMidCanary: graylane (engine + backend, state in a real etcd)
// is dropped mid-canary and a new one started on the same etcd: it adopts
// the Deployments and pods it owns without touching them and continues
// the canary from the same step.
func testRestartMidCanary(t *testing.T, c *kubestack.Cluster) {
	ctx := context.Background()
	cli := etcdtest.Start(t).Client()
	ns := c.NewNamespace(t)
	cs := c.Clientset()
	put := func(rel *spec.Release) {
		b, _ := json.Marshal(rel)
		if _, err := cli.Put(ctx, etcdsource.DefaultPrefix+"rst", string(b)); err != nil {
			t.Fatal(err)
		}
	}
	rel := func(v string) *spec.Release {
		return release("rst", ns, v, nil, replicas(2), func(rel *spec.Release) {
			rel.Strategy = spec.Strategy{Type: spec.Canary, ScaleDownDelay: spec.D(time.Second), Steps: []spec.Step{{SetWeight: ptr(50)}, {Pause: &spec.Pause{}}, {SetWeight: ptr(100)}}}
		})
	}
	// first graylane
	first := &rig{t: t, cs: cs, ns: ns, app: "rst"}
	firstCtx, stopFirst := context.WithCancel(ctx)
	first.be = newBackend(t, cs, ns)
	src1 := etcdsource.New(etcdsource.Config{Client: cli, Prefix: ""})
	first.eng = engine.New(engine.Config{Source: src1, Store: etcdstore.New(cli, ""), Resolver: resolver{first.be}, Logger: logger(t)})
	first.be.Notify(first.eng.Trigger)
	firstDone := make(chan struct{})
	go func() { defer close(firstDone); _ = first.eng.Run(firstCtx) }()
	put(rel("v1"))
	first.healthy("v1", 2, 60*time.Second)
	put(rel("v2"))
	first.wait("paused mid-canary", 60*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Step == 1 && readyOf(v.Status.Instances, "v2") == 1 && readyOf(v.Status.Instances, "v1") == 1
	})
	snapshot := func() (map[string]kubestack.Object, []string) { return kubestack.Snapshot(t, cs, ns) }
	depsBefore, podsBefore := snapshot()
	stopFirst()
	<-firstDone
	_ = first.be.Close()
	src1.Close()

	// second graylane: new backend (empty caches), new source, same etcd
	second := &rig{t: t, cs: cs, ns: ns, app: "rst", be: newBackend(t, cs, ns)}
	src2 := etcdsource.New(etcdsource.Config{Client: cli, Prefix: ""})
	t.Cleanup(func() { src2.Close() })
	second.start(src2, etcdstore.New(cli, ""))
	second.wait("the new graylane to observe the adopted pods, still paused at step 2", 30*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && v.Status.Step == 1 && readyOf(v.Status.Instances, "v2") == 1 && readyOf(v.Status.Instances, "v1") == 1
	})
	depsAfter, podsAfter := snapshot()
	if !maps.Equal(depsBefore, depsAfter) || !slices.Equal(podsBefore, podsAfter) {
		t.Fatalf("the restart changed the cluster:\ndeployments %v -> %v\npods %v -> %v", depsBefore, depsAfter, podsBefore, podsAfter)
	}
	second.command(rollout.CmdPromote)
	second.healthy("v2", 2, 90*time.Second)
}

// testDrift: a Deployment scaled behind graylane's back is reported (on
// the instances and as the app's error) and left alone until graylane's own
// desired state changes.
func testDrift(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "drift")
	rel := func(v string) *spec.Release { return release("drift", r.ns, v, nil, rolling(1, 0)) }
	r.put(rel("v1"))
	r.healthy("v1", 2, 60*time.Second)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := getDeployment(t, r.cs, r.ns, "drift")
		d.Spec.Replicas = ptr(int32(1))
		_, err := r.cs.AppsV1().Deployments(r.ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.wait("drift reported on the instance and as the app's error", 30*time.Second, func(v engine.AppView) bool {
		return strings.Contains(v.Status.LastError, "drift") && len(v.Status.Instances) == 1 &&
			strings.Contains(v.Status.Instances[0].Meta[kubernetes.MetaDrift], "replicas 1 (graylane set 2)")
	})
	failures := func() int {
		n := 0
		for _, e := range r.events() {
			if e == "ApplyFailed" {
				n++
			}
		}
		return n
	}
	seen := failures()
	r.wait("another pass reporting the drift", 30*time.Second, func(engine.AppView) bool { return failures() > seen })
	if got := ptrVal(getDeployment(t, r.cs, r.ns, "drift").Spec.Replicas); got != 1 {
		t.Fatalf("graylane overwrote the drifted replicas: %d, want the operator's 1", got)
	}
	r.put(rel("v2")) // graylane's desired state changes: it writes again
	r.healthy("v2", 2, 60*time.Second)
	if got := ptrVal(getDeployment(t, r.cs, r.ns, "drift").Spec.Replicas); got != 2 {
		t.Errorf("replicas after the next release = %d, want 2", got)
	}
	if v := r.wait("no error", 10*time.Second, func(v engine.AppView) bool { return v.Status.LastError == "" }); v.Status.Phase != rollout.Healthy {
		t.Errorf("phase %s", v.Status.Phase)
	}
}

// testOperatorDeployment: an operator's own Deployment is left alone until
// annotated for graylane; then graylane rolls it in place (keeping its
// selector and template) and derives a canary Deployment from it.
func testOperatorDeployment(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "shop")
	labels := map[string]string{"app": "shop"}
	op := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "sidecar", Image: "registry.example.com/proxy:1"},
					{Name: "web", Image: "registry.example.com/shop:v1", Ports: []corev1.ContainerPort{{ContainerPort: 9000}}},
				}},
			},
		},
	}
	ctx := context.Background()
	if _, err := r.cs.AppsV1().Deployments(r.ns).Create(ctx, op, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rel := func(v string, mods ...func(*spec.Release)) *spec.Release {
		return release("shop", r.ns, v, nil, append([]func(*spec.Release){rolling(1, 0), func(rel *spec.Release) {
			kb := rel.Backend.Kubernetes
			kb.Template, kb.Deployment, kb.Container, kb.Image = nil, "shop-web", "web", "registry.example.com/shop:{{.Version}}"
		}}, mods...)...)
	}
	r.put(rel("v1"))
	r.wait("refusal to touch an unannotated deployment", 30*time.Second, func(v engine.AppView) bool {
		return strings.Contains(v.Status.LastError, "not managed by graylane")
	})
	if d := getDeployment(t, r.cs, r.ns, "shop-web"); d.Generation != 1 || d.Annotations[kubernetes.AnnotationApplied] != "" {
		t.Fatalf("graylane changed an unmanaged deployment: generation %d annotations %v", d.Generation, d.Annotations)
	}
	// the operator hands the Deployment over (retrying on conflict: the
	// Deployment controller keeps writing its status meanwhile)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := getDeployment(t, r.cs, r.ns, "shop-web")
		d.Annotations = map[string]string{kubernetes.AnnotationManagedBy: kubernetes.ManagedBy}
		_, err := r.cs.AppsV1().Deployments(r.ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.healthy("v1", 2, 60*time.Second)
	r.put(rel("v2"))
	v := r.healthy("v2", 2, 60*time.Second)
	d := getDeployment(t, r.cs, r.ns, "shop-web")
	if !maps.Equal(d.Spec.Selector.MatchLabels, labels) || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/proxy:1" ||
		d.Spec.Template.Spec.Containers[1].Image != "registry.example.com/shop:v2" {
		t.Fatalf("operator deployment after v2: selector %v containers %+v", d.Spec.Selector.MatchLabels, d.Spec.Template.Spec.Containers)
	}
	if !strings.HasSuffix(v.Status.Instances[0].Addr, ":9000") {
		t.Errorf("instance address %q, want the web container's port 9000", v.Status.Instances[0].Addr)
	}

	canary := func(rel *spec.Release) {
		rel.Strategy = spec.Strategy{Type: spec.Canary, ScaleDownDelay: spec.D(time.Second), Steps: []spec.Step{{SetWeight: ptr(50)}, {Pause: &spec.Pause{}}}}
	}
	r.put(rel("v3", canary))
	r.wait("a v3 canary beside v2", 60*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Paused && readyOf(v.Status.Instances, "v3") == 1 && readyOf(v.Status.Instances, "v2") == 1
	})
	cd := getDeployment(t, r.cs, r.ns, "shop-web-v3")
	if cd.Spec.Template.Labels["app"] != "shop" || len(cd.Spec.Template.Spec.Containers) != 2 || cd.Spec.Template.Spec.Containers[1].Image != "registry.example.com/shop:v3" {
		t.Fatalf("canary deployment not derived from the operator's template: %+v", cd.Spec.Template)
	}
	r.command(rollout.CmdPromote)
	r.healthy("v3", 2, 60*time.Second)
	if d := getDeployment(t, r.cs, r.ns, "shop-web"); ptrVal(d.Spec.Replicas) != 0 {
		t.Errorf("operator deployment after promotion of its canary: %d replicas, want 0 (kept, not deleted)", ptrVal(d.Spec.Replicas))
	}
}

// testServiceDrift: the Service router reports a selector changed behind
// its back (Weights and a SetWeights of the same split fail with ErrDrift
// and change nothing) until graylane's desired split changes.
func testServiceDrift(t *testing.T, c *kubestack.Cluster) {
	ctx := context.Background()
	ns := c.NewNamespace(t)
	cs := c.Clientset()
	router := newBackend(t, cs, ns).Router()
	rel := release("sd", ns, "v1", nil, blueGreen(true), withService)
	one := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v1", Weight: 100}}}
	if err := router.SetWeights(ctx, rel, one); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "sd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Selector = map[string]string{"app": "something-else"}
	if _, err := cs.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := router.Weights(ctx, "sd"); !errors.Is(err, kubernetes.ErrDrift) {
		t.Fatalf("Weights after a hand edit = %v, want ErrDrift", err)
	}
	if err := router.SetWeights(ctx, rel, one); !errors.Is(err, kubernetes.ErrDrift) {
		t.Fatalf("SetWeights of the same split after a hand edit = %v, want ErrDrift", err)
	}
	if got, _ := cs.CoreV1().Services(ns).Get(ctx, "sd", metav1.GetOptions{}); got.Spec.Selector["app"] != "something-else" {
		t.Fatalf("graylane overwrote the hand-edited selector: %v", got.Spec.Selector)
	}
	two := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v2", Weight: 100}}}
	if err := router.SetWeights(ctx, rel, two); err != nil {
		t.Fatalf("SetWeights of a new split: %v", err)
	}
	if got, err := router.Weights(ctx, "sd"); err != nil || !got.Equal(two) {
		t.Fatalf("Weights = %+v, %v; want %+v", got, err, two)
	}
}

// testDeleteApp: removing the spec scales the app to zero, then Forget
// deletes the Deployments and Service graylane created.
func testDeleteApp(t *testing.T, c *kubestack.Cluster) {
	r := newRig(t, c, "gone")
	r.put(release("gone", r.ns, "v1", nil, withService))
	r.healthy("v1", 2, 60*time.Second)
	r.src.Remove("gone")
	waitCluster(t, "the app's objects deleted", 60*time.Second, func() (bool, string) {
		ctx := context.Background()
		sel := metav1.ListOptions{LabelSelector: kubernetes.LabelApp + "=gone"}
		deps, err1 := r.cs.AppsV1().Deployments(r.ns).List(ctx, sel)
		svcs, err2 := r.cs.CoreV1().Services(r.ns).List(ctx, sel)
		pods, err3 := r.cs.CoreV1().Pods(r.ns).List(ctx, sel)
		if err := errors.Join(err1, err2, err3); err != nil {
			return false, err.Error()
		}
		return len(deps.Items)+len(svcs.Items) == 0, fmt.Sprintf("%d deployments, %d services, %d pods", len(deps.Items), len(svcs.Items), len(pods.Items))
	})
	// The engine forgets the app after the backend deleted its objects (it
	// drops its own record last), so wait for the engine's view too: on a
	// loaded machine the objects can be gone a moment before the record.
	testenv.Eventually(t, 30*time.Second, "the engine forgets the app", func() error {
		v, err := r.eng.App(context.Background(), "gone")
		if errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("App = phase %s, %v; want ErrNotFound", v.Status.Phase, err)
	})
}

// testShippedRBAC runs a blue-green and a deletion as a ServiceAccount
// holding only the Role of deployments/kubernetes/rbac-namespaced.yaml
// (whose rules must equal the ClusterRole's in rbac.yaml).
func testShippedRBAC(t *testing.T, c *kubestack.Cluster) {
	ctx := context.Background()
	root := testenv.RepoRoot(t)
	docs := func(file string) []string {
		b, err := os.ReadFile(filepath.Join(root, "deployments", "kubernetes", file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(string(b), "\n---\n")
	}
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	for _, d := range docs("rbac-namespaced.yaml") {
		switch {
		case strings.Contains(d, "\nkind: Role\n"):
			must(t, yaml.UnmarshalStrict([]byte(d), &role))
		case strings.Contains(d, "\nkind: RoleBinding\n"):
			must(t, yaml.UnmarshalStrict([]byte(d), &binding))
		}
	}
	var cluster rbacv1.ClusterRole
	for _, d := range docs("rbac.yaml") {
		if strings.Contains(d, "\nkind: ClusterRole\n") {
			must(t, yaml.UnmarshalStrict([]byte(d), &cluster))
		}
	}
	if len(role.Rules) == 0 || !reflect.DeepEqual(role.Rules, cluster.Rules) {
		t.Fatalf("Role rules %+v differ from the ClusterRole's %+v", role.Rules, cluster.Rules)
	}

	admin := c.Clientset()
	ns, saNS := c.NewNamespace(t), c.NewNamespace(t)
	role.Namespace, binding.Namespace = ns, ns
	binding.Subjects[0].Namespace = saNS
	if _, err := admin.CoreV1().ServiceAccounts(saNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: binding.Subjects[0].Name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CoreV1().ServiceAccounts(saNS).CreateToken(ctx, binding.Subjects[0].Name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.RESTConfig()
	cfg.BearerToken = tok.Status.Token
	limited, err := k8sclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := limited.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("the limited ServiceAccount may list pods outside its namespace: the test proves nothing")
	}

	r := &rig{t: t, cs: limited, ns: ns, app: "rbac", src: memory.New(), be: newBackend(t, limited, ns)}
	r.start(r.src, engine.NewMemoryStore())
	rel := func(v string) *spec.Release { return release("rbac", ns, v, nil, blueGreen(true), withService) }
	r.put(rel("v1"))
	r.healthy("v1", 2, 60*time.Second)
	r.put(rel("v2"))
	r.healthy("v2", 2, 60*time.Second)
	r.src.Remove("rbac")
	waitCluster(t, "the app's objects deleted by the limited account", 60*time.Second, func() (bool, string) {
		sel := metav1.ListOptions{LabelSelector: kubernetes.LabelApp + "=rbac"}
		deps, err1 := admin.AppsV1().Deployments(ns).List(ctx, sel)
		svcs, err2 := admin.CoreV1().Services(ns).List(ctx, sel)
		if err := errors.Join(err1, err2); err != nil {
			return false, err.Error()
		}
		return len(deps.Items)+len(svcs.Items) == 0, fmt.Sprintf("%d deployments, %d services", len(deps.Items), len(svcs.Items))
	})
}

// testServiceForbidden: with RBAC lacking the services permission (the
// chart's rules without their services line), a canary with a Service gets
// its Deployment and two ready pods, but the Service is never created; the
// app must not be Healthy: it is Degraded, its lastError names the
// forbidden Service and the missing permission, and ApplyFailed events
// say so. Once the permission is granted, the Service is created and the
// app becomes Healthy.
func testServiceForbidden(t *testing.T, c *kubestack.Cluster) {
	ctx := context.Background()
	admin := c.Clientset()
	ns := c.NewNamespace(t)
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "graylane", Namespace: ns}, Rules: rules}
	role, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	must(t, err)
	_, err = admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "graylane"}}, metav1.CreateOptions{})
	must(t, err)
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "graylane", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "graylane"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "graylane", Namespace: ns}}}, metav1.CreateOptions{})
	must(t, err)
	tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "graylane", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	must(t, err)
	cfg := c.RESTConfig()
	cfg.BearerToken = tok.Status.Token
	limited, err := k8sclient.NewForConfig(cfg)
	must(t, err)

	r := &rig{t: t, cs: limited, ns: ns, app: "nosvc", src: memory.New(), be: newBackend(t, limited, ns)}
	r.start(r.src, engine.NewMemoryStore())
	r.put(release("nosvc", ns, "v1", nil, withService))
	v := r.wait("Degraded with the forbidden Service named", 90*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Degraded && readyOf(v.Status.Instances, "v1") == 2 &&
			strings.Contains(v.Status.LastError, "service "+ns+"/nosvc") && strings.Contains(v.Status.LastError, "forbidden")
	})
	for _, want := range []string{"graylane's account may not get services in namespace " + ns, "deployments/kubernetes/rbac.yaml"} {
		if !strings.Contains(v.Status.LastError, want) {
			t.Fatalf("lastError %q lacks %q", v.Status.LastError, want)
		}
	}
	if !strings.Contains(v.Status.Message, "forbidden") {
		t.Fatalf("status message %q does not say why the app is not Healthy", v.Status.Message)
	}
	if !slices.Contains(r.events(), "ApplyFailed") {
		t.Fatalf("events %v", r.events())
	}
	if _, err := admin.CoreV1().Services(ns).Get(ctx, "nosvc", metav1.GetOptions{}); err == nil {
		t.Fatal("the Service exists: the test proves nothing")
	}

	role.Rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}})
	_, err = admin.RbacV1().Roles(ns).Update(ctx, role, metav1.UpdateOptions{})
	must(t, err)
	r.wait("Healthy once the Service could be created", 90*time.Second, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Healthy && v.Status.LastError == ""
	})
	if _, err := admin.CoreV1().Services(ns).Get(ctx, "nosvc", metav1.GetOptions{}); err != nil {
		t.Fatalf("the Service after the grant: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
