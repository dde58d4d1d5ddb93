package spec

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults of the ssh backend.
const (
	DefaultSSHPort           = 22
	DefaultSSHKeepReleases   = 20
	DefaultSSHCommandTimeout = time.Minute
	DefaultSSHHealthTimeout  = time.Minute
	DefaultSSHCanaryTag      = "canary"
)

var (
	sshUserPattern = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
	// SSHPathPattern is what a remote path (root, linked file) may contain.
	// Paths are always quoted when they reach a shell; the pattern keeps
	// them readable and free of surprises (no spaces, quotes, '$', '*').
	SSHPathPattern = regexp.MustCompile(`^[A-Za-z0-9._/+@=-]+$`)
	sshTagPattern  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)
)

// SSHBackend deploys to a fixed set of hosts over SSH. On each host a version
// lives in {root}/releases/{version}/ and {root}/current is a symlink to the
// version in force, switched atomically (a new link renamed over the old).
type SSHBackend struct {
	// User is the remote login user.
	User string `json:"user"`
	// Port is the default SSH port of the hosts (default 22).
	Port int `json:"port,omitempty"`
	// Root is the absolute directory holding releases/, shared/ and current
	// on every host (a host may override it).
	Root string `json:"root,omitempty"`
	// Artifact is the local path (on graylane's machine) of a version's
	// build: a directory, or a .tar, .tar.gz or .tgz file. It is a template
	// with {{.App}} and {{.Version}}, e.g. /srv/artifacts/demo/{{.Version}}.tgz.
	Artifact string `json:"artifact"`
	// AppPort is the port the app serves on each host (used for health
	// checks and by traffic routers) unless a host sets appAddr.
	AppPort int `json:"appPort,omitempty"`
	// Hosts are the machines, in rollout order (canary-tagged ones first).
	Hosts []SSHHost `json:"hosts"`
	// Restart is the argv run on a host after current was switched (e.g.
	// ["sudo", "systemctl", "restart", "demo"]). Each element is a template
	// over SSHTemplateData and is quoted for the remote shell, so no element
	// is ever interpreted by it; write ["sh", "-c", "..."] to opt into one.
	// It must not return before the previous process stopped serving.
	Restart []string `json:"restart"`
	// Stop is the argv run on a host that no version wants any more
	// (optional; without it the process is left to the next restart).
	Stop []string `json:"stop,omitempty"`
	// Hooks run on each host around its switch.
	Hooks *SSHHooks `json:"hooks,omitempty"`
	// LinkedFiles are paths relative to a release that are symlinked to
	// {root}/shared/{path} (per-host config the host keeps, e.g. ".env").
	LinkedFiles []string `json:"linkedFiles,omitempty"`
	// KeepReleases is how many release directories each host keeps (the
	// most recently deployed or switched to; default 20, at least 2 so the
	// previous version is always there for a rollback).
	KeepReleases *int `json:"keepReleases,omitempty"`
	// CanaryTags mark the hosts that move first: a release moves every
	// tagged host and sees it healthy before any other (default [canary]).
	CanaryTags []string `json:"canaryTags,omitempty"`
	// CommandTimeout bounds each remote command (default 1m).
	CommandTimeout *Duration `json:"commandTimeout,omitempty"`
	// HealthTimeout bounds the wait for a restarted host to pass
	// health.path (default 1m).
	HealthTimeout *Duration `json:"healthTimeout,omitempty"`
}

// SSHHost is one machine of the ssh backend.
type SSHHost struct {
	// Address is the SSH address: host or host:port.
	Address string `json:"address"`
	// Name identifies the host in instance IDs and logs (default: Address).
	Name string `json:"name,omitempty"`
	// Tags classify the host, e.g. [canary] or [pre-production].
	Tags []string `json:"tags,omitempty"`
	// AppAddr is where the app serves on this host (default: Address's
	// host with the backend's appPort).
	AppAddr string `json:"appAddr,omitempty"`
	// Root overrides the backend's root on this host.
	Root string `json:"root,omitempty"`
	// ConfigDir is a local directory copied over each release on this host
	// (per-host config shipped by graylane, e.g. config/host.yaml).
	ConfigDir string `json:"configDir,omitempty"`
}

// SSHHooks are commands (argv templates, like Restart) run on each host.
type SSHHooks struct {
	// Before runs in the new release directory after the upload and before
	// current is switched; a failure leaves the host untouched.
	Before []string `json:"before,omitempty"`
	// After runs in the new release directory once the host passed its
	// health check; a failure stops the rollout.
	After []string `json:"after,omitempty"`
}

// SSHTemplateData is what the ssh backend's Restart, Stop and hook templates
// see. Artifact templates see only App and Version.
type SSHTemplateData struct {
	App, Version string
	// Host is the host's name; AppAddr where its app serves.
	Host, AppAddr string
	// Root is the host's root; ReleaseDir is {Root}/releases/{Version}.
	Root, ReleaseDir string
}

// RenderSSH executes one ssh backend template.
func RenderSSH(s string, data SSHTemplateData) (string, error) { return renderTemplate(s, data) }

// HostRoot returns the host's root directory.
func (b *SSHBackend) HostRoot(h SSHHost) string {
	if h.Root != "" {
		return h.Root
	}
	return b.Root
}

// HostName returns the host's name.
func (h SSHHost) HostName() string {
	if h.Name != "" {
		return h.Name
	}
	return h.Address
}

// SSHAddr returns host:port for dialling.
func (b *SSHBackend) SSHAddr(h SSHHost) string {
	if _, _, err := net.SplitHostPort(h.Address); err == nil {
		return h.Address
	}
	port := b.Port
	if port == 0 {
		port = DefaultSSHPort
	}
	return net.JoinHostPort(strings.Trim(h.Address, "[]"), strconv.Itoa(port))
}

// HostAppAddr returns where the host's app serves, or "" if unknown.
func (b *SSHBackend) HostAppAddr(h SSHHost) string {
	if h.AppAddr != "" {
		return h.AppAddr
	}
	if b.AppPort == 0 {
		return ""
	}
	host := h.Address
	if hh, _, err := net.SplitHostPort(h.Address); err == nil {
		host = hh
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(b.AppPort))
}

// IsCanary reports whether the host carries one of the canary tags.
func (b *SSHBackend) IsCanary(h SSHHost) bool {
	tags := b.CanaryTags
	if len(tags) == 0 {
		tags = []string{DefaultSSHCanaryTag}
	}
	for _, t := range h.Tags {
		for _, c := range tags {
			if t == c {
				return true
			}
		}
	}
	return false
}

// EffectiveKeepReleases returns KeepReleases with its default.
func (b *SSHBackend) EffectiveKeepReleases() int {
	if b.KeepReleases == nil {
		return DefaultSSHKeepReleases
	}
	return *b.KeepReleases
}

// EffectiveCommandTimeout returns CommandTimeout with its default.
func (b *SSHBackend) EffectiveCommandTimeout() time.Duration {
	if b.CommandTimeout == nil {
		return DefaultSSHCommandTimeout
	}
	return b.CommandTimeout.Duration
}

// EffectiveHealthTimeout returns HealthTimeout with its default.
func (b *SSHBackend) EffectiveHealthTimeout() time.Duration {
	if b.HealthTimeout == nil {
		return DefaultSSHHealthTimeout
	}
	return b.HealthTimeout.Duration
}

// checkRemotePath validates an absolute remote directory.
func checkRemotePath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must be an absolute path", p)
	case !SSHPathPattern.MatchString(p):
		return fmt.Errorf("%q may contain only A-Z a-z 0-9 . _ / + @ = -", p)
	case path.Clean(p) != p:
		return fmt.Errorf("%q is not clean (want %q)", p, path.Clean(p))
	case p == "/":
		return fmt.Errorf("must not be /")
	}
	return nil
}

func checkSSHAddress(a string) error {
	host := a
	if h, port, err := net.SplitHostPort(a); err == nil {
		host = h
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%q has no valid port", a)
		}
	} else if strings.Contains(a, ":") && net.ParseIP(a) == nil {
		return fmt.Errorf("%q is not host or host:port", a)
	}
	if net.ParseIP(strings.Trim(host, "[]")) == nil && !addrHostPattern.MatchString(host) {
		return fmt.Errorf("%q is not an IP address or host name", host)
	}
	return nil
}

func (b *SSHBackend) validate(p string, e *errs) {
	if b.User == "" {
		e.add(join(p, "user"), "is required")
	} else if !sshUserPattern.MatchString(b.User) {
		e.add(join(p, "user"), "%q is not a user name", b.User)
	}
	if b.Port < 0 || b.Port > 65535 {
		e.add(join(p, "port"), "%d is outside 1..65535", b.Port)
	}
	if b.AppPort < 0 || b.AppPort > 65535 {
		e.add(join(p, "appPort"), "%d is outside 1..65535", b.AppPort)
	}
	if b.Root != "" {
		if err := checkRemotePath(b.Root); err != nil {
			e.add(join(p, "root"), "%v", err)
		}
	}
	if b.Artifact == "" {
		e.add(join(p, "artifact"), "is required")
	} else if _, err := Render(b.Artifact, TemplateData{App: "app", Version: "v1"}); err != nil {
		e.add(join(p, "artifact"), "%v", err)
	}
	probe := SSHTemplateData{App: "app", Version: "v1", Host: "h", AppAddr: "127.0.0.1:1", Root: "/srv/app", ReleaseDir: "/srv/app/releases/v1"}
	checkArgv := func(field string, argv []string, required bool) {
		if len(argv) == 0 {
			if required {
				e.add(field, "is required")
			}
			return
		}
		for i, a := range argv {
			if strings.ContainsRune(a, 0) {
				e.add(index(field, i), "contains a NUL byte")
			} else if _, err := RenderSSH(a, probe); err != nil {
				e.add(index(field, i), "%v", err)
			}
		}
	}
	checkArgv(join(p, "restart"), b.Restart, true)
	checkArgv(join(p, "stop"), b.Stop, false)
	if b.Hooks != nil {
		checkArgv(join(join(p, "hooks"), "before"), b.Hooks.Before, false)
		checkArgv(join(join(p, "hooks"), "after"), b.Hooks.After, false)
	}
	for i, f := range b.LinkedFiles {
		fp := index(join(p, "linkedFiles"), i)
		switch {
		case f == "" || strings.HasPrefix(f, "/"):
			e.add(fp, "%q must be a relative path", f)
		case !SSHPathPattern.MatchString(f):
			e.add(fp, "%q may contain only A-Z a-z 0-9 . _ / + @ = -", f)
		case path.Clean(f) != f || f == "." || strings.HasPrefix(f, "../") || f == "..":
			e.add(fp, "%q must be a clean path inside the release", f)
		case strings.HasPrefix(f, ".graylane"):
			e.add(fp, "%q is reserved for graylane", f)
		}
	}
	if b.KeepReleases != nil && (*b.KeepReleases < 2 || *b.KeepReleases > 1000) {
		e.add(join(p, "keepReleases"), "%d is outside 2..1000 (the previous release must stay for a rollback)", *b.KeepReleases)
	}
	for i, t := range b.CanaryTags {
		if !sshTagPattern.MatchString(t) {
			e.add(index(join(p, "canaryTags"), i), "%q is not a tag (A-Z a-z 0-9 . _ -, at most 63)", t)
		}
	}
	if b.CommandTimeout != nil && b.CommandTimeout.Duration <= 0 {
		e.add(join(p, "commandTimeout"), "must be positive")
	}
	if b.HealthTimeout != nil && b.HealthTimeout.Duration <= 0 {
		e.add(join(p, "healthTimeout"), "must be positive")
	}
	if len(b.Hosts) == 0 {
		e.add(join(p, "hosts"), "needs at least one host")
	}
	names := map[string]int{}
	dial := map[string]int{}
	for i, h := range b.Hosts {
		hp := index(join(p, "hosts"), i)
		if h.Address == "" {
			e.add(join(hp, "address"), "is required")
		} else if err := checkSSHAddress(h.Address); err != nil {
			e.add(join(hp, "address"), "%v", err)
		} else {
			if j, ok := dial[b.SSHAddr(h)+"|"+b.HostRoot(h)]; ok {
				e.add(join(hp, "address"), "%q with root %q duplicates hosts[%d]", h.Address, b.HostRoot(h), j)
			}
			dial[b.SSHAddr(h)+"|"+b.HostRoot(h)] = i
		}
		if h.Name != "" && !sshTagPattern.MatchString(h.Name) {
			e.add(join(hp, "name"), "%q is not a host name (A-Z a-z 0-9 . _ -, at most 63)", h.Name)
		}
		if j, ok := names[h.HostName()]; ok && h.HostName() != "" {
			e.add(join(hp, "name"), "%q duplicates hosts[%d]", h.HostName(), j)
		}
		names[h.HostName()] = i
		for k, t := range h.Tags {
			if !sshTagPattern.MatchString(t) {
				e.add(index(join(hp, "tags"), k), "%q is not a tag (A-Z a-z 0-9 . _ -, at most 63)", t)
			}
		}
		if h.AppAddr != "" {
			if _, port, err := net.SplitHostPort(h.AppAddr); err != nil {
				e.add(join(hp, "appAddr"), "%q is not host:port", h.AppAddr)
			} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
				e.add(join(hp, "appAddr"), "%q has no valid port", h.AppAddr)
			}
		} else if b.AppPort == 0 {
			e.add(join(hp, "appAddr"), "is required when backend.ssh.appPort is not set")
		}
		if h.Root != "" {
			if err := checkRemotePath(h.Root); err != nil {
				e.add(join(hp, "root"), "%v", err)
			}
		} else if b.Root == "" {
			e.add(join(hp, "root"), "is required when backend.ssh.root is not set")
		}
		if h.ConfigDir != "" && !strings.HasPrefix(h.ConfigDir, "/") {
			e.add(join(hp, "configDir"), "%q must be an absolute local path", h.ConfigDir)
		}
	}
}
