package deployments

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/graylane/graylane/testsupport/helmtool"
	"github.com/graylane/graylane/testsupport/testenv"
)

const chartDir = "helm/graylane"

// valueSet is one way of installing the chart the tests cover.
type valueSet struct {
	name      string // default, ha, namespaced
	release   string
	namespace string
	files     []string
}

var valueSets = []valueSet{
	{name: "default", release: "graylane", namespace: "graylane"},
	{name: "ha", release: "gl-ha", namespace: "graylane-ha", files: []string{chartDir + "/ci/ha-values.yaml"}},
	{name: "namespaced", release: "gl-ns", namespace: "graylane-ns", files: []string{chartDir + "/ci/namespaced-values.yaml"}},
}

// fullname is the chart's name for the release's objects.
func (v valueSet) fullname() string {
	if strings.Contains(v.release, "graylane") {
		return v.release
	}
	return v.release + "-graylane"
}

func (v valueSet) options() helmtool.Options {
	return helmtool.Options{Name: v.release, Namespace: v.namespace, ValueFiles: v.files}
}

// manifest is a rendered chart, one object per document.
type manifest []*unstructured.Unstructured

func parseManifest(t *testing.T, text string) manifest {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var m manifest
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered manifest is not YAML: %v\n%s", err, text)
		}
		if len(obj) == 0 {
			continue
		}
		m = append(m, &unstructured.Unstructured{Object: obj})
	}
	return m
}

func render(t *testing.T, v valueSet) manifest {
	t.Helper()
	out, err := helmtool.Template(t, chartDir, v.options())
	if err != nil {
		t.Fatal(err)
	}
	return parseManifest(t, out)
}

// find returns the object of kind and name (and namespace, if not empty),
// or nil.
func (m manifest) find(kind, ns, name string) *unstructured.Unstructured {
	for _, o := range m {
		if o.GetKind() == kind && o.GetName() == name && (ns == "" || o.GetNamespace() == ns) {
			return o
		}
	}
	return nil
}

func (m manifest) kinds() []string {
	var k []string
	for _, o := range m {
		k = append(k, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(k)
	return k
}

// typed converts a rendered object into a typed API object.
func typed[T any](t *testing.T, m manifest, kind, ns, name string) *T {
	t.Helper()
	o := m.find(kind, ns, name)
	if o == nil {
		t.Fatalf("no %s %s/%s rendered; have %v", kind, ns, name, m.kinds())
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
	return out
}

// graylaneConfig parses graylane.yaml out of the rendered ConfigMap.
func graylaneConfig(t *testing.T, m manifest, ns, name string) map[string]any {
	t.Helper()
	cm := typed[corev1.ConfigMap](t, m, "ConfigMap", ns, name)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["graylane.yaml"]), &cfg); err != nil {
		t.Fatalf("graylane.yaml in ConfigMap %s: %v\n%s", name, err, cm.Data["graylane.yaml"])
	}
	return cfg
}

func get(cfg map[string]any, path ...string) any {
	var cur any = cfg
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// fileRules reads the rules of the first object of kind in one of
// deployments/kubernetes' RBAC files.
func fileRules(t *testing.T, file, kind string) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := parseManifest(t, string(bytes.TrimSpace(data)))
	for _, o := range m {
		if o.GetKind() == kind {
			var r rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
				t.Fatal(err)
			}
			return r.Rules
		}
	}
	t.Fatalf("%s has no %s", file, kind)
	return nil
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// TestHelmLint runs Helm's linter (the SDK's action.Lint, what `helm lint`
// runs) in strict mode over the chart with each value set.
func TestHelmLint(t *testing.T) {
	testenv.IntegrationTest(t)
	for _, v := range valueSets {
		t.Run(v.name, func(t *testing.T) {
			out, err := helmtool.Lint(t, chartDir, helmtool.Options{Namespace: v.namespace, ValueFiles: v.files, Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("lint output:\n%s", out)
			}
		})
	}
}

// TestHelmRejectsBadValues: bad values stop rendering with a message
// naming the value at fault (values.schema.json or the chart's checks).
func TestHelmRejectsBadValues(t *testing.T) {
	testenv.IntegrationTest(t)
	cases := []struct {
		set  []string
		want string
	}{
		{[]string{"replicas=2"}, "replicas: 2 replicas need an external etcd (etcd.endpoints)"},
		{[]string{"source.type=zookeeper"}, "source"},
		{[]string{"source.type=nacos"}, "nacos.servers: required"},
		{[]string{"source.type=apollo"}, "apollo.meta: required"},
		{[]string{"rbac.namespaced=true"}, "rbac.namespaces: list the namespaces"},
		{[]string{"etcd.tls.existingSecret=x"}, "etcd.tls.existingSecret: set only with etcd.endpoints"},
		{[]string{"auth.token=short"}, "auth.token: at least 8 characters"},
		{[]string{"replicas=0"}, "replicas"},
		{[]string{"replica=2"}, "replica"}, // a typo: unknown keys are refused
	}
	for _, c := range cases {
		_, err := helmtool.Template(t, chartDir, helmtool.Options{Set: c.set})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %v: err %v, want one containing %q", c.set, err, c.want)
		}
	}
}

// TestHelmRenderDefault: one replica with its embedded etcd on a PVC,
// cluster-wide RBAC with the rules of deployments/kubernetes/rbac.yaml,
// probes on /healthz and /readyz, the API and console on one Service.
func TestHelmRenderDefault(t *testing.T) {
	testenv.IntegrationTest(t)
	v := valueSets[0]
	m := render(t, v)
	want := []string{"ClusterRole/graylane", "ClusterRoleBinding/graylane", "ConfigMap/graylane", "Deployment/graylane",
		"PersistentVolumeClaim/graylane-data", "Service/graylane", "ServiceAccount/graylane"}
	if got := m.kinds(); !slices.Equal(got, want) {
		t.Fatalf("rendered %v, want %v", got, want)
	}
	d := typed[appsv1.Deployment](t, m, "Deployment", v.namespace, "graylane")
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %d strategy %s, want 1 and Recreate (one process owns the etcd volume)", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %s / %s", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	if c.Resources.Requests.Cpu().String() != "100m" || c.Resources.Limits.Memory().String() != "512Mi" {
		t.Errorf("resources %+v", c.Resources)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "graylane" {
		t.Errorf("serviceAccountName %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	var dataVol *corev1.Volume
	for i := range d.Spec.Template.Spec.Volumes {
		if d.Spec.Template.Spec.Volumes[i].Name == "data" {
			dataVol = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	if dataVol == nil || dataVol.PersistentVolumeClaim == nil || dataVol.PersistentVolumeClaim.ClaimName != "graylane-data" {
		t.Errorf("data volume %+v, want the PVC graylane-data", dataVol)
	}
	if envVar(c, "GRAYLANE_HTTP_TOKEN") != nil {
		t.Errorf("a token env var without auth values")
	}
	cfg := graylaneConfig(t, m, v.namespace, "graylane")
	if get(cfg, "data", "dir") != "/data" || get(cfg, "http", "addr") != "0.0.0.0:8080" || get(cfg, "source", "type") != "etcd" {
		t.Errorf("graylane.yaml %v", cfg)
	}
	if eps, _ := get(cfg, "etcd", "endpoints").([]any); len(eps) != 0 {
		t.Errorf("etcd.endpoints %v, want none (embedded)", eps)
	}
	if get(cfg, "ha") != nil {
		t.Errorf("ha set for one replica: %v", get(cfg, "ha"))
	}
	svc := typed[corev1.Service](t, m, "Service", v.namespace, "graylane")
	if svc.Spec.Ports[0].Port != 8080 || svc.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("service ports %+v", svc.Spec.Ports)
	}
	cr := typed[rbacv1.ClusterRole](t, m, "ClusterRole", "", "graylane")
	if fr := fileRules(t, "kubernetes/rbac.yaml", "ClusterRole"); !reflect.DeepEqual(cr.Rules, fr) {
		t.Errorf("the chart's ClusterRole rules differ from deployments/kubernetes/rbac.yaml:\nchart %+v\nfile  %+v", cr.Rules, fr)
	}
}

// TestHelmRenderHA: two replicas with leader election on an external etcd
// over TLS, a PodDisruptionBudget, a rolling update that keeps one replica
// serving, the token from a Secret, a ServiceMonitor and an Ingress.
func TestHelmRenderHA(t *testing.T) {
	testenv.IntegrationTest(t)
	v := valueSets[1]
	m := render(t, v)
	name := "gl-ha-graylane"
	for _, k := range []string{"PodDisruptionBudget", "ServiceMonitor", "Ingress", "Secret"} {
		want := name
		if k == "Secret" {
			want = name + "-auth"
		}
		if m.find(k, v.namespace, want) == nil {
			t.Errorf("no %s %s; have %v", k, want, m.kinds())
		}
	}
	if m.find("PersistentVolumeClaim", "", name+"-data") != nil {
		t.Errorf("a PVC with an external etcd")
	}
	d := typed[appsv1.Deployment](t, m, "Deployment", v.namespace, name)
	if *d.Spec.Replicas != 2 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("replicas %d strategy %+v, want 2, RollingUpdate with maxUnavailable 0", *d.Spec.Replicas, d.Spec.Strategy)
	}
	c := d.Spec.Template.Spec.Containers[0]
	tok := envVar(c, "GRAYLANE_HTTP_TOKEN")
	if tok == nil || tok.ValueFrom.SecretKeyRef.Name != name+"-auth" || tok.ValueFrom.SecretKeyRef.Key != "token" {
		t.Errorf("GRAYLANE_HTTP_TOKEN %+v, want from Secret %s-auth key token", tok, name)
	}
	if id := envVar(c, "GRAYLANE_HA_ID"); id == nil || id.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("GRAYLANE_HA_ID %+v, want the pod name", id)
	}
	cfg := graylaneConfig(t, m, v.namespace, name)
	if get(cfg, "ha", "enabled") != true {
		t.Errorf("ha.enabled %v, want true with 2 replicas", get(cfg, "ha", "enabled"))
	}
	if eps, _ := get(cfg, "etcd", "endpoints").([]any); len(eps) != 3 {
		t.Errorf("etcd.endpoints %v", eps)
	}
	if get(cfg, "etcd", "tls", "caFile") != "/etc/graylane/etcd-tls/ca.crt" || get(cfg, "etcd", "tls", "certFile") != "/etc/graylane/etcd-tls/tls.crt" {
		t.Errorf("etcd.tls %v", get(cfg, "etcd", "tls"))
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		mounted = mounted || (vm.Name == "etcd-tls" && vm.MountPath == "/etc/graylane/etcd-tls")
	}
	if !mounted {
		t.Errorf("the etcd client certificate Secret is not mounted: %+v", c.VolumeMounts)
	}
	sm := m.find("ServiceMonitor", v.namespace, name)
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 || eps[0].(map[string]any)["path"] != "/metrics" || eps[0].(map[string]any)["port"] != "http" {
		t.Errorf("ServiceMonitor endpoints %v", eps)
	}
	sec := typed[corev1.Secret](t, m, "Secret", v.namespace, name+"-auth")
	if string(sec.Data["token"]) != "change-me-please-0123456789" {
		t.Errorf("auth Secret data %v", sec.Data)
	}
}

// TestHelmRenderNamespaced: a Role and RoleBinding in each listed
// namespace with the rules of deployments/kubernetes/rbac-namespaced.yaml,
// no ClusterRole, graylane limited to those namespaces, and Nacos with its
// credentials from a Secret.
func TestHelmRenderNamespaced(t *testing.T) {
	testenv.IntegrationTest(t)
	v := valueSets[2]
	m := render(t, v)
	name := "gl-ns-graylane"
	if m.find("ClusterRole", "", name) != nil || m.find("ClusterRoleBinding", "", name) != nil {
		t.Fatalf("cluster-wide RBAC with rbac.namespaced: %v", m.kinds())
	}
	fr := fileRules(t, "kubernetes/rbac-namespaced.yaml", "Role")
	for _, ns := range []string{"shop", "cart"} {
		r := typed[rbacv1.Role](t, m, "Role", ns, name)
		if !reflect.DeepEqual(r.Rules, fr) {
			t.Errorf("Role in %s differs from deployments/kubernetes/rbac-namespaced.yaml:\nchart %+v\nfile  %+v", ns, r.Rules, fr)
		}
		rb := typed[rbacv1.RoleBinding](t, m, "RoleBinding", ns, name)
		if rb.Subjects[0].Name != name || rb.Subjects[0].Namespace != v.namespace {
			t.Errorf("RoleBinding in %s binds %+v", ns, rb.Subjects)
		}
	}
	cfg := graylaneConfig(t, m, v.namespace, name)
	if nss, _ := get(cfg, "kubernetes", "namespaces").([]any); len(nss) != 2 || nss[0] != "shop" || nss[1] != "cart" {
		t.Errorf("kubernetes.namespaces %v, want [shop cart]", nss)
	}
	if get(cfg, "source", "type") != "nacos" || get(cfg, "nacos", "group") != "GRAYLANE_RELEASES" {
		t.Errorf("nacos settings %v %v", get(cfg, "source"), get(cfg, "nacos"))
	}
	if get(cfg, "nacos", "tls", "caFile") != "/etc/graylane/nacos-tls/ca.crt" || get(cfg, "nacos", "tls", "enabled") != true {
		t.Errorf("nacos.tls %v, want TLS with the CA from the mounted Secret", get(cfg, "nacos", "tls"))
	}
	if strings.Contains(strings.ToLower(string(mustJSON(t, cfg))), "password") {
		t.Errorf("a password in the ConfigMap: %v", cfg)
	}
	d := typed[appsv1.Deployment](t, m, "Deployment", v.namespace, name)
	c := d.Spec.Template.Spec.Containers[0]
	caMounted := false
	for _, vol := range d.Spec.Template.Spec.Volumes {
		caMounted = caMounted || (vol.Name == "nacos-tls" && vol.Secret != nil && vol.Secret.SecretName == "graylane-nacos-ca")
	}
	for _, vm := range c.VolumeMounts {
		caMounted = caMounted && (vm.Name != "nacos-tls" || vm.MountPath == "/etc/graylane/nacos-tls")
	}
	if !caMounted {
		t.Errorf("the Nacos CA Secret is not mounted: %+v", d.Spec.Template.Spec.Volumes)
	}
	for _, e := range []string{"GRAYLANE_NACOS_USERNAME", "GRAYLANE_NACOS_PASSWORD", "GRAYLANE_NACOS_ACCESSKEY", "GRAYLANE_NACOS_SECRETKEY"} {
		ev := envVar(c, e)
		if ev == nil || ev.ValueFrom.SecretKeyRef.Name != "graylane-nacos" {
			t.Errorf("%s %+v, want from Secret graylane-nacos", e, ev)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
