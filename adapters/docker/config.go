package docker

import (
	"context"
	"log/slog"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
)

// Defaults of Config.
const (
	DefaultDrainDelay       = time.Second
	DefaultFailureThreshold = 3
	DefaultStallAfter       = 3
	DefaultRestartDelay     = 500 * time.Millisecond
	DefaultMaxRestartDelay  = 30 * time.Second
	DefaultCallTimeout      = 30 * time.Second
	DefaultPullTimeout      = 10 * time.Minute
)

// Config configures a Backend.
type Config struct {
	// DefaultHost is the engine of releases whose backend.docker.hosts is
	// empty (default unix:///var/run/docker.sock).
	DefaultHost spec.DockerHost
	// Logger receives the backend's logs (nil discards them).
	Logger *slog.Logger
	// Releases, if set, looks up an app's release in force. The backend
	// uses it to find an app's engines (and so its running containers)
	// before the app's first Apply after graylane restarted.
	Releases func(ctx context.Context, app string) (*spec.Release, error)
	// WorkDir resolves relative compose file paths (default: graylane's
	// working directory).
	WorkDir string
	// Drainer, if set, takes an instance out of the built-in proxy and
	// waits for its in-flight requests before the container is stopped
	// (graylane wires the proxy's Router here; it returns at once for apps
	// it does not route). The instance is reported unready first.
	Drainer adapters.Drainer
	// DrainDelay is a further wait after that, for routers that only learn
	// from Observe (nginx reloads on the backend's notification) to drop
	// the instance before it gets SIGTERM (default 1s).
	DrainDelay time.Duration
	// FailureThreshold is the number of consecutive failed graylane health
	// probes that make a ready instance unready (default 3). One passing
	// probe makes an instance ready.
	FailureThreshold int
	// StallAfter is the number of failures in a row (container exits and
	// restarts before it was ever ready, failed creates or starts) after
	// which the backend reports a slot stalled (adapters.MetaStalled) with
	// the engine's message, so the planner fails the step at once instead
	// of waiting for the progress deadline (default 3).
	StallAfter int
	// RestartDelay is the back-off before graylane retries a failed create
	// or start; it doubles with each failure up to MaxRestartDelay
	// (defaults 500ms and 30s). Crashed containers are restarted by the
	// engine's restart policy (unless-stopped).
	RestartDelay    time.Duration
	MaxRestartDelay time.Duration
	// CallTimeout bounds each engine call but pulls (default 30s);
	// PullTimeout bounds an image pull (default 10m).
	CallTimeout time.Duration
	PullTimeout time.Duration
	// SSH configures ssh:// engines (without it they are refused with
	// adapters.ErrUnsupported).
	SSH *SSHConfig
}

func (c *Config) defaults() {
	if c.DefaultHost.URL == "" {
		c.DefaultHost = spec.DockerHost{URL: spec.DockerDefaultHost}
	}
	c.Logger = logx.OrDiscard(c.Logger)
	if c.DrainDelay <= 0 {
		c.DrainDelay = DefaultDrainDelay
	}
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.StallAfter <= 0 {
		c.StallAfter = DefaultStallAfter
	}
	if c.RestartDelay <= 0 {
		c.RestartDelay = DefaultRestartDelay
	}
	if c.MaxRestartDelay < c.RestartDelay {
		c.MaxRestartDelay = max(DefaultMaxRestartDelay, c.RestartDelay)
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.PullTimeout <= 0 {
		c.PullTimeout = DefaultPullTimeout
	}
}

// backoff is the delay before the n-th consecutive retry.
func (c *Config) backoff(n int) time.Duration {
	d := c.RestartDelay
	for i := 1; i < n && d < c.MaxRestartDelay; i++ {
		d *= 2
	}
	return min(d, c.MaxRestartDelay)
}
