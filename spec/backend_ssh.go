package spec

// SSHBackend configures the ssh backend. Its fields arrive with the ssh adapter;
// until then the section accepts no fields.
type SSHBackend struct{}

func (b *SSHBackend) validate(path string, e *errs) {}
