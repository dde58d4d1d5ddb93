package spec

import (
	"net"
	"strconv"
	"time"
)

// DefaultStopGracePeriod is how long a stopped instance gets between SIGTERM
// and SIGKILL.
const DefaultStopGracePeriod = 10 * time.Second

// ProcessBackend runs instances as local processes (the embedded default).
type ProcessBackend struct {
	// Command is the argv of one instance. Each element is a Go template
	// with {{.App}}, {{.Version}}, {{.Addr}} (host:port), {{.Port}},
	// {{.Slot}} and {{.InstanceID}}. It is executed directly, never through
	// a shell.
	Command []string `json:"command"`
	// Dir is the working directory (default: graylane's).
	Dir string `json:"dir,omitempty"`
	// Env is extra environment, also templated.
	Env map[string]string `json:"env,omitempty"`
	// Host is the address instances bind (default 127.0.0.1).
	Host string `json:"host,omitempty"`
	// Proxy is the listen address of graylane's built-in traffic router for
	// this app, e.g. 127.0.0.1:8081. Empty means no proxy.
	Proxy string `json:"proxy,omitempty"`
	// StopGracePeriod is the time between SIGTERM and SIGKILL (default 10s).
	StopGracePeriod *Duration `json:"stopGracePeriod,omitempty"`
}

// TemplateData is what Command and Env templates see.
type TemplateData struct {
	App, Version, Addr, InstanceID string
	Port, Slot                     int
}

func (p *ProcessBackend) validate(path string, e *errs) {
	if len(p.Command) == 0 {
		e.add(join(path, "command"), "is required")
	}
	probe := TemplateData{App: "app", Version: "v1", Addr: "127.0.0.1:1", Port: 1, InstanceID: "app-v1-0"}
	for i, arg := range p.Command {
		if err := checkTemplate(arg, probe); err != nil {
			e.add(index(join(path, "command"), i), "%v", err)
		}
	}
	for k, v := range p.Env {
		if err := checkTemplate(v, probe); err != nil {
			e.add(join(join(path, "env"), k), "%v", err)
		}
	}
	if p.Proxy != "" {
		if _, port, err := net.SplitHostPort(p.Proxy); err != nil {
			e.add(join(path, "proxy"), "%q is not host:port", p.Proxy)
		} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			e.add(join(path, "proxy"), "%q has no valid port", p.Proxy)
		}
	}
	if p.Host != "" && net.ParseIP(p.Host) == nil {
		e.add(join(path, "host"), "%q is not an IP address", p.Host)
	}
	if p.StopGracePeriod != nil && p.StopGracePeriod.Duration < 0 {
		e.add(join(path, "stopGracePeriod"), "must not be negative")
	}
}

func checkTemplate(s string, data TemplateData) error {
	_, err := Render(s, data)
	return err
}

// Render executes one command or env template.
func Render(s string, data TemplateData) (string, error) { return renderTemplate(s, data) }

// RenderMap executes a template over a map (check URLs, queries).
func RenderMap(s string, data map[string]string) (string, error) { return renderTemplate(s, data) }
