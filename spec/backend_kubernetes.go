package spec

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Defaults and limits of the kubernetes backend.
const (
	DefaultKubernetesNamespace   = "default"
	DefaultKubernetesServicePort = 80
	// MaxKubernetesDeploymentName leaves room for the "-{version}" suffix
	// of the per-version Deployments (a canary's or a blue-green's) within
	// a 63-character DNS label.
	MaxKubernetesDeploymentName = 42
	// KubernetesReservedPrefix is the label and annotation prefix graylane
	// sets on the objects it manages; a pod template must not use it.
	KubernetesReservedPrefix = "graylane.io/"
)

var (
	// kubeLabelPattern is a DNS-1123 label: what namespaces, container
	// names and Kubernetes object names graylane derives may look like.
	kubeLabelPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// kubeServicePattern is a DNS-1035 label (Service names start with a
	// letter).
	kubeServicePattern = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// KubernetesBackend runs an app as Kubernetes Deployments (backend.type
// kubernetes). How each strategy maps onto Deployments is described in
// package adapters/kubernetes and docs/kubernetes.md.
//
//	backend:
//	  type: kubernetes
//	  kubernetes:
//	    namespace: shop
//	    deployment: cart                  # default: the app name
//	    container: cart                   # default: the first container
//	    image: registry.example.com/shop/cart:{{.Version}}
//	    template:                         # optional: a pod template graylane owns
//	      metadata: {labels: {tier: web}}
//	      spec:
//	        containers:
//	          - name: cart
//	            ports: [{containerPort: 8080}]
//	            env: [{name: VERSION, value: "{{.Version}}"}]
//	    service: {name: cart, port: 80}   # optional; required by bluegreen
type KubernetesBackend struct {
	// Namespace holds every object of the app (default "default"). It must
	// exist; graylane does not create namespaces.
	Namespace string `json:"namespace,omitempty"`
	// Deployment names the app's primary Deployment (default: the app
	// name). Without Template it must exist and carry the annotation
	// graylane.io/managed-by: graylane; its pod template is then the base
	// of every version. Per-version Deployments are named
	// {deployment}-{version}.
	Deployment string `json:"deployment,omitempty"`
	// Container is the container whose image follows the version (default:
	// the first container of the pod template).
	Container string `json:"container,omitempty"`
	// Image is the container's image, a template with {{.App}} and
	// {{.Version}}, e.g. registry.example.com/shop/cart:{{.Version}}.
	Image string `json:"image"`
	// Template is a Kubernetes PodTemplateSpec (metadata and spec) that
	// graylane owns: it creates the Deployments from it. Every string in it
	// is a template with {{.App}} and {{.Version}}. Labels and annotations
	// under graylane.io/ are reserved.
	Template map[string]any `json:"template,omitempty"`
	// Service, if set, is the Service in front of the app. For rolling and
	// canary it selects every version (traffic follows ready pods); for
	// bluegreen it is the active Service whose selector graylane switches,
	// beside a preview Service.
	Service *KubernetesService `json:"service,omitempty"`
}

// KubernetesService configures the Service(s) in front of an app.
type KubernetesService struct {
	// Name of the (active) Service (default: the deployment name).
	Name string `json:"name,omitempty"`
	// PreviewName is the blue-green preview Service (default {name}-preview).
	PreviewName string `json:"previewName,omitempty"`
	// Port is the Service port (default 80).
	Port int `json:"port,omitempty"`
	// TargetPort is the pods' port (default: the first containerPort of the
	// container in template, else port).
	TargetPort int `json:"targetPort,omitempty"`
}

// KubernetesTemplateData is what the kubernetes backend's templates (image
// and every string of the pod template) see.
type KubernetesTemplateData struct {
	App, Version string
}

// RenderKubernetes executes one kubernetes backend template. Unknown fields
// ({{.Port}}) are errors.
func RenderKubernetes(s string, data KubernetesTemplateData) (string, error) {
	return renderTemplate(s, data)
}

// NamespaceOrDefault returns Namespace with its default.
func (b *KubernetesBackend) NamespaceOrDefault() string {
	if b.Namespace == "" {
		return DefaultKubernetesNamespace
	}
	return b.Namespace
}

// DeploymentName returns the primary Deployment's name for app.
func (b *KubernetesBackend) DeploymentName(app string) string {
	if b.Deployment == "" {
		return app
	}
	return b.Deployment
}

// ServiceName returns the active Service's name ("" without a service).
func (b *KubernetesBackend) ServiceName(app string) string {
	if b.Service == nil {
		return ""
	}
	if b.Service.Name != "" {
		return b.Service.Name
	}
	return b.DeploymentName(app)
}

// PreviewServiceName returns the preview Service's name ("" without a
// service).
func (b *KubernetesBackend) PreviewServiceName(app string) string {
	if b.Service == nil {
		return ""
	}
	if b.Service.PreviewName != "" {
		return b.Service.PreviewName
	}
	return b.ServiceName(app) + "-preview"
}

// ServicePort returns the Service port with its default.
func (s *KubernetesService) ServicePort() int {
	if s == nil || s.Port == 0 {
		return DefaultKubernetesServicePort
	}
	return s.Port
}

// TemplateContainers returns the container names of Template, in order.
func (b *KubernetesBackend) TemplateContainers() []string {
	var out []string
	for _, c := range b.templateContainers() {
		if n, ok := c["name"].(string); ok {
			out = append(out, n)
		}
	}
	return out
}

func (b *KubernetesBackend) templateContainers() []map[string]any {
	sp, _ := b.Template["spec"].(map[string]any)
	list, _ := sp["containers"].([]any)
	var out []map[string]any
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// TemplatePort returns the first containerPort of the versioned container
// in Template, or 0.
func (b *KubernetesBackend) TemplatePort() int {
	for i, c := range b.templateContainers() {
		if b.Container != "" && c["name"] != b.Container || b.Container == "" && i > 0 {
			continue
		}
		ports, _ := c["ports"].([]any)
		for _, p := range ports {
			if m, ok := p.(map[string]any); ok {
				if n, ok := m["containerPort"].(float64); ok && n > 0 {
					return int(n)
				}
			}
		}
	}
	return 0
}

func (b *KubernetesBackend) validate(p string, e *errs) {
	if b.Namespace != "" && !kubeLabelPattern.MatchString(b.Namespace) {
		e.add(join(p, "namespace"), "%q is not a namespace name (lower-case letters, digits and '-', at most 63)", b.Namespace)
	}
	if b.Deployment != "" {
		switch {
		case !kubeLabelPattern.MatchString(b.Deployment):
			e.add(join(p, "deployment"), "%q is not a Deployment name (lower-case letters, digits and '-')", b.Deployment)
		case len(b.Deployment) > MaxKubernetesDeploymentName:
			e.add(join(p, "deployment"), "%q is %d characters, over %d (room is needed for the -{version} suffix)", b.Deployment, len(b.Deployment), MaxKubernetesDeploymentName)
		}
	}
	if b.Container != "" && !kubeLabelPattern.MatchString(b.Container) {
		e.add(join(p, "container"), "%q is not a container name", b.Container)
	}
	probe := KubernetesTemplateData{App: "app", Version: "v1"}
	switch img, err := RenderKubernetes(b.Image, probe); {
	case b.Image == "":
		e.add(join(p, "image"), "is required (e.g. registry.example.com/shop/cart:{{.Version}})")
	case err != nil:
		e.add(join(p, "image"), "%v", err)
	case strings.ContainsAny(img, " \t\r\n") || img == "":
		e.add(join(p, "image"), "%q is not an image reference", b.Image)
	}
	if b.Template != nil {
		b.validateTemplate(p, probe, e)
	}
	if s := b.Service; s != nil {
		sp := join(p, "service")
		if s.Name != "" && !kubeServicePattern.MatchString(s.Name) {
			e.add(join(sp, "name"), "%q is not a Service name (a lower-case letter, then letters, digits and '-', at most 63)", s.Name)
		}
		if s.PreviewName != "" && !kubeServicePattern.MatchString(s.PreviewName) {
			e.add(join(sp, "previewName"), "%q is not a Service name", s.PreviewName)
		}
		if s.Port < 0 || s.Port > 65535 {
			e.add(join(sp, "port"), "%d is outside 1..65535", s.Port)
		}
		if s.TargetPort < 0 || s.TargetPort > 65535 {
			e.add(join(sp, "targetPort"), "%d is outside 1..65535", s.TargetPort)
		}
		if s.Name != "" && s.Name == s.PreviewName {
			e.add(join(sp, "previewName"), "must differ from name")
		}
	}
}

// validateTemplate checks what graylane relies on in a pod template; the
// API server checks the rest when graylane creates the Deployment.
func (b *KubernetesBackend) validateTemplate(bp string, probe KubernetesTemplateData, e *errs) {
	p := join(bp, "template")
	for k := range b.Template {
		if k != "metadata" && k != "spec" {
			e.add(join(p, k), "unknown field (known: metadata, spec)")
		}
	}
	if md, ok := b.Template["metadata"]; ok {
		m, isMap := md.(map[string]any)
		if !isMap {
			e.add(join(p, "metadata"), "got %s, want a mapping", jsonKind(md))
		}
		for _, field := range []string{"labels", "annotations"} {
			raw, ok := m[field]
			if !ok {
				continue
			}
			kv, isMap := raw.(map[string]any)
			if !isMap {
				e.add(join(join(p, "metadata"), field), "got %s, want a mapping", jsonKind(raw))
				continue
			}
			for k, v := range kv {
				fp := join(join(join(p, "metadata"), field), k)
				if strings.HasPrefix(k, KubernetesReservedPrefix) {
					e.add(fp, "%s %s are set by graylane", strings.TrimSuffix(KubernetesReservedPrefix, "/"), field)
				}
				if _, ok := v.(string); !ok {
					e.add(fp, "got %s, want a string", jsonKind(v))
				}
			}
		}
	}
	sp, ok := b.Template["spec"].(map[string]any)
	if !ok {
		e.add(join(p, "spec"), "is required (a pod spec with containers)")
		return
	}
	list, ok := sp["containers"].([]any)
	if !ok || len(list) == 0 {
		e.add(join(join(p, "spec"), "containers"), "needs at least one container")
		return
	}
	names := map[string]bool{}
	for i, c := range list {
		cp := index(join(join(p, "spec"), "containers"), i)
		m, ok := c.(map[string]any)
		if !ok {
			e.add(cp, "got %s, want a mapping", jsonKind(c))
			continue
		}
		n, _ := m["name"].(string)
		if n == "" {
			e.add(join(cp, "name"), "is required")
		}
		names[n] = true
	}
	if b.Container != "" && !names[b.Container] {
		e.add(join(bp, "container"), "%q is not a container of the template (%s)", b.Container, strings.Join(b.TemplateContainers(), ", "))
	}
	walkStrings(b.Template, p, func(path, s string) {
		if _, err := RenderKubernetes(s, probe); err != nil {
			e.add(path, "%v", err)
		}
	})
}

// walkStrings calls fn for every string in a decoded JSON value, with its
// field path. Map keys are visited in order.
func walkStrings(v any, path string, fn func(path, s string)) {
	switch x := v.(type) {
	case string:
		fn(path, x)
	case []any:
		for i, item := range x {
			walkStrings(item, index(path, i), fn)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walkStrings(x[k], join(path, k), fn)
		}
	}
}

// RenderKubernetesTemplate returns a deep copy of a decoded JSON value with
// every string rendered as a template.
func RenderKubernetesTemplate(v any, data KubernetesTemplateData) (any, error) {
	switch x := v.(type) {
	case string:
		return RenderKubernetes(x, data)
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			r, err := RenderKubernetesTemplate(item, data)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			r, err := RenderKubernetesTemplate(item, data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	default:
		return v, nil
	}
}
