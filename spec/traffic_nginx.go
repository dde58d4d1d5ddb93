package spec

// NginxTraffic configures the nginx traffic router. Its fields arrive with
// the nginx adapter; until then the section accepts no fields.
type NginxTraffic struct{}

func (n *NginxTraffic) validate(path string, e *errs) {}
