package spec

// Config is the configuration bound to a code version. Its fields arrive
// with config-in-step; until then the section accepts no fields.
type Config struct{}

func (c *Config) validate(path string, e *errs) {}
