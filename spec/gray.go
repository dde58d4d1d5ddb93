package spec

// Gray holds gray rules. Its fields arrive with gray routing; until then the
// section accepts no fields.
type Gray struct{}

func (g *Gray) validate(path string, e *errs) {}
