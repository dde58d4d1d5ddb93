package docker

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/graylane/graylane/spec"
)

// Labels graylane sets on every container it creates. Adoption after a
// restart finds containers by LabelApp and reads their slot from the rest.
const (
	LabelApp       = "graylane.io/app"
	LabelVersion   = "graylane.io/version"
	LabelSlot      = "graylane.io/slot"
	LabelInstance  = "graylane.io/instance"
	LabelPort      = "graylane.io/port"
	LabelManagedBy = "graylane.io/managed-by"
	LabelRelease   = "graylane.io/release"
	ManagedBy      = "graylane"
)

// Labels of docker compose that graylane sets on the containers of an
// adopted compose service, so `docker compose ps` lists them.
const (
	LabelComposeProject    = "com.docker.compose.project"
	LabelComposeService    = "com.docker.compose.service"
	LabelComposeNumber     = "com.docker.compose.container-number"
	LabelComposeOneoff     = "com.docker.compose.oneoff"
	LabelComposeWorkingDir = "com.docker.compose.project.working_dir"
	LabelComposeFiles      = "com.docker.compose.project.config_files"
)

// Keys of adapters.Instance.Meta set by the backend.
const (
	MetaContainer = "container" // short container ID
	MetaHost      = "host"      // engine name
	MetaImage     = "image"
	MetaSlot      = "slot"
	MetaState     = "state"    // the engine's container state
	MetaRestarts  = "restarts" // restarts by the engine's policy and by graylane
	MetaHealth    = "health"   // graylane or image
	MetaAdopted   = "adopted"  // created before this graylane process started
)

// effective is an app's docker section with the compose service's values
// filled in: what containers of the app are created from.
type effective struct {
	d     spec.DockerBackend // templates (image, entrypoint, command, env)
	hosts []spec.DockerHost

	// From a compose service (literal, never templated): used where the
	// spec leaves the field empty.
	literalEntrypoint, literalCommand []string
	literalEnv                        map[string]string
	mounts                            []mount.Mount
	health                            *container.HealthConfig
	labels                            map[string]string
	user, workingDir                  string
	nanoCPUs, memory                  int64
	composeRel                        string // compose description for messages
}

// resolve builds the effective section of rel: defaults, compose values,
// hosts (defaultHost when the spec names none).
func resolve(rel *spec.Release, defaultHost spec.DockerHost, cc *composeCache) (*effective, error) {
	if rel == nil || rel.Backend.Docker == nil {
		return nil, fmt.Errorf("no backend.docker section: %w", spec.ErrInvalid)
	}
	e := &effective{d: *rel.Backend.Docker, labels: map[string]string{}}
	if c := rel.Backend.Docker.Compose; c != nil {
		if err := e.applyCompose(c, cc); err != nil {
			return nil, err
		}
	}
	e.hosts = e.d.Hosts
	if len(e.hosts) == 0 {
		e.hosts = []spec.DockerHost{defaultHost}
	}
	if r := e.d.Resources; r != nil {
		if r.CPUs != nil {
			e.nanoCPUs = r.CPUs.NanoCPUs()
		}
		if r.Memory != "" {
			m, err := spec.ParseDockerMemory(r.Memory)
			if err != nil {
				return nil, fmt.Errorf("backend.docker.resources.memory: %v: %w", err, spec.ErrInvalid)
			}
			e.memory = m
		}
	}
	maps.Copy(e.labels, e.d.Labels)
	if e.d.Image == "" {
		return nil, fmt.Errorf("backend.docker.image: no image (and the compose service has none): %w", spec.ErrInvalid)
	}
	if e.d.Port == 0 && e.d.EffectiveNetwork() != spec.DockerNetworkHost {
		return nil, fmt.Errorf("backend.docker.port: no port (and the compose service publishes none): %w", spec.ErrInvalid)
	}
	return e, nil
}

// image renders the image of version.
func (e *effective) image(app, version string) (string, error) {
	img, err := spec.RenderKubernetes(e.d.Image, spec.KubernetesTemplateData{App: app, Version: version})
	if err != nil {
		return "", fmt.Errorf("backend.docker.image: %v: %w", err, spec.ErrInvalid)
	}
	if err := spec.CheckDockerImage(img); err != nil {
		return "", fmt.Errorf("backend.docker.image for version %s: %v: %w", version, err, spec.ErrInvalid)
	}
	return img, nil
}

// usesPickedPort reports whether instances listen on a port graylane
// picks per instance (network host without a port).
func (e *effective) usesPickedPort() bool {
	return e.d.EffectiveNetwork() == spec.DockerNetworkHost && e.d.Port == 0
}

func (e *effective) healthMode() string {
	if e.d.Healthcheck != "" {
		return e.d.Healthcheck
	}
	if e.health != nil && len(e.health.Test) > 0 && e.health.Test[0] != "NONE" {
		return spec.DockerHealthImage // a compose service's own healthcheck
	}
	return spec.DockerHealthGraylane
}

// instanceID is the instance's ID and container name: {app}-{version}-{slot}
// ('+' is not allowed in container names and becomes '_').
func instanceID(app string, k slotKey) string {
	return app + "-" + strings.ReplaceAll(k.version, "+", "_") + "-" + strconv.Itoa(k.n)
}

// createSpec is what the engine is asked to create for one slot.
type createSpec struct {
	name   string
	image  string
	config *container.Config
	host   *container.HostConfig
	net    *network.NetworkingConfig
}

// containerSpec renders the container of slot k on host h. port is the
// port the app listens on (the spec's, or the one picked for network host).
func (e *effective) containerSpec(rel *spec.Release, k slotKey, h spec.DockerHost, port int) (*createSpec, error) {
	app := rel.App
	img, err := e.image(app, k.version)
	if err != nil {
		return nil, err
	}
	id := instanceID(app, k)
	data := spec.DockerTemplateData{App: app, Version: k.version, InstanceID: id, Host: h.HostName(), Slot: k.n, Port: port}
	render := func(field string, argv []string) ([]string, error) {
		out := make([]string, len(argv))
		for i, a := range argv {
			s, err := spec.RenderDocker(a, data)
			if err != nil {
				return nil, fmt.Errorf("backend.docker.%s[%d]: %v: %w", field, i, err, spec.ErrInvalid)
			}
			out[i] = s
		}
		return out, nil
	}
	entry, err := render("entrypoint", e.d.Entrypoint)
	if err != nil {
		return nil, err
	}
	if len(e.d.Entrypoint) == 0 {
		entry = slices.Clone(e.literalEntrypoint)
	}
	cmd, err := render("command", e.d.Command)
	if err != nil {
		return nil, err
	}
	if len(e.d.Command) == 0 {
		cmd = slices.Clone(e.literalCommand)
	}
	env := maps.Clone(e.literalEnv)
	if env == nil {
		env = map[string]string{}
	}
	for k, v := range e.d.Env {
		s, err := spec.RenderDocker(v, data)
		if err != nil {
			return nil, fmt.Errorf("backend.docker.env.%s: %v: %w", k, err, spec.ErrInvalid)
		}
		env[k] = s
	}
	var envList []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envList = append(envList, k+"="+env[k])
	}
	labels := maps.Clone(e.labels)
	labels[LabelApp] = app
	labels[LabelVersion] = k.version
	labels[LabelSlot] = strconv.Itoa(k.n)
	labels[LabelInstance] = id
	labels[LabelManagedBy] = ManagedBy
	labels[LabelRelease] = rel.Hash()
	labels[LabelPort] = strconv.Itoa(port)
	if _, ok := labels[LabelComposeNumber]; ok {
		labels[LabelComposeNumber] = strconv.Itoa(k.n + 1)
	}

	cfg := &container.Config{
		Image:      img,
		Env:        envList,
		Labels:     labels,
		User:       e.user,
		WorkingDir: e.workingDir,
		Healthcheck: func() *container.HealthConfig {
			if e.health == nil {
				return nil
			}
			h := *e.health
			return &h
		}(),
	}
	if len(entry) > 0 {
		cfg.Entrypoint = entry
	}
	if len(cmd) > 0 {
		cfg.Cmd = cmd
	}
	grace := int((e.d.EffectiveStopGracePeriod() + time.Second - 1) / time.Second)
	cfg.StopTimeout = &grace
	hc := &container.HostConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Mounts:        slices.Clone(e.mounts),
		Resources:     container.Resources{NanoCPUs: e.nanoCPUs, Memory: e.memory},
		LogConfig:     container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
	}
	for i, v := range e.d.Volumes {
		src, dst, mode, err := spec.CheckDockerVolume(v)
		if err != nil {
			return nil, fmt.Errorf("backend.docker.volumes[%d]: %v: %w", i, err, spec.ErrInvalid)
		}
		m := mount.Mount{Type: mount.TypeVolume, Source: src, Target: dst, ReadOnly: mode == "ro"}
		if strings.HasPrefix(src, "/") {
			m.Type = mount.TypeBind
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	netw := e.d.EffectiveNetwork()
	switch netw {
	case spec.DockerNetworkHost:
		hc.NetworkMode = "host"
	default:
		hc.NetworkMode = container.NetworkMode(netw)
		p := nat.Port(strconv.Itoa(port) + "/tcp")
		cfg.ExposedPorts = nat.PortSet{p: {}}
		// HostPort empty: the engine picks a free host port
		hc.PortBindings = nat.PortMap{p: {{HostIP: h.EffectivePublishIP()}}}
	}
	return &createSpec{name: id, image: img, config: cfg, host: hc, net: &network.NetworkingConfig{}}, nil
}

// ctr is one observed container of an app.
type ctr struct {
	ID, Name   string
	Host       string // engine name
	Key        slotKey
	InstanceID string
	Image      string
	State      string // created running restarting exited paused dead removing
	ExitCode   int
	Error      string // the engine's error starting it (OCI runtime messages)
	OOMKilled  bool
	Restarts   int       // the engine's restart count
	Created    time.Time // when the container was created
	StartedAt  time.Time
	Health     string // "", starting, healthy, unhealthy (the image's HEALTHCHECK)
	HealthLog  string // output of the last failed HEALTHCHECK run
	Addr       string // where the app is reached (host:port), "" before it has one
	Labels     map[string]string
}

// parseLabels reads the slot a container claims; ok is false for
// containers that are not graylane's.
func parseLabels(app string, labels map[string]string) (slotKey, bool) {
	if labels[LabelApp] != app || labels[LabelManagedBy] != ManagedBy {
		return slotKey{}, false
	}
	n, err := strconv.Atoi(labels[LabelSlot])
	v := labels[LabelVersion]
	if err != nil || n < 0 || spec.CheckVersion(v) != nil {
		return slotKey{}, false
	}
	return slotKey{v, n}, true
}

// fromInspect builds a ctr from an inspected container on host h.
func fromInspect(app string, h spec.DockerHost, in container.InspectResponse) (ctr, bool) {
	if in.ContainerJSONBase == nil || in.Config == nil || in.State == nil {
		return ctr{}, false
	}
	k, ok := parseLabels(app, in.Config.Labels)
	if !ok {
		return ctr{}, false
	}
	c := ctr{
		ID: in.ID, Name: strings.TrimPrefix(in.Name, "/"), Host: h.HostName(), Key: k,
		InstanceID: in.Config.Labels[LabelInstance], Image: in.Config.Image,
		State: string(in.State.Status), ExitCode: in.State.ExitCode, Error: in.State.Error,
		OOMKilled: in.State.OOMKilled, Restarts: in.RestartCount, Labels: in.Config.Labels,
	}
	if c.InstanceID == "" {
		c.InstanceID = instanceID(app, k)
	}
	c.Created, _ = time.Parse(time.RFC3339Nano, in.Created)
	c.StartedAt, _ = time.Parse(time.RFC3339Nano, in.State.StartedAt)
	if hl := in.State.Health; hl != nil {
		c.Health = string(hl.Status)
		if n := len(hl.Log); n > 0 && hl.Log[n-1].ExitCode != 0 {
			c.HealthLog = strings.TrimSpace(hl.Log[n-1].Output)
		}
	}
	port, _ := strconv.Atoi(in.Config.Labels[LabelPort])
	if in.HostConfig != nil && in.HostConfig.NetworkMode.IsHost() {
		if port > 0 {
			c.Addr = net.JoinHostPort(h.EffectiveAddress(), strconv.Itoa(port))
		}
	} else if in.NetworkSettings != nil && port > 0 {
		for _, b := range in.NetworkSettings.Ports[nat.Port(strconv.Itoa(port)+"/tcp")] {
			if b.HostPort != "" {
				c.Addr = net.JoinHostPort(h.EffectiveAddress(), b.HostPort)
				break
			}
		}
	}
	return c, true
}
