package kubernetes_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/graylane/graylane/spec"
)

const validSpec = `
app: cart
version: v2
replicas: 4
strategy: {type: rolling, maxSurge: 1, maxUnavailable: 0, progressDeadline: 2m, autoRollback: true}
backend:
  type: kubernetes
  kubernetes:
    namespace: shop
    deployment: cart
    container: cart
    image: registry.example.com/shop/cart:{{.Version}}
    template:
      metadata: {labels: {tier: web}}
      spec:
        containers:
          - name: cart
            ports: [{containerPort: 8080}]
            env: [{name: VERSION, value: "{{.Version}}"}]
    service: {name: cart, port: 80}
`

func TestSpecKubernetesSection(t *testing.T) {
	rel, err := spec.Parse([]byte(validSpec))
	if err != nil {
		t.Fatalf("valid spec rejected: %v", err)
	}
	kb := rel.Backend.Kubernetes
	if kb.NamespaceOrDefault() != "shop" || kb.DeploymentName("x") != "cart" || kb.ServiceName("x") != "cart" ||
		kb.PreviewServiceName("x") != "cart-preview" || kb.Service.ServicePort() != 80 || kb.TemplatePort() != 8080 {
		t.Fatalf("accessors: %+v", kb)
	}
	img, err := spec.RenderKubernetes(kb.Image, spec.KubernetesTemplateData{App: "cart", Version: "v2"})
	if err != nil || img != "registry.example.com/shop/cart:v2" {
		t.Fatalf("image %q, %v", img, err)
	}
	minimal, err := spec.Parse([]byte("app: cart\nversion: v1\nbackend: {type: kubernetes, kubernetes: {image: 'r/cart:{{.Version}}'}}\n"))
	if err != nil {
		t.Fatalf("minimal spec rejected: %v", err)
	}
	if kb := minimal.Backend.Kubernetes; kb.NamespaceOrDefault() != "default" || kb.DeploymentName("cart") != "cart" || kb.ServiceName("cart") != "" {
		t.Fatalf("defaults: %+v", kb)
	}
}

func TestSpecKubernetesRejections(t *testing.T) {
	for _, c := range []struct {
		name, from, to, path, msg string
	}{
		{"image required", "    image: registry.example.com/shop/cart:{{.Version}}\n", "", "backend.kubernetes.image", "is required"},
		{"image template field", "cart:{{.Version}}", "cart:{{.Port}}", "backend.kubernetes.image", "Port"},
		{"namespace", "namespace: shop", "namespace: Shop_1", "backend.kubernetes.namespace", "not a namespace name"},
		{"deployment too long", "deployment: cart", "deployment: " + strings.Repeat("c", 43), "backend.kubernetes.deployment", "over 42"},
		{"container missing from template", "container: cart", "container: web", "backend.kubernetes.container", `"web" is not a container`},
		{"reserved label", "labels: {tier: web}", "labels: {graylane.io/version: x}", "backend.kubernetes.template.metadata.labels.graylane.io/version", "set by graylane"},
		{"label not a string", "labels: {tier: web}", "labels: {tier: 3}", "backend.kubernetes.template.metadata.labels.tier", "want a string"},
		{"no containers", "        containers:\n", "        initContainers:\n", "backend.kubernetes.template.spec.containers", "at least one container"},
		{"template string", `value: "{{.Version}}"`, `value: "{{.Nope}}"`, "backend.kubernetes.template.spec.containers[0].env[0].value", "Nope"},
		{"template top-level field", "    template:\n", "    template:\n      kind: Pod\n", "backend.kubernetes.template.kind", "unknown field"},
		{"service port", "port: 80}", "port: 70000}", "backend.kubernetes.service.port", "outside 1..65535"},
		{"service name", "name: cart, port", "name: Cart, port", "backend.kubernetes.service.name", "not a Service name"},
		{"unknown field", "    namespace: shop\n", "    namespace: shop\n    replicas: 3\n", "backend.kubernetes.replicas", "unknown field"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(validSpec, c.from, c.to, 1)
			if doc == validSpec {
				t.Fatalf("test case does not change the spec (%q not found)", c.from)
			}
			_, err := spec.Parse([]byte(doc))
			var verr *spec.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Parse = %v, want a ValidationError", err)
			}
			for _, fe := range verr.Errors {
				if fe.Path == c.path && strings.Contains(fe.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("errors %v lack %s: ...%s...", verr.Errors, c.path, c.msg)
		})
	}
}
