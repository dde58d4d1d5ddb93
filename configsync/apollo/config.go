package apollo

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/graylane/graylane/configsync/apollo/openapi"
)

// Defaults for Config fields left zero.
const (
	// DefaultAppID is the Apollo app holding graylane's release namespace.
	DefaultAppID = "graylane"
	// DefaultCluster is Apollo's default cluster.
	DefaultCluster = "default"
	// DefaultNamespace is the properties namespace with one item per app.
	DefaultNamespace = "graylane-releases"
	// DefaultEnv is the portal environment the Writer writes to.
	DefaultEnv = openapi.DefaultEnv
	// DefaultOperator is the Apollo user named by the Writer's writes.
	DefaultOperator = openapi.DefaultOperator
	// DefaultRequestTimeout bounds one request to the config service or the
	// portal.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultProbeInterval is how often the config service is checked to
	// notice an outage (agollo itself never reports one).
	DefaultProbeInterval = 3 * time.Second
	// DefaultStartupGrace is how long a start with a stale cache waits for
	// agollo's first sync before serving the cache (and saying so).
	DefaultStartupGrace = 5 * time.Second
	// MaxValueLength is Apollo's default item value limit
	// (item.value.length.limit), in UTF-16 code units.
	MaxValueLength = 20000
)

// Config configures a Source. Meta or ConfigService is required; Portal and
// Token make it writable.
type Config struct {
	// Meta is Apollo's meta server URL (e.g. http://apollo-meta:8080). The
	// config service embeds one, so its URL works too.
	Meta string
	// ConfigService, if set, is used directly instead of asking Meta for
	// the config services (Apollo's apollo.config-service): for config
	// services whose registered address graylane cannot reach.
	ConfigService string
	// AppID, Cluster and Namespace locate the release namespace
	// (DefaultAppID, DefaultCluster, DefaultNamespace). Namespace must be a
	// properties namespace: one item per app.
	AppID     string
	Cluster   string
	Namespace string
	// Secret is the app's access-key secret, if it has one (requests to the
	// config service are then signed).
	Secret string
	// Label is the client label graylane presents, for gray rules that
	// select clients by label.
	Label string

	// Portal is the portal URL for the Open API (e.g.
	// http://apollo-portal:8070). Empty: the Source is read-only (Put and
	// Delete return configsync.ErrUnsupported).
	Portal string
	// Env is the portal environment (DefaultEnv).
	Env string
	// Token is the Open API consumer token; it needs modify and release
	// permission on the namespace (an app grant for gray branches).
	Token string
	// Operator is the Apollo user named as the author of writes and
	// releases (DefaultOperator); it must exist in the portal.
	Operator string

	// CacheDir holds the last-known-good cache, so graylane starts with
	// Apollo down. Empty disables the cache.
	CacheDir string

	// RequestTimeout bounds one request (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// ProbeInterval is how often the config service is checked
	// (DefaultProbeInterval).
	ProbeInterval time.Duration
	// StartupGrace is how long a start that found a cache which Apollo does
	// not confirm waits for agollo's first sync before serving the cache
	// (DefaultStartupGrace).
	StartupGrace time.Duration
	// TLS configures HTTPS to the config service, meta server and portal
	// (the CA to trust, a client certificate); nil uses the system roots.
	// It covers graylane's own requests: probes, read-backs and every Open
	// API write. agollo, which watches the release namespace, verifies no
	// certificate over https (it sets InsecureSkipVerify itself), so a
	// tampered answer there is caught only by graylane's read-backs.
	TLS *tls.Config
	// Logger defaults to discarding (logx.OrDiscard).
	Logger *slog.Logger
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Meta == "" && c.ConfigService == "" {
		return c, errors.New("apollo: a meta server or config service URL is required")
	}
	for name, u := range map[string]*string{"meta server": &c.Meta, "config service": &c.ConfigService, "portal": &c.Portal} {
		if *u == "" {
			continue
		}
		p, err := url.Parse(*u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return c, fmt.Errorf("apollo: %s URL %q is not an http(s) URL", name, *u)
		}
		if !strings.HasSuffix(p.Path, "/") {
			p.Path += "/"
		}
		*u = p.String()
	}
	if c.AppID == "" {
		c.AppID = DefaultAppID
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	ns := strings.ToLower(c.Namespace)
	for _, suffix := range []string{".yaml", ".yml", ".json", ".xml", ".txt"} {
		if strings.HasSuffix(ns, suffix) {
			return c, fmt.Errorf("apollo: namespace %q is a %s namespace; graylane needs a properties namespace with one item per app (agollo would flatten a %s document)", c.Namespace, suffix[1:], suffix[1:])
		}
	}
	if c.Env == "" {
		c.Env = DefaultEnv
	}
	if c.Operator == "" {
		c.Operator = DefaultOperator
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.StartupGrace <= 0 {
		c.StartupGrace = DefaultStartupGrace
	}
	if c.Portal != "" && c.Token == "" {
		return c, fmt.Errorf("apollo: portal %s is set but no Open API token: writes need one", c.Portal)
	}
	return c, nil
}

// configServiceURL is what agollo is given (its "IP"): the config service
// if set, else the meta server (agollo asks it for the config services).
func (c Config) configServiceURL() string {
	if c.ConfigService != "" {
		return c.ConfigService
	}
	return c.Meta
}
