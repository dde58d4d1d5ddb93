package spec

// Backend types.
const (
	BackendProcess    = "process"
	BackendSSH        = "ssh"
	BackendKubernetes = "kubernetes"
	BackendWebhook    = "webhook"
	BackendRegistry   = "registry"
	BackendDocker     = "docker"
)

// Backend says where an app's instances run. Type picks the section that
// must be present; the others must be absent.
type Backend struct {
	Type       string             `json:"type"`
	Process    *ProcessBackend    `json:"process,omitempty"`
	SSH        *SSHBackend        `json:"ssh,omitempty"`
	Kubernetes *KubernetesBackend `json:"kubernetes,omitempty"`
	Webhook    *WebhookBackend    `json:"webhook,omitempty"`
	Registry   *RegistryBackend   `json:"registry,omitempty"`
	Docker     *DockerBackend     `json:"docker,omitempty"`
}

func (b *Backend) validate(path string, e *errs) {
	sections := map[string]bool{
		BackendProcess:    b.Process != nil,
		BackendSSH:        b.SSH != nil,
		BackendKubernetes: b.Kubernetes != nil,
		BackendWebhook:    b.Webhook != nil,
		BackendRegistry:   b.Registry != nil,
		BackendDocker:     b.Docker != nil,
	}
	if _, ok := sections[b.Type]; !ok {
		if b.Type == "" {
			e.add(join(path, "type"), "is required (process, ssh, kubernetes, webhook, registry or docker)")
		} else {
			e.add(join(path, "type"), "%q is not a backend type (process, ssh, kubernetes, webhook, registry or docker)", b.Type)
		}
		return
	}
	for name, present := range sections {
		if present && name != b.Type {
			e.add(join(path, name), "is set but backend.type is %q", b.Type)
		}
	}
	switch b.Type {
	case BackendProcess:
		if b.Process == nil {
			e.add(join(path, "process"), "is required when type is process")
			return
		}
		b.Process.validate(join(path, "process"), e)
	case BackendSSH:
		if b.SSH == nil {
			e.add(join(path, "ssh"), "is required when type is ssh")
			return
		}
		b.SSH.validate(join(path, "ssh"), e)
	case BackendKubernetes:
		if b.Kubernetes == nil {
			e.add(join(path, "kubernetes"), "is required when type is kubernetes")
			return
		}
		b.Kubernetes.validate(join(path, "kubernetes"), e)
	case BackendWebhook:
		if b.Webhook == nil {
			e.add(join(path, "webhook"), "is required when type is webhook")
			return
		}
		b.Webhook.validate(join(path, "webhook"), e)
	case BackendRegistry:
		if b.Registry == nil {
			b.Registry = &RegistryBackend{}
		}
		b.Registry.validate(join(path, "registry"), e)
	case BackendDocker:
		if b.Docker == nil {
			e.add(join(path, "docker"), "is required when type is docker")
			return
		}
		b.Docker.validate(join(path, "docker"), e)
	}
}
