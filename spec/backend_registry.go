package spec

// RegistryBackend configures the registry backend. Its fields arrive with the registry adapter;
// until then the section accepts no fields.
type RegistryBackend struct{}

func (b *RegistryBackend) validate(path string, e *errs) {}
