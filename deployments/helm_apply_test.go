package deployments

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/kubestack"
	"github.com/graylane/graylane/testsupport/testenv"
)

const fieldManager = "graylane-chart-test"

// applier applies rendered objects to a real kube-apiserver with
// server-side apply, as `kubectl apply --server-side` does.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(t *testing.T, cfg *rest.Config) *applier {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))}
}

// apply applies every object; dryRun asks the server to validate, default,
// admit and authorise them without storing anything.
func (a *applier) apply(ctx context.Context, m manifest, dryRun bool) error {
	for _, o := range m {
		gvk := o.GroupVersionKind()
		mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: no API resource: %w", gvk, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = a.dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
		}
		opts := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := ri.Apply(ctx, o.GetName(), o, opts); err != nil {
			return fmt.Errorf("apply %s %s/%s (dry-run %v): %w", o.GetKind(), o.GetNamespace(), o.GetName(), dryRun, err)
		}
	}
	return nil
}

// installServiceMonitorCRD creates the (trimmed) ServiceMonitor CRD and
// waits until the API server serves the kind.
func installServiceMonitorCRD(t *testing.T, ctx context.Context, a *applier) {
	t.Helper()
	data, err := os.ReadFile("testdata/servicemonitor-crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.apply(ctx, parseManifest(t, string(data)), false); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the ServiceMonitor kind to be served", func() error {
		a.mapper.Reset()
		_, err := a.mapper.RESTMapping(schemaGK("monitoring.coreos.com", "ServiceMonitor"), "v1")
		return err
	})
}

// saKubeconfig writes a kubeconfig that authenticates as a ServiceAccount
// with a token from the TokenRequest API: exactly what graylane gets in a
// pod of the chart's Deployment.
func saKubeconfig(t *testing.T, ctx context.Context, c *kubestack.Cluster, ns, sa string) (string, *rest.Config) {
	t.Helper()
	exp := int64(3600)
	tr, err := c.Clientset().CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", ns, sa, err)
	}
	ca := c.RESTConfig().CAData
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: sa
  context: {cluster: test, user: %s}
current-context: sa
`, c.Host(), base64.StdEncoding.EncodeToString(ca), sa, tr.Status.Token, sa)
	file := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := os.WriteFile(file, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, &rest.Config{Host: c.Host(), BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
}

func createNamespace(t *testing.T, ctx context.Context, cs kubernetes.Interface, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	testenv.Eventually(t, 30*time.Second, "ServiceAccount "+name+"/default", func() error {
		_, err := cs.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

func appDoc(app, ns, version string) string {
	return fmt.Sprintf(`app: %s
version: %s
replicas: 2
strategy: {type: rolling, maxSurge: 1, maxUnavailable: 0}
backend:
  type: kubernetes
  kubernetes:
    namespace: %s
    image: registry.example.com/shop/%s:{{.Version}}
    template: {spec: {containers: [{name: web, ports: [{containerPort: 8080}]}]}}
    service: {port: 80}
`, app, version, ns, app)
}

// runGraylaneAs runs the graylane binary with the ServiceAccount's
// kubeconfig and the chart's kubernetes.namespaces, releases app into ns,
// and checks the Deployment graylane created there.
func runGraylaneAs(t *testing.T, ctx context.Context, c *kubestack.Cluster, kubeconfig string, namespaces any, app, ns string) {
	t.Helper()
	g := graylanetest.Start(t, graylanetest.Options{
		Config: map[string]any{"kubernetes": map[string]any{"kubeconfig": kubeconfig, "namespaces": namespaces}},
		Env:    []string{"KUBERNETES_SERVICE_HOST="},
	})
	g.PutSpec(app, appDoc(app, ns, "v1"))
	healthy := func(version string) func() error {
		return func() error {
			v, err := g.Client().App(ctx, app)
			if err != nil {
				return err
			}
			return testenv.Check(v.Status.Phase == rollout.Healthy && v.Status.StableVersion == version && len(v.Status.Instances) == 2,
				"phase %s stable %s, %d instances (last error %q)", v.Status.Phase, v.Status.StableVersion, len(v.Status.Instances), v.Status.LastError)
		}
	}
	testenv.Eventually(t, 60*time.Second, app+" v1 healthy (graylane as the chart's ServiceAccount)", healthy("v1"))
	if err := g.Client().SetVersion(ctx, app, "v2"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, app+" v2 healthy", healthy("v2"))
	d, err := c.Clientset().AppsV1().Deployments(ns).Get(ctx, app, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Deployment graylane created: %v", err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":v2") {
		t.Errorf("Deployment %s/%s image %s, want v2", ns, app, img)
	}
	if _, err := c.Clientset().CoreV1().Services(ns).Get(ctx, app, metav1.GetOptions{}); err != nil {
		t.Errorf("the Service graylane created: %v", err)
	}
}

// TestHelmChartOnKubeAPIServer renders the chart with each value set and
// applies it to a real kube-apiserver (testsupport/kubestack): first a
// server-side dry run, then for real. With the ServiceMonitor CRD
// installed, the HA set's ServiceMonitor is validated and stored too.
// Then the graylane binary runs with the token of the chart's
// ServiceAccount: cluster-wide it releases an app into any namespace;
// namespaced it releases into a listed namespace and is forbidden
// elsewhere. The HA Deployment's two replicas come up (kwok plays the
// kubelet).
func TestHelmChartOnKubeAPIServer(t *testing.T) {
	testenv.IntegrationTest(t)
	c := kubestack.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs := c.Clientset()
	a := newApplier(t, c.RESTConfig())
	installServiceMonitorCRD(t, ctx, a)

	rendered := map[string]manifest{}
	for _, v := range valueSets {
		createNamespace(t, ctx, cs, v.namespace)
	}
	for _, ns := range []string{"shop", "cart"} {
		createNamespace(t, ctx, cs, ns)
	}
	for _, v := range valueSets {
		m := render(t, v)
		rendered[v.name] = m
		if err := a.apply(ctx, m, true); err != nil {
			t.Fatalf("%s values, server-side dry run: %v", v.name, err)
		}
		// the dry run stored nothing
		if _, err := cs.CoreV1().ConfigMaps(v.namespace).Get(ctx, v.fullname(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("%s values: the dry run created the ConfigMap (get: %v)", v.name, err)
		}
		if err := a.apply(ctx, m, false); err != nil {
			t.Fatalf("%s values, apply: %v", v.name, err)
		}
		for _, o := range m {
			gvk := o.GroupVersionKind()
			mapping, _ := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
			if o.GetNamespace() != "" {
				ri = a.dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
			}
			if _, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{}); err != nil {
				t.Errorf("%s values: %s %s not stored: %v", v.name, o.GetKind(), o.GetName(), err)
			}
		}
	}

	t.Run("ha replicas available", func(t *testing.T) {
		testenv.Eventually(t, 60*time.Second, "Deployment gl-ha-graylane with 2 available replicas", func() error {
			d, err := cs.AppsV1().Deployments("graylane-ha").Get(ctx, "gl-ha-graylane", metav1.GetOptions{})
			if err != nil {
				return err
			}
			return testenv.Check(d.Status.AvailableReplicas == 2 && deploymentAvailable(d), "%d available", d.Status.AvailableReplicas)
		})
		pdb, err := cs.PolicyV1().PodDisruptionBudgets("graylane-ha").Get(ctx, "gl-ha-graylane", metav1.GetOptions{})
		if err != nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Fatalf("PodDisruptionBudget: %v %+v", err, pdb)
		}
	})

	t.Run("cluster-wide ServiceAccount", func(t *testing.T) {
		kc, saCfg := saKubeconfig(t, ctx, c, "graylane", "graylane")
		sacs := kubernetes.NewForConfigOrDie(saCfg)
		// the ServiceAccount is not an administrator
		if _, err := sacs.CoreV1().Secrets("graylane").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("listing Secrets as the chart's ServiceAccount: %v, want Forbidden", err)
		}
		ns := c.NewNamespace(t)
		cfg := graylaneConfig(t, rendered["default"], "graylane", "graylane")
		runGraylaneAs(t, ctx, c, kc, get(cfg, "kubernetes", "namespaces"), "chartapp", ns)
	})

	t.Run("namespaced ServiceAccount", func(t *testing.T) {
		kc, saCfg := saKubeconfig(t, ctx, c, "graylane-ns", "gl-ns-graylane")
		sacs := kubernetes.NewForConfigOrDie(saCfg)
		other := c.NewNamespace(t)
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "x"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "x"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "x"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}},
				},
			},
		}
		if _, err := sacs.AppsV1().Deployments(other).Create(ctx, dep, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
			t.Fatalf("creating a Deployment outside rbac.namespaces: %v, want Forbidden", err)
		}
		if _, err := sacs.AppsV1().Deployments("cart").Create(ctx, dep, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatalf("creating a Deployment in a listed namespace (dry run): %v", err)
		}
		cfg := graylaneConfig(t, rendered["namespaced"], "graylane-ns", "gl-ns-graylane")
		runGraylaneAs(t, ctx, c, kc, get(cfg, "kubernetes", "namespaces"), "nsapp", "shop")
	})
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func schemaGK(group, kind string) schema.GroupKind { return schema.GroupKind{Group: group, Kind: kind} }
