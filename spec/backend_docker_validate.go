package spec

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

var (
	// dockerEnvKey is what an environment variable name may look like.
	dockerEnvKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// dockerNamePattern is what docker accepts as a network or volume name.
	dockerNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	// dockerLabelKey is a label key: reverse-DNS style, no spaces or '='.
	dockerLabelKey = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,254}[A-Za-z0-9])?$`)
	// dockerMemory is a byte count with an optional unit.
	dockerMemory = regexp.MustCompile(`^([0-9]+)(b|k|m|g|t|Ki|Mi|Gi|Ti|K|M|G|T|kb|mb|gb|KB|MB|GB)?$`)
	// composeServicePattern is what docker compose accepts as a service
	// name; composeProjectPattern as a project name.
	composeServicePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	composeProjectPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,127}$`)
)

// ParseDockerMemory returns a memory size in bytes: a number with an
// optional unit, binary (Ki Mi Gi Ti, and docker's k m g t) or decimal
// (K M G T, kb mb gb).
func ParseDockerMemory(s string) (int64, error) {
	m := dockerMemory.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a memory size (e.g. 256Mi, 1Gi, 512m)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	mult := map[string]int64{
		"": 1, "b": 1,
		"k": 1 << 10, "Ki": 1 << 10, "m": 1 << 20, "Mi": 1 << 20, "g": 1 << 30, "Gi": 1 << 30, "t": 1 << 40, "Ti": 1 << 40,
		"K": 1e3, "kb": 1e3, "KB": 1e3, "M": 1e6, "mb": 1e6, "MB": 1e6, "G": 1e9, "gb": 1e9, "GB": 1e9, "T": 1e12,
	}[m[2]]
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	v := n * mult
	if v < 6<<20 {
		return 0, fmt.Errorf("%q is below the engine's 6MiB minimum", s)
	}
	return v, nil
}

// CheckDockerImage validates a rendered image reference (name[:tag][@digest]).
func CheckDockerImage(img string) error {
	if img == "" {
		return fmt.Errorf("is empty")
	}
	if strings.TrimSpace(img) != img || strings.ContainsAny(img, " \t\r\n\x00") {
		return fmt.Errorf("%q contains white space", img)
	}
	if _, err := reference.ParseNormalizedNamed(img); err != nil {
		return fmt.Errorf("%q is not an image reference: %v", img, err)
	}
	return nil
}

// CheckDockerVolume validates one volume entry and returns its parts.
func CheckDockerVolume(v string) (src, dst, mode string, err error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", "", fmt.Errorf("%q is not source:target[:ro|rw]", v)
	}
	src, dst = parts[0], parts[1]
	if len(parts) == 3 {
		mode = parts[2]
		if mode != "ro" && mode != "rw" {
			return "", "", "", fmt.Errorf("%q: mode %q is not ro or rw", v, mode)
		}
	}
	switch {
	case src == "":
		return "", "", "", fmt.Errorf("%q has no source", v)
	case strings.HasPrefix(src, "/"):
		if path.Clean(src) != src || strings.ContainsAny(src, "\x00\n") {
			return "", "", "", fmt.Errorf("%q: source %q is not a clean absolute path", v, src)
		}
	case !dockerNamePattern.MatchString(src):
		return "", "", "", fmt.Errorf("%q: source %q is neither an absolute path nor a volume name", v, src)
	}
	if !strings.HasPrefix(dst, "/") || path.Clean(dst) != dst || dst == "/" || strings.ContainsAny(dst, "\x00\n") {
		return "", "", "", fmt.Errorf("%q: target %q is not a clean absolute path other than /", v, dst)
	}
	return src, dst, mode, nil
}

// CheckDockerHostURL validates an engine URL.
func CheckDockerHostURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") || path.Clean(u.Path) != u.Path {
			return fmt.Errorf("%q is not unix:///absolute/path", s)
		}
	case "tcp":
		if u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("%q is not tcp://host:port", s)
		}
		if n, err := strconv.Atoi(u.Port()); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%q has no valid port", s)
		}
	case "ssh":
		if u.Hostname() == "" {
			return fmt.Errorf("%q is not ssh://[user@]host[:port][/path/to/docker.sock]", s)
		}
		if u.User != nil {
			if _, hasPw := u.User.Password(); hasPw {
				return fmt.Errorf("%q carries a password; use graylane's ssh key", redactURL(u))
			}
			if !sshUserPattern.MatchString(u.User.Username()) {
				return fmt.Errorf("%q: %q is not a user name", s, u.User.Username())
			}
		}
		if u.Path != "" && (path.Clean(u.Path) != u.Path || !SSHPathPattern.MatchString(u.Path)) {
			return fmt.Errorf("%q: socket path %q is not a clean absolute path", s, u.Path)
		}
	default:
		return fmt.Errorf("%q: scheme must be unix, tcp or ssh", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must have no query or fragment", s)
	}
	if net.ParseIP(u.Hostname()) == nil && u.Hostname() != "" && !addrHostPattern.MatchString(u.Hostname()) {
		return fmt.Errorf("%q: %q is not an IP address or host name", s, u.Hostname())
	}
	return nil
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = url.User(u.User.Username())
	return c.String()
}

// dockerProbe is the template data validation renders with.
func dockerProbe(port int) DockerTemplateData {
	return DockerTemplateData{App: "app", Version: "v1", InstanceID: "app-v1-0", Host: "local", Slot: 0, Port: port}
}

func (b *DockerBackend) validate(p string, e *errs) {
	if b.Image == "" && b.Compose == nil {
		e.add(join(p, "image"), "is required (or compose, to take it from a compose service)")
	}
	if b.Image != "" {
		if img, err := RenderKubernetes(b.Image, KubernetesTemplateData{App: "app", Version: "v1"}); err != nil {
			e.add(join(p, "image"), "%v", err)
		} else if err := CheckDockerImage(img); err != nil {
			e.add(join(p, "image"), "%v", err)
		}
	}
	switch b.Pull {
	case "", DockerPullNever, DockerPullMissing, DockerPullAlways:
	default:
		e.add(join(p, "pull"), "%q is not never, missing or always", b.Pull)
	}
	switch b.Healthcheck {
	case "", DockerHealthGraylane, DockerHealthImage:
	default:
		e.add(join(p, "healthcheck"), "%q is not graylane or image", b.Healthcheck)
	}
	switch b.Order {
	case "", DockerStartFirst, DockerStopFirst:
	default:
		e.add(join(p, "order"), "%q is not start-first or stop-first", b.Order)
	}
	// Templates must render, and with network host and no port they must
	// use {{.Port}} (rendering with two ports must differ).
	uses := false
	checkArgs := func(field string, argv []string) {
		for i, a := range argv {
			fp := index(join(p, field), i)
			if strings.ContainsRune(a, 0) {
				e.add(fp, "contains a NUL byte")
				continue
			}
			r1, err := RenderDocker(a, dockerProbe(1))
			if err != nil {
				e.add(fp, "%v", err)
				continue
			}
			if r2, _ := RenderDocker(a, dockerProbe(2)); r1 != r2 {
				uses = true
			}
		}
	}
	checkArgs("entrypoint", b.Entrypoint)
	checkArgs("command", b.Command)
	for _, k := range sortedKeys(b.Env) {
		v := b.Env[k]
		fp := join(join(p, "env"), k)
		if !dockerEnvKey.MatchString(k) {
			e.add(fp, "%q is not an environment variable name (A-Z a-z 0-9 _, not starting with a digit)", k)
			continue
		}
		if strings.ContainsRune(v, 0) {
			e.add(fp, "contains a NUL byte")
			continue
		}
		r1, err := RenderDocker(v, dockerProbe(1))
		if err != nil {
			e.add(fp, "%v", err)
			continue
		}
		if r2, _ := RenderDocker(v, dockerProbe(2)); r1 != r2 {
			uses = true
		}
	}
	network := b.EffectiveNetwork()
	if b.Network != "" && b.Network != DockerNetworkBridge && b.Network != DockerNetworkHost {
		if b.Network == "none" {
			e.add(join(p, "network"), "none leaves the app unreachable; use bridge, host or a named network")
		} else if !dockerNamePattern.MatchString(b.Network) {
			e.add(join(p, "network"), "%q is not bridge, host or a network name", b.Network)
		}
	}
	if b.Port < 0 || b.Port > 65535 {
		e.add(join(p, "port"), "%d is outside 1..65535", b.Port)
	} else if b.Port == 0 && b.Compose == nil {
		if network != DockerNetworkHost {
			e.add(join(p, "port"), "is required (the port the app serves on inside the container)")
		} else if !uses {
			e.add(join(p, "port"), "is required with network host unless command or env use {{.Port}} (graylane then picks a free port per instance)")
		}
	}
	for i, v := range b.Volumes {
		if _, _, _, err := CheckDockerVolume(v); err != nil {
			e.add(index(join(p, "volumes"), i), "%v", err)
		}
	}
	for _, k := range sortedKeys(b.Labels) {
		fp := join(join(p, "labels"), k)
		switch {
		case !dockerLabelKey.MatchString(k):
			e.add(fp, "%q is not a label key", k)
		case strings.HasPrefix(k, DockerReservedLabelPrefix) || strings.HasPrefix(k, DockerComposeLabelPrefix):
			e.add(fp, "%q is reserved for graylane", k)
		case strings.ContainsRune(b.Labels[k], 0):
			e.add(fp, "contains a NUL byte")
		}
	}
	if r := b.Resources; r != nil && r.Memory != "" {
		if _, err := ParseDockerMemory(r.Memory); err != nil {
			e.add(join(join(p, "resources"), "memory"), "%v", err)
		}
	}
	if b.StopGracePeriod != nil && b.StopGracePeriod.Duration < 0 {
		e.add(join(p, "stopGracePeriod"), "must not be negative")
	}
	names := map[string]int{}
	urls := map[string]int{}
	for i, h := range b.Hosts {
		hp := index(join(p, "hosts"), i)
		if h.URL == "" {
			e.add(join(hp, "url"), "is required")
			continue
		}
		if err := CheckDockerHostURL(h.URL); err != nil {
			e.add(hp, "%v", err)
			continue
		}
		if j, ok := urls[h.URL]; ok {
			e.add(hp, "%q duplicates hosts[%d]", h.URL, j)
		}
		urls[h.URL] = i
		if h.Name != "" && !sshTagPattern.MatchString(h.Name) {
			e.add(join(hp, "name"), "%q is not a host name (A-Z a-z 0-9 . _ -, at most 63)", h.Name)
		}
		if j, ok := names[h.HostName()]; ok {
			e.add(join(hp, "name"), "%q duplicates the name of hosts[%d] (set name)", h.HostName(), j)
		}
		names[h.HostName()] = i
		if h.TLSDir != "" {
			if !strings.HasPrefix(h.TLSDir, "/") || path.Clean(h.TLSDir) != h.TLSDir {
				e.add(join(hp, "tlsDir"), "%q is not a clean absolute path", h.TLSDir)
			} else if !strings.HasPrefix(h.URL, "tcp://") {
				e.add(join(hp, "tlsDir"), "applies to tcp:// engines only")
			}
		}
		if h.PublishIP != "" && net.ParseIP(h.PublishIP) == nil {
			e.add(join(hp, "publishIP"), "%q is not an IP address", h.PublishIP)
		}
		if h.Address != "" && net.ParseIP(h.Address) == nil && !addrHostPattern.MatchString(h.Address) {
			e.add(join(hp, "address"), "%q is not an IP address or host name", h.Address)
		}
	}
	if c := b.Compose; c != nil {
		cp := join(p, "compose")
		if c.File == "" {
			e.add(join(cp, "file"), "is required")
		} else if strings.ContainsAny(c.File, "\x00\n") || path.Clean(c.File) != c.File {
			e.add(join(cp, "file"), "%q is not a clean path", c.File)
		}
		if c.Service == "" {
			e.add(join(cp, "service"), "is required")
		} else if !composeServicePattern.MatchString(c.Service) {
			e.add(join(cp, "service"), "%q is not a compose service name", c.Service)
		}
		if c.Project != "" && !composeProjectPattern.MatchString(c.Project) {
			e.add(join(cp, "project"), "%q is not a compose project name (a-z 0-9 _ -, starting with a letter or digit)", c.Project)
		}
	}
}

// validateRelease checks what needs the release's app and version: the
// rendered image of the desired version, and the container names
// ({app}-{version}-{slot}) within docker's limits.
func (b *DockerBackend) validateRelease(p, app, version string, e *errs) {
	if b.Image == "" || CheckApp(app) != nil || CheckVersion(version) != nil {
		return
	}
	img, err := RenderKubernetes(b.Image, KubernetesTemplateData{App: app, Version: version})
	if err != nil {
		return // reported by validate
	}
	if err := CheckDockerImage(img); err != nil {
		e.add(join(p, "image"), "with version %s: %v", version, err)
	}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
