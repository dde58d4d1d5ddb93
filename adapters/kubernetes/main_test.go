package kubernetes_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/kubernetes"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/memory"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/testsupport/kubestack"
	"github.com/graylane/graylane/testsupport/testenv"
)

var verbose = flag.Bool("k8s.log", false, "log graylane's engine and backend output")

func TestMain(m *testing.M) {
	flag.Parse()
	// Build (or find in the cache) the control plane before m.Run, where
	// go test's -timeout does not run yet (integration runs only). An error
	// is reported by Start.
	if testenv.Integration() {
		_ = kubestack.BuildBinaries()
	}
	os.Exit(m.Run())
}

// startCluster starts the control plane shared by one test's subtests. The
// endpointslice controller runs too, so tests can check which pods a
// Service really selects.
func startCluster(t testing.TB) *kubestack.Cluster {
	return kubestack.Start(t, kubestack.WithControllers(append(kubestack.DefaultControllers, "endpointslice-controller")...))
}

func logger(t testing.TB) *slog.Logger {
	if *verbose {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newBackend returns a Backend watching only ns, closed when t ends.
func newBackend(t testing.TB, cs k8s.Interface, ns string) *kubernetes.Backend {
	b, err := kubernetes.New(kubernetes.Config{Client: cs, Namespaces: []string{ns}, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// release builds a valid kubernetes release of app in ns: a canary with no
// steps unless mods say otherwise, a pod template with one container
// "app" on port 8080 and the given pod annotations (templates allowed).
func release(app, ns, version string, annotations map[string]string, mods ...func(*spec.Release)) *spec.Release {
	ann := map[string]any{}
	for k, v := range annotations {
		ann[k] = v
	}
	rel := &spec.Release{
		App: app, Version: version, Replicas: ptr(2),
		Strategy: spec.Strategy{Type: spec.Canary},
		Backend: spec.Backend{Type: spec.BackendKubernetes, Kubernetes: &spec.KubernetesBackend{
			Namespace: ns,
			Image:     "registry.example.com/shop/" + app + ":{{.Version}}",
			Template: map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"tier": "web"}, "annotations": ann},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name":  "app",
					"ports": []any{map[string]any{"containerPort": float64(8080)}},
					"env":   []any{map[string]any{"name": "VERSION", "value": "{{.Version}}"}},
				}}},
			},
		}},
	}
	for _, m := range mods {
		m(rel)
	}
	return rel
}

func ptr[T any](v T) *T { return &v }

// ---- an engine driving the real backend --------------------------------

// rig runs graylane's engine (memory source, memory store, real clock)
// with a Kubernetes backend on one namespace of the cluster.
type rig struct {
	t   testing.TB
	cs  k8s.Interface
	ns  string
	app string
	src *memory.Source
	be  *kubernetes.Backend
	eng *engine.Engine
}

type resolver struct{ be *kubernetes.Backend }

func (r resolver) Backend(*spec.Release) (adapters.Backend, error) { return r.be, nil }
func (r resolver) Router(rel *spec.Release) (adapters.TrafficRouter, error) {
	return r.be.RouterFor(rel)
}

func newRig(t testing.TB, c *kubestack.Cluster, app string) *rig {
	ns := c.NewNamespace(t)
	r := &rig{t: t, cs: c.Clientset(), ns: ns, app: app, src: memory.New()}
	r.be = newBackend(t, r.cs, ns)
	r.start(configsyncSource(r.src), engine.NewMemoryStore())
	return r
}

func configsyncSource(s *memory.Source) configsync.Source { return s }

// start runs an engine over src and store until the test ends.
func (r *rig) start(src configsync.Source, store engine.Store) {
	r.eng = engine.New(engine.Config{Source: src, Store: store, Resolver: resolver{r.be},
		Logger: logger(r.t).With("component", "engine"), Resync: 5 * time.Second})
	r.be.Notify(r.eng.Trigger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.eng.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
}

// put writes rel to the memory source, as a console edit would.
func (r *rig) put(rel *spec.Release) {
	r.t.Helper()
	b, err := json.Marshal(rel)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := spec.Parse(b); err != nil {
		r.t.Fatalf("test release is invalid: %v", err)
	}
	r.src.Set(r.app, b)
}

// wait polls the app's view until cond holds, failing after timeout.
func (r *rig) wait(what string, timeout time.Duration, cond func(v engine.AppView) bool) engine.AppView {
	r.t.Helper()
	var last engine.AppView
	testenv.Eventually(r.t, timeout, what, func() error {
		v, err := r.eng.App(context.Background(), r.app)
		if err != nil {
			return err
		}
		last = v
		return testenv.Check(cond(v), "phase %s stable %s canary %s step %d %q lastError %q instances %s",
			v.Status.Phase, v.Status.StableVersion, v.Status.CanaryVersion, v.Status.Step,
			v.Status.Message, v.Status.LastError, describe(v.Status.Instances))
	})
	return last
}

// healthy waits until version is stable, Healthy, with all instances ready.
func (r *rig) healthy(version string, n int, timeout time.Duration) engine.AppView {
	r.t.Helper()
	return r.wait(version+" Healthy", timeout, func(v engine.AppView) bool {
		return v.Status.Phase == rollout.Healthy && v.Status.StableVersion == version && readyOf(v.Status.Instances, version) == n && len(v.Status.Instances) == n
	})
}

func (r *rig) command(cmd rollout.Command) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.eng.Command(ctx, r.app, cmd)
	if err != nil || res.Error != "" {
		r.t.Fatalf("%s: %v %s", cmd, err, res.Error)
	}
}

// events returns the reasons of the app's recent events.
func (r *rig) events() []string {
	var out []string
	for _, m := range r.eng.Broker().Recent(r.app) {
		if m.Event != nil {
			out = append(out, m.Event.Reason)
		}
	}
	return out
}

func readyOf(ins []adapters.Instance, version string) int {
	n := 0
	for _, in := range ins {
		if in.Version == version && in.Ready {
			n++
		}
	}
	return n
}

func countOf(ins []adapters.Instance, version string) int {
	n := 0
	for _, in := range ins {
		if in.Version == version {
			n++
		}
	}
	return n
}

func describe(ins []adapters.Instance) string {
	var parts []string
	for _, in := range ins {
		s := in.ID + "(" + in.Version
		if in.Ready {
			s += " ready"
		} else {
			s += " " + in.Message
		}
		parts = append(parts, s+")")
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// ---- cluster helpers ------------------------------------------------------

func getDeployment(t *testing.T, cs k8s.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get deployment %s/%s: %v", ns, name, err)
	}
	return d
}

// waitCluster polls cond until it holds.
func waitCluster(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, timeout, what, func() error {
		ok, state := cond()
		return testenv.Check(ok, "%s", state)
	})
}

// rolledOut reports whether a Deployment finished rolling out image.
func rolledOut(d *appsv1.Deployment, image string) (bool, string) {
	st := d.Status
	want := ptrVal(d.Spec.Replicas)
	state := fmt.Sprintf("gen %d/%d replicas %d updated %d available %d image %s", st.ObservedGeneration, d.Generation, st.Replicas, st.UpdatedReplicas, st.AvailableReplicas, d.Spec.Template.Spec.Containers[0].Image)
	return st.ObservedGeneration == d.Generation && st.Replicas == want && st.UpdatedReplicas == want &&
		st.AvailableReplicas == want && d.Spec.Template.Spec.Containers[0].Image == image, state
}

func ptrVal(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// availability watches a Deployment and records the lowest
// availableReplicas and the highest replicas (pods) it reports.
type availability struct {
	mu             sync.Mutex
	minAvailable   int32
	maxReplicas    int32
	maxWanted      int32 // highest spec.replicas seen
	events         int
	sawDeadline    bool
	stop           func()
	done           chan struct{}
	deadlineReason string
}

func watchAvailability(t *testing.T, cs k8s.Interface, ns, name string) *availability {
	t.Helper()
	// Measure from a settled Deployment: graylane sees pods Ready from its
	// pod informer before the Deployment controller has written that into
	// the Deployment's status (under load, by seconds), and the watch's
	// first event would otherwise carry that stale availableReplicas.
	waitCluster(t, "deployment "+name+" settled before measuring", 60*time.Second, func() (bool, string) {
		d := getDeployment(t, cs, ns, name)
		return rolledOut(d, d.Spec.Template.Spec.Containers[0].Image)
	})
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		cancel()
		t.Fatalf("watch deployment %s/%s: %v", ns, name, err)
	}
	a := &availability{minAvailable: 1 << 30, done: make(chan struct{})}
	a.stop = func() { cancel(); w.Stop(); <-a.done }
	t.Cleanup(a.stop)
	go func() {
		defer close(a.done)
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			a.mu.Lock()
			a.events++
			a.minAvailable = min(a.minAvailable, d.Status.AvailableReplicas)
			a.maxReplicas = max(a.maxReplicas, d.Status.Replicas)
			if d.Spec.Replicas != nil {
				a.maxWanted = max(a.maxWanted, *d.Spec.Replicas)
			}
			for _, c := range d.Status.Conditions {
				if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
					a.sawDeadline = true
					a.deadlineReason = c.Message
				}
			}
			a.mu.Unlock()
		}
	}()
	return a
}

// wanted stops the watch and returns the highest spec.replicas seen.
func (a *availability) wanted() int32 {
	a.stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.maxWanted
}

func (a *availability) result() (minAvailable, maxReplicas int32, events int) {
	a.stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.minAvailable, a.maxReplicas, a.events
}

// endpoints returns the ready addresses behind a Service, by its
// EndpointSlices.
func endpoints(cs k8s.Interface, ns, svc string) (map[string]bool, error) {
	list, err := cs.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				for _, a := range e.Addresses {
					out[a] = true
				}
			}
		}
	}
	return out, nil
}

// podIPs returns the IPs of the ready pods of one version in ns.
func podIPs(cs k8s.Interface, ns, version string) (map[string]bool, error) {
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelVersion + "=" + kubernetes.VersionLabel(version)})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" && isReady(&p) {
			out[p.Status.PodIP] = true
		}
	}
	return out, nil
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
