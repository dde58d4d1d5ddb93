package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/sdk/config"
	"github.com/graylane/graylane/spec"
)

// configFlags say where the demo loads its config from (sdk/config).
// Location flags take {app}, {file}, {base} and {ext} placeholders (Go
// template braces would be expanded by graylane's command templates).
type configFlags struct {
	app      string
	files    string
	interval time.Duration

	etcd, etcdKey string

	nacos, nacosNamespace, nacosGroup, nacosDataID string

	apollo, apolloApp, apolloCluster, apolloNamespace, apolloKey, apolloSecret string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.app, "app", "demo", "app name ({app} in config locations)")
	fs.StringVar(&c.files, "config-files", "", "comma-separated config files to load (enables config loading)")
	fs.DurationVar(&c.interval, "config-interval", 500*time.Millisecond, "how often config is re-read")
	fs.StringVar(&c.etcd, "config-etcd", "", "etcd endpoints to read config from (comma-separated)")
	fs.StringVar(&c.etcdKey, "config-etcd-key", "/config/{app}/{file}", "etcd key of each config file")
	fs.StringVar(&c.nacos, "config-nacos", "", "Nacos servers to read config from (host:port, comma-separated)")
	fs.StringVar(&c.nacosNamespace, "config-nacos-namespace", "", "Nacos namespace ID")
	fs.StringVar(&c.nacosGroup, "config-nacos-group", "DEFAULT_GROUP", "Nacos group")
	fs.StringVar(&c.nacosDataID, "config-nacos-dataid", "{app}-{file}", "Nacos dataId of each config file")
	fs.StringVar(&c.apollo, "config-apollo", "", "Apollo config service (or meta server) URL to read config from")
	fs.StringVar(&c.apolloApp, "config-apollo-app", "{app}", "Apollo appId")
	fs.StringVar(&c.apolloCluster, "config-apollo-cluster", "default", "Apollo cluster")
	fs.StringVar(&c.apolloNamespace, "config-apollo-namespace", "{file}", "Apollo namespace of each config file")
	fs.StringVar(&c.apolloKey, "config-apollo-key", "", "item holding the file in a properties namespace")
	fs.StringVar(&c.apolloSecret, "config-apollo-secret", "", "Apollo access-key secret")
}

// tmpl turns {app}-style placeholders into the release's target templates.
func tmpl(s string) string {
	return strings.NewReplacer("{app}", "{{.App}}", "{file}", "{{.File}}", "{base}", "{{.Base}}", "{ext}", "{{.Ext}}").Replace(s)
}

// loadConfig starts the config loader, or returns nil when no files are
// configured. The caller closes what it returns.
func loadConfig(ctx context.Context, c configFlags, identity string, logger *slog.Logger) (*config.Loader, func(), error) {
	if c.files == "" {
		return nil, func() {}, nil
	}
	var files []config.File
	for _, f := range strings.Split(c.files, ",") {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, config.File{Name: f})
		}
	}
	var sources []config.Source
	var closers []func()
	cleanup := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if c.etcd != "" {
		cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(c.etcd, ","), DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, cleanup, fmt.Errorf("etcd %s: %w", c.etcd, err)
		}
		closers = append(closers, func() { cli.Close() })
		sources = append(sources, config.Etcd(cli, tmpl(c.etcdKey)))
	}
	if c.nacos != "" {
		src, closeFn, err := nacosSource(ctx, c, logger)
		if err != nil {
			cleanup()
			return nil, func() {}, err
		}
		closers = append(closers, closeFn)
		sources = append(sources, src)
	}
	if c.apollo != "" {
		src, err := config.Apollo(config.ApolloConfig{ConfigService: c.apollo, Secret: c.apolloSecret},
			spec.ApolloConfigTarget{AppID: tmpl(c.apolloApp), Cluster: tmpl(c.apolloCluster), Namespace: tmpl(c.apolloNamespace), Key: tmpl(c.apolloKey)})
		if err != nil {
			cleanup()
			return nil, func() {}, err
		}
		sources = append(sources, src)
	}
	if len(sources) == 0 {
		cleanup()
		return nil, func() {}, fmt.Errorf("--config-files needs a source: --config-etcd, --config-nacos or --config-apollo")
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := config.New(lctx, config.Config{App: c.app, Identity: identity, Files: files, Sources: sources, Interval: c.interval, Logger: logger})
	if err != nil {
		cleanup()
		return nil, func() {}, err
	}
	closers = append(closers, l.Close)
	return l, cleanup, nil
}

// configRoutes adds the config endpoints: the report graylane probes and a
// human-readable view of what is loaded.
func configRoutes(mux *http.ServeMux, l *config.Loader) {
	if l == nil {
		return
	}
	mux.Handle("GET "+spec.DefaultConfigReportPath, l.Handler())
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		s := l.Snapshot()
		files := map[string]string{}
		names := make([]string, 0, len(s.Files))
		for k, v := range s.Files {
			files[k] = string(v)
			names = append(names, k)
		}
		sort.Strings(names)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Config-Checksum", s.Checksum)
		out := map[string]any{"identity": s.Identity, "checksum": s.Checksum, "short": configwire.Short(s.Checksum), "files": files, "sources": s.Sources}
		if s.Err != nil {
			out["error"] = s.Err.Error()
		}
		_ = json.NewEncoder(w).Encode(out)
	})
}

// configLoaded reports whether l loaded every file once (healthz waits for
// it: an instance without its config must not take traffic).
func configLoaded(l *config.Loader) (bool, string) {
	if l == nil {
		return true, ""
	}
	s := l.Snapshot()
	if s.Files == nil {
		msg := "config not loaded yet"
		if s.Err != nil {
			msg += ": " + s.Err.Error()
		}
		return false, msg
	}
	return true, s.Checksum
}

func newSlog() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }
