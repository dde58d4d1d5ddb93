package docker

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/graylane/graylane/spec"
)

// composeCache keeps loaded compose projects while their file is
// unchanged: Apply resolves the release on every engine pass.
type composeCache struct {
	workDir string

	mu      sync.Mutex
	entries map[string]composeEntry
}

type composeEntry struct {
	stamp   string
	project *types.Project
}

// load returns the compose project of c, loaded with the Compose
// specification's own library (interpolation from graylane's environment
// and the .env beside the file, as docker compose does).
func (cc *composeCache) load(c *spec.DockerCompose) (*types.Project, error) {
	file := c.File
	if !filepath.IsAbs(file) {
		file = filepath.Join(cc.workDir, file)
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("backend.docker.compose.file: %w", err)
	}
	stamp := fmt.Sprintf("%d|%d|%s", st.Size(), st.ModTime().UnixNano(), c.Project)
	if env, err := os.Stat(filepath.Join(filepath.Dir(file), ".env")); err == nil {
		stamp += fmt.Sprintf("|%d|%d", env.Size(), env.ModTime().UnixNano())
	}
	cc.mu.Lock()
	if e, ok := cc.entries[file]; ok && e.stamp == stamp {
		cc.mu.Unlock()
		return e.project, nil
	}
	cc.mu.Unlock()
	opts := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithOsEnv, // graylane's environment wins over .env, as the shell's does for docker compose
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithResolvedPaths(true),
	}
	if c.Project != "" {
		opts = append(opts, cli.WithName(c.Project))
	}
	po, err := cli.NewProjectOptions([]string{file}, opts...)
	if err != nil {
		return nil, fmt.Errorf("backend.docker.compose.file %s: %w", c.File, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := po.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("backend.docker.compose.file %s: %w", c.File, err)
	}
	cc.mu.Lock()
	cc.entries[file] = composeEntry{stamp: stamp, project: p}
	cc.mu.Unlock()
	return p, nil
}

// applyCompose fills e from the compose service c names: image (with its
// tag replaced by the version), environment, first published or exposed
// port, volumes, healthcheck, resources, command, entrypoint, user,
// working directory, network, stop grace period and labels, each only
// where the spec leaves the field empty. Containers also get the compose
// project and service labels.
func (e *effective) applyCompose(c *spec.DockerCompose, cc *composeCache) error {
	p, err := cc.load(c)
	if err != nil {
		return fmt.Errorf("%v: %w", err, spec.ErrInvalid)
	}
	svc, err := p.GetService(c.Service)
	if err != nil {
		return fmt.Errorf("backend.docker.compose.service: %q is not a service of %s (services: %s): %w",
			c.Service, c.File, strings.Join(p.ServiceNames(), ", "), spec.ErrInvalid)
	}
	e.composeRel = p.Name + "/" + svc.Name
	if e.d.Image == "" && svc.Image != "" {
		named, err := reference.ParseNormalizedNamed(svc.Image)
		if err != nil {
			return fmt.Errorf("backend.docker.compose: service %s: image %q: %v: %w", svc.Name, svc.Image, err, spec.ErrInvalid)
		}
		e.d.Image = reference.FamiliarString(reference.TrimNamed(named)) + ":{{.Version}}"
	}
	if e.d.Port == 0 {
		for _, pc := range svc.Ports {
			if pc.Target > 0 && (pc.Protocol == "" || pc.Protocol == "tcp") {
				e.d.Port = int(pc.Target)
				break
			}
		}
	}
	if e.d.Port == 0 {
		for _, x := range svc.Expose {
			var n int
			if _, err := fmt.Sscanf(strings.TrimSuffix(x, "/tcp"), "%d", &n); err == nil && n > 0 {
				e.d.Port = n
				break
			}
		}
	}
	e.literalEnv = map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			e.literalEnv[k] = *v
		}
	}
	e.literalEntrypoint = slices.Clone([]string(svc.Entrypoint))
	e.literalCommand = slices.Clone([]string(svc.Command))
	for _, v := range svc.Volumes {
		m := mount.Mount{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeBind:
			m.Type = mount.TypeBind
		case types.VolumeTypeVolume:
			m.Type = mount.TypeVolume
			if vc, ok := p.Volumes[v.Source]; ok && vc.Name != "" {
				m.Source = vc.Name // {project}_{name}, or the external name
			}
		case types.VolumeTypeTmpfs:
			m.Type = mount.TypeTmpfs
		default:
			return fmt.Errorf("backend.docker.compose: service %s: volume %s of type %q is not supported: %w", svc.Name, v.Target, v.Type, spec.ErrInvalid)
		}
		e.mounts = append(e.mounts, m)
	}
	if hc := svc.HealthCheck; hc != nil {
		h := &container.HealthConfig{Test: []string(hc.Test)}
		if hc.Disable {
			h.Test = []string{"NONE"}
		}
		if hc.Interval != nil {
			h.Interval = time.Duration(*hc.Interval)
		}
		if hc.Timeout != nil {
			h.Timeout = time.Duration(*hc.Timeout)
		}
		if hc.StartPeriod != nil {
			h.StartPeriod = time.Duration(*hc.StartPeriod)
		}
		if hc.Retries != nil {
			h.Retries = int(*hc.Retries)
		}
		e.health = h
	}
	if e.d.Resources == nil {
		var cpus float64
		var mem int64
		if svc.Deploy != nil && svc.Deploy.Resources.Limits != nil {
			cpus = float64(svc.Deploy.Resources.Limits.NanoCPUs)
			mem = int64(svc.Deploy.Resources.Limits.MemoryBytes)
		}
		if cpus == 0 {
			cpus = float64(svc.CPUS)
		}
		if mem == 0 {
			mem = int64(svc.MemLimit)
		}
		e.nanoCPUs, e.memory = int64(cpus*1e9), mem
	}
	e.user, e.workingDir = svc.User, svc.WorkingDir
	if e.d.StopGracePeriod == nil && svc.StopGracePeriod != nil {
		e.d.StopGracePeriod = spec.D(time.Duration(*svc.StopGracePeriod))
	}
	if e.d.Network == "" {
		switch {
		case svc.NetworkMode == "host":
			e.d.Network = spec.DockerNetworkHost
		case svc.NetworkMode != "":
			e.d.Network = svc.NetworkMode
		default:
			names := slices.Sorted(maps.Keys(svc.Networks))
			sort.SliceStable(names, func(i, j int) bool {
				pi, pj := 0, 0
				if n := svc.Networks[names[i]]; n != nil {
					pi = n.Priority
				}
				if n := svc.Networks[names[j]]; n != nil {
					pj = n.Priority
				}
				return pi > pj
			})
			if len(names) > 0 {
				if nc, ok := p.Networks[names[0]]; ok && nc.Name != "" {
					e.d.Network = nc.Name
				}
			}
		}
	}
	for k, v := range svc.Labels {
		if !strings.HasPrefix(k, spec.DockerReservedLabelPrefix) && !strings.HasPrefix(k, spec.DockerComposeLabelPrefix) {
			e.labels[k] = v
		}
	}
	e.labels[LabelComposeProject] = p.Name
	e.labels[LabelComposeService] = svc.Name
	e.labels[LabelComposeOneoff] = "False"
	e.labels[LabelComposeNumber] = "1"
	e.labels[LabelComposeWorkingDir] = p.WorkingDir
	e.labels[LabelComposeFiles] = strings.Join(p.ComposeFiles, ",")
	return nil
}
