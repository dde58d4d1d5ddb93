package nacosreg

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk"
)

// Registry registers instances in Nacos naming and follows them, with the
// Nepxion metadata keys (version, region, zone, env, group) and
// graylane's instance ID under gray.MetaID. Service name = app.
type Registry struct {
	r *nacos.Registry
}

var (
	_ sdk.Registrar = (*Registry)(nil)
	_ sdk.Discovery = (*Registry)(nil)
)

// New wraps a nacos.Registry (the caller keeps and closes it).
func New(r *nacos.Registry) *Registry { return &Registry{r: r} }

// Rules connects to the published gray documents in Nacos: group
// cfg.Group (gray.DefaultNacosGroup when empty), dataId = app, listed in
// the group's index as graylane maintains it. The caller closes the
// source.
func Rules(ctx context.Context, cfg nacos.Config) (*nacos.Source, error) {
	if cfg.Group == "" {
		cfg.Group = gray.DefaultNacosGroup
	}
	s, err := nacos.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("nacos gray rules in group %s: %w", cfg.Group, err)
	}
	return s, nil
}

func toNacos(in gray.Instance) (nacos.Instance, error) {
	host, port, err := net.SplitHostPort(in.Addr)
	if err != nil {
		return nacos.Instance{}, fmt.Errorf("addr %q: %w", in.Addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nacos.Instance{}, fmt.Errorf("addr %q: %w", in.Addr, err)
	}
	md := map[string]string{gray.MetaID: in.ID}
	for k, v := range in.Meta {
		md[k] = v
	}
	return nacos.Instance{
		Service: in.App, IP: host, Port: p,
		Version: in.Version, Region: in.Meta[gray.MetaRegion], Zone: in.Meta[gray.MetaZone],
		Env: in.Meta[gray.MetaEnv], Group: in.Meta[gray.MetaGroup], Metadata: md,
	}, nil
}

// FromNacos converts a Nacos instance: ready when healthy and enabled;
// ID from gray.MetaID, else ip:port; metadata without the server's
// internal keys.
func FromNacos(n nacos.Instance) gray.Instance {
	in := gray.Instance{App: n.Service, Version: n.Version, ID: n.Metadata[gray.MetaID], Addr: n.Addr(), Ready: n.Healthy && n.Enabled, Meta: map[string]string{}}
	if in.ID == "" {
		in.ID = n.Addr()
	}
	for k, v := range n.Metadata {
		if k == gray.MetaID || k == gray.MetaVersion || len(k) > 9 && k[:9] == "internal-" {
			continue
		}
		in.Meta[k] = v
	}
	return in
}

// Register registers in as an ephemeral Nacos instance: the gRPC
// connection keeps it alive, and nacos.Registry registers it again after a
// reconnection. It is deregistered when ctx ends or on Deregister.
func (x *Registry) Register(ctx context.Context, in gray.Instance) (sdk.Registration, error) {
	if err := in.Check(); err != nil {
		return nil, fmt.Errorf("nacos registry: register: %w", err)
	}
	n, err := toNacos(in)
	if err != nil {
		return nil, fmt.Errorf("nacos registry: register %s: %w", in.ID, err)
	}
	if err := x.r.Register(ctx, n); err != nil {
		return nil, fmt.Errorf("nacos registry: register %s of %s: %w", in.ID, in.App, err)
	}
	reg := &registration{x: x, n: n, stop: make(chan struct{})}
	go func() {
		select {
		case <-ctx.Done():
			_ = reg.Deregister(context.Background())
		case <-reg.stop:
		}
	}()
	return reg, nil
}

type registration struct {
	x    *Registry
	n    nacos.Instance
	once sync.Once
	stop chan struct{}
	err  error
}

func (g *registration) Deregister(ctx context.Context) error {
	g.once.Do(func() {
		close(g.stop)
		if err := g.x.r.Deregister(ctx, g.n); err != nil {
			g.err = fmt.Errorf("nacos registry: deregister %s of %s: %w", g.n.Addr(), g.n.Service, err)
		}
	})
	return g.err
}

// Watch follows app's instances through a Nacos subscription. app must
// not be "" (Nacos subscribes per service).
func (x *Registry) Watch(ctx context.Context, app string) <-chan []gray.Instance {
	out := make(chan []gray.Instance, 1)
	in := x.r.Subscribe(ctx, app)
	go func() {
		defer close(out)
		for list := range in {
			conv := make([]gray.Instance, 0, len(list))
			for _, n := range list {
				conv = append(conv, FromNacos(n))
			}
			select {
			case <-out:
			default:
			}
			out <- conv
		}
	}()
	return out
}
