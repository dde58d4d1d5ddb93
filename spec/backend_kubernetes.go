package spec

// KubernetesBackend configures the kubernetes backend. Its fields arrive with the kubernetes adapter;
// until then the section accepts no fields.
type KubernetesBackend struct{}

func (b *KubernetesBackend) validate(path string, e *errs) {}
