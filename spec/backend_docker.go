package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Values of the docker backend's enumerated fields.
const (
	DockerPullNever   = "never"
	DockerPullMissing = "missing"
	DockerPullAlways  = "always"

	DockerHealthGraylane = "graylane"
	DockerHealthImage    = "image"

	DockerStartFirst = "start-first"
	DockerStopFirst  = "stop-first"

	DockerNetworkBridge = "bridge"
	DockerNetworkHost   = "host"

	// DockerDefaultHost is the engine used when backend.docker.hosts is
	// empty and graylane's own configuration names none.
	DockerDefaultHost = "unix:///var/run/docker.sock"
	// DockerReservedLabelPrefix is the prefix of the labels graylane sets
	// on its containers; backend.docker.labels must not use it (nor the
	// compose prefix, which graylane sets for compose-adopted services).
	DockerReservedLabelPrefix = "graylane.io/"
	DockerComposeLabelPrefix  = "com.docker.compose."
)

// DockerBackend runs an app's instances as containers on one or more Docker
// Engines (backend.type docker). How it maps onto containers is described
// in package adapters/docker and docs/backends.md.
//
//	backend:
//	  type: docker
//	  docker:
//	    image: "registry.example.com/shop:{{.Version}}"
//	    pull: missing            # never | missing | always
//	    command: ["--listen=:8080"]
//	    env: {APP_VERSION: "{{.Version}}"}
//	    port: 8080
//	    network: bridge          # or host, or a named network
//	    volumes: ["/srv/shop/data:/data:ro"]
//	    labels: {team: payments}
//	    resources: {cpus: "0.5", memory: 256Mi}
//	    healthcheck: graylane    # or image
//	    stopGracePeriod: 10s
//	    order: start-first       # or stop-first
//	    hosts: [unix:///var/run/docker.sock]
type DockerBackend struct {
	// Image is the container image, a template with {{.App}} and
	// {{.Version}}, e.g. registry.example.com/shop:{{.Version}}. Required
	// unless compose names a service with an image (whose tag is then
	// replaced by the version).
	Image string `json:"image,omitempty"`
	// Pull says when the image is pulled: never (it must be on the
	// engine), missing (default: only when the engine lacks it) or always
	// (before every container is created).
	Pull string `json:"pull,omitempty"`
	// Entrypoint replaces the image's entrypoint (optional). Each element
	// is a template over DockerTemplateData.
	Entrypoint []string `json:"entrypoint,omitempty"`
	// Command is the container's command: the arguments given to the
	// entrypoint (optional). Each element is a template over
	// DockerTemplateData, passed to the engine as one argument, never
	// through a shell.
	Command []string `json:"command,omitempty"`
	// Env is extra environment of the container; values are templates.
	Env map[string]string `json:"env,omitempty"`
	// Port is the port the app serves on inside the container. On a
	// bridge or named network graylane publishes it on a free host port of
	// the engine's host (instances' addresses are that host port). With
	// network host it is the port the app listens on directly, so one
	// instance per engine; leave it out and use {{.Port}} in command or
	// env to have graylane give every instance a free port of its own.
	Port int `json:"port,omitempty"`
	// Network is bridge (default: the engine's default bridge), host, or
	// the name of an existing network.
	Network string `json:"network,omitempty"`
	// Volumes are bind mounts and named volumes, as in docker run -v:
	// "/host/path:/container/path[:ro|rw]" or "volume:/container/path[:ro|rw]".
	Volumes []string `json:"volumes,omitempty"`
	// Labels are extra container labels. Keys under graylane.io/ and
	// com.docker.compose. are reserved.
	Labels map[string]string `json:"labels,omitempty"`
	// Resources limits each container.
	Resources *DockerResources `json:"resources,omitempty"`
	// Healthcheck picks how an instance is judged ready: graylane (default:
	// graylane probes health.path on the instance's address, as for the
	// process backend) or image (the container's own HEALTHCHECK, from
	// the image or the compose file, must report healthy).
	Healthcheck string `json:"healthcheck,omitempty"`
	// StopGracePeriod is the time between SIGTERM (docker stop) and
	// SIGKILL (default 10s).
	StopGracePeriod *Duration `json:"stopGracePeriod,omitempty"`
	// Order is Swarm's update order: start-first (default: surplus
	// containers are stopped only once the app's new containers are
	// ready) or stop-first (surplus containers on an engine are stopped
	// and removed before new ones are created there; for host ports or
	// memory that cannot hold both).
	Order string `json:"order,omitempty"`
	// Hosts are the engines; instances are spread over them (slot n on
	// hosts[n mod len(hosts)]). Default: graylane's docker.host setting,
	// else unix:///var/run/docker.sock.
	Hosts []DockerHost `json:"hosts,omitempty"`
	// Compose adopts a service of a docker-compose file: its image,
	// environment, ports, volumes, healthcheck and resources are the
	// defaults of the fields above.
	Compose *DockerCompose `json:"compose,omitempty"`
}

// DockerResources limits a container.
type DockerResources struct {
	// CPUs is a number of CPUs, e.g. "0.5" or 2.
	CPUs *DockerCPUs `json:"cpus,omitempty"`
	// Memory is a byte count with an optional unit: 256Mi, 1Gi, 512m,
	// 268435456.
	Memory string `json:"memory,omitempty"`
}

// DockerCPUs is a CPU count written as a number or a string ("0.5").
type DockerCPUs struct{ Value float64 }

// MarshalJSON writes the count as a string, e.g. "0.5".
func (c DockerCPUs) MarshalJSON() ([]byte, error) {
	return json.Marshal(strconv.FormatFloat(c.Value, 'f', -1, 64))
}

// UnmarshalJSON accepts 0.5 or "0.5".
func (c *DockerCPUs) UnmarshalJSON(b []byte) error {
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%s is not a number of CPUs", b)
		}
		n, err = strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number of CPUs (e.g. \"0.5\")", s)
		}
	}
	if math.IsNaN(n) || n <= 0 || n > 1024 {
		return fmt.Errorf("%v is outside (0, 1024] CPUs", n)
	}
	c.Value = n
	return nil
}

func (DockerCPUs) jsonKinds() []string { return []string{"string", "number"} }

// NanoCPUs returns the count in billionths of a CPU, as the engine wants.
func (c *DockerCPUs) NanoCPUs() int64 {
	if c == nil {
		return 0
	}
	return int64(math.Round(c.Value * 1e9))
}

// DockerHost is one Docker Engine. In YAML it is either the engine's URL
// ("unix:///var/run/docker.sock", "tcp://10.0.0.5:2376",
// "ssh://deploy@10.0.0.6") or a mapping with url and the optional fields.
type DockerHost struct {
	// URL is the engine's address: unix://, tcp:// or ssh://.
	URL string `json:"url"`
	// Name identifies the engine in instance metadata and logs (default:
	// the URL's host, or "local" for unix sockets).
	Name string `json:"name,omitempty"`
	// TLSDir holds ca.pem, cert.pem and key.pem for a tcp:// engine with
	// TLS (as DOCKER_CERT_PATH does), on graylane's machine.
	TLSDir string `json:"tlsDir,omitempty"`
	// PublishIP is the host address container ports are published on
	// (default 127.0.0.1 for an engine on graylane's machine, 0.0.0.0
	// otherwise).
	PublishIP string `json:"publishIP,omitempty"`
	// Address is where graylane and the traffic router reach published
	// ports (default: PublishIP unless it is 0.0.0.0, else the URL's host).
	Address string `json:"address,omitempty"`
}

// UnmarshalJSON accepts a URL string or a mapping.
func (h *DockerHost) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*h = DockerHost{URL: s}
		return nil
	}
	type plain DockerHost
	var p plain
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("a host is an engine URL or a mapping with url, name, tlsDir, publishIP, address: %v", err)
	}
	*h = DockerHost(p)
	return nil
}

func (DockerHost) jsonKinds() []string { return []string{"string", "mapping"} }

// DockerCompose names a docker-compose service to adopt.
type DockerCompose struct {
	// File is the compose file's path on graylane's machine (absolute, or
	// relative to graylane's working directory). A .env file beside it is
	// read for interpolation, as docker compose does.
	File string `json:"file"`
	// Service is the service to adopt.
	Service string `json:"service"`
	// Project is the compose project name (default: the file's name: key,
	// else its directory's name, as docker compose derives it).
	Project string `json:"project,omitempty"`
}

// DockerTemplateData is what the docker backend's entrypoint, command and
// env templates see. The image template sees only App and Version.
type DockerTemplateData struct {
	App, Version string
	// InstanceID is {app}-{version}-{slot}; it is also the container's name.
	InstanceID string
	// Host is the engine's name.
	Host string
	// Slot is the instance's slot (0..replicas-1 of its version).
	Slot int
	// Port is the port the app must listen on inside the container: the
	// spec's port, or with network host and no port the free port graylane
	// picked for the instance.
	Port int
}

// RenderDocker executes one docker backend template.
func RenderDocker(s string, data DockerTemplateData) (string, error) { return renderTemplate(s, data) }

// EffectivePull returns Pull with its default.
func (b *DockerBackend) EffectivePull() string {
	if b.Pull == "" {
		return DockerPullMissing
	}
	return b.Pull
}

// EffectiveOrder returns Order with its default.
func (b *DockerBackend) EffectiveOrder() string {
	if b.Order == "" {
		return DockerStartFirst
	}
	return b.Order
}

// EffectiveNetwork returns Network with its default.
func (b *DockerBackend) EffectiveNetwork() string {
	if b.Network == "" {
		return DockerNetworkBridge
	}
	return b.Network
}

// EffectiveStopGracePeriod returns StopGracePeriod with its default.
func (b *DockerBackend) EffectiveStopGracePeriod() time.Duration {
	if b.StopGracePeriod == nil {
		return DefaultStopGracePeriod
	}
	return b.StopGracePeriod.Duration
}

// HostName returns the engine's name.
func (h DockerHost) HostName() string {
	if h.Name != "" {
		return h.Name
	}
	u, err := url.Parse(h.URL)
	if err != nil || u.Scheme == "unix" {
		return "local"
	}
	return u.Hostname()
}

// Local reports whether the engine runs on graylane's machine (a unix
// socket, or tcp:// on a loopback address).
func (h DockerHost) Local() bool {
	u, err := url.Parse(h.URL)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "unix":
		return true
	case "tcp", "http", "https":
		host := u.Hostname()
		return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
	}
	return false
}

// EffectivePublishIP returns PublishIP with its default.
func (h DockerHost) EffectivePublishIP() string {
	if h.PublishIP != "" {
		return h.PublishIP
	}
	if h.Local() {
		return "127.0.0.1"
	}
	return "0.0.0.0"
}

// EffectiveAddress returns where published ports are reached.
func (h DockerHost) EffectiveAddress() string {
	if h.Address != "" {
		return h.Address
	}
	if ip := h.EffectivePublishIP(); ip != "0.0.0.0" && ip != "::" {
		return ip
	}
	if u, err := url.Parse(h.URL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "127.0.0.1"
}
