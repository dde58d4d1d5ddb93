package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/adapters/registry"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/etcdreg"
	"github.com/graylane/graylane/server"
	"github.com/graylane/graylane/spec"
)

// grayDefaults are the configuration keys of gray routing (README:
// configuration reference).
var grayDefaults = map[string]any{
	"gray.centre":           "etcd",                     // where gray documents are published: etcd, nacos or apollo
	"gray.apollo.appId":     "graylane",                 // apollo: app of the gray namespace
	"gray.apollo.cluster":   "default",                  // apollo: its cluster
	"gray.apollo.namespace": "graylane-gray",            // apollo: properties namespace, one item per app
	"gray.etcd.prefix":      gray.DefaultRulesPrefix,    // etcd: one key per app
	"gray.nacos.group":      gray.DefaultNacosGroup,     // nacos: dataId = app in this group
	"registry.sources":      "etcd",                     // registries the registry backend follows: etcd, nacos
	"registry.etcd.prefix":  gray.DefaultInstancePrefix, // etcd: {prefix}{app}/{version}/{id}
	"registry.firstList":    "5s",                       // how long a new app's first instance list may take
}

// grayWiring holds the gray router, the registry backend and the
// registries behind POST /api/v1/instances.
type grayWiring struct {
	router  *grayrouter.Router
	backend *registry.Backend
	etcd    *etcdreg.Registry
	nacos   instanceLister // nil unless registry.sources has nacos
	tracked map[adapters.Backend]adapters.Backend
}

// wireGray adds the registry backend and the gray router (traffic.type
// gray) to the resolver. graylane's etcd always holds instance
// registrations; gray documents go to gray.centre.
func (r *resolver) wireGray(ctx context.Context, v *viper.Viper, cli *clientv3.Client, log *slog.Logger) error {
	for k, d := range grayDefaults {
		v.SetDefault(k, d)
	}
	log = log.With("component", "gray")
	g := &grayWiring{tracked: map[adapters.Backend]adapters.Backend{}}
	g.etcd = etcdreg.New(etcdreg.Config{Client: cli, Prefix: v.GetString("registry.etcd.prefix"), Logger: log})

	var store grayrouter.Store
	centre := v.GetString("gray.centre")
	switch centre {
	case "etcd", "":
		centre = "etcd"
		s := etcdsource.New(etcdsource.Config{Client: cli, Prefix: v.GetString("gray.etcd.prefix"), Logger: log})
		r.closers = append(r.closers, func() { _ = s.Close() })
		store = s
	case "nacos":
		s, closeStore, err := nacosGrayStore(ctx, v, log)
		if err != nil {
			return fmt.Errorf("gray.centre nacos: %w", err)
		}
		r.closers = append(r.closers, closeStore)
		store = s
	case "apollo":
		tc, err := optionalTLS(v, "apollo.tls")
		if err != nil {
			return err
		}
		docs, err := apollo.NewDocuments(apollo.DocumentsConfig{
			TLS:           tc,
			Portal:        fallback(v, "gray.apollo.portal", "apollo.portal"),
			Token:         fallback(v, "gray.apollo.token", "apollo.token"),
			Env:           fallback(v, "gray.apollo.env", "apollo.env"),
			Operator:      fallback(v, "gray.apollo.operator", "apollo.operator"),
			ConfigService: fallback(v, "gray.apollo.configService", "apollo.configService", "apollo.meta"),
			Logger:        log,
		})
		if err != nil {
			return fmt.Errorf("gray.centre apollo: %w", err)
		}
		appID, cluster, ns := v.GetString("gray.apollo.appId"), v.GetString("gray.apollo.cluster"), v.GetString("gray.apollo.namespace")
		store = grayrouter.DocumentsStore(docs, func(app string) configsync.Location {
			return configsync.Location{AppID: appID, Cluster: cluster, Namespace: ns, Key: app}
		})
	default:
		return fmt.Errorf("gray.centre: %q is not a centre gray documents can be published to (etcd, nacos, apollo)", centre)
	}
	router, err := grayrouter.New(grayrouter.Config{Store: store, Centre: centre, Logger: log})
	if err != nil {
		return err
	}
	g.router = router

	sources := map[string]registry.Source{}
	for _, s := range list(v, "registry.sources") {
		switch s {
		case "etcd":
			sources["etcd"] = g.etcd
		case "nacos":
			src, lister, closeReg, err := nacosRegistrySource(ctx, v, log)
			if err != nil {
				return fmt.Errorf("registry.sources nacos: %w", err)
			}
			r.closers = append(r.closers, closeReg)
			g.nacos = lister
			sources["nacos"] = src
		default:
			return fmt.Errorf("registry.sources: %q is not a registry (etcd, nacos)", s)
		}
	}
	if len(sources) == 0 {
		return errors.New("registry.sources: name at least one registry (etcd, nacos)")
	}
	b, err := registry.New(registry.Config{Sources: sources, FirstList: v.GetDuration("registry.firstList"), Logger: log})
	if err != nil {
		return err
	}
	g.backend = b
	r.closers = append(r.closers, func() { _ = b.Close() })
	r.backends[spec.BackendRegistry] = b
	r.notifiers = append(r.notifiers, b)
	r.routers["gray"] = func(*spec.Release) (adapters.TrafficRouter, error) { return router, nil }
	r.gray = g
	log.Info("gray routing wired", "centre", centre, "registries", slices.Sorted(maps.Keys(sources)))
	return nil
}

// grayTraffic is the traffic router type rel uses for gray purposes:
// "gray" when set, and by default for the registry backend.
func grayTraffic(rel *spec.Release) string {
	if rel.Traffic != nil && rel.Traffic.Type != "" {
		return rel.Traffic.Type
	}
	if rel.Backend.Type == spec.BackendRegistry {
		return "gray"
	}
	return ""
}

// grayCheck rejects gray rules that no router would apply.
func grayCheck(rel *spec.Release) error {
	if rel.Gray != nil && len(rel.Gray.Rules) > 0 && grayTraffic(rel) != "gray" {
		return fmt.Errorf("gray.rules need traffic.type gray (the %q router cannot apply them): %w", grayTraffic(rel), adapters.ErrUnsupported)
	}
	return nil
}

// trackGray wraps the backend of an app routed by the gray router so the
// router sees the desired instance counts.
func (r *resolver) trackGray(rel *spec.Release, b adapters.Backend) adapters.Backend {
	if r.gray == nil || grayTraffic(rel) != "gray" {
		return b
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.gray.tracked[b]
	if !ok {
		t = r.gray.router.Track(b)
		r.gray.tracked[b] = t
	}
	return t
}

// grayAPI serves the gray routes of the API, nil when gray is not wired.
func (r *resolver) grayAPI() server.GrayService {
	if r.gray == nil {
		return nil
	}
	return r.gray
}

// instanceLister lists one app's instances in a registry.
type instanceLister interface {
	Instances(ctx context.Context, app string) ([]gray.Instance, error)
}

var _ server.GrayService = (*grayWiring)(nil)

func (g *grayWiring) Document(ctx context.Context, app string) (*gray.Document, error) {
	return g.router.Document(ctx, app)
}

func (g *grayWiring) Register(ctx context.Context, in gray.Instance, ttl time.Duration) (gray.Instance, error) {
	return g.etcd.Put(ctx, in, ttl)
}

func (g *grayWiring) Heartbeat(ctx context.Context, app, id string) (gray.Instance, error) {
	return g.etcd.Heartbeat(ctx, app, id)
}

func (g *grayWiring) Deregister(ctx context.Context, app, id string) error {
	return g.etcd.Delete(ctx, app, id)
}

// Instances lists etcd registrations, plus Nacos ones for one app when
// Nacos is a registry source.
func (g *grayWiring) Instances(ctx context.Context, app string) ([]gray.Instance, error) {
	out, err := g.etcd.List(ctx, app)
	if err != nil {
		return nil, err
	}
	if g.nacos != nil && app != "" {
		ns, err := g.nacos.Instances(ctx, app)
		if err != nil {
			return nil, err
		}
		out = append(out, ns...)
	}
	return out, nil
}
