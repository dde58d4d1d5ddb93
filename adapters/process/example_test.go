package process_test

import (
	"context"
	"log"
	"log/slog"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/process"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Run two instances of v1 and a canary instance of v2 behind the app's
// built-in proxy on 127.0.0.1:8081, with 10% of the traffic on the canary.
// The proxy follows the backend's ready instances (Observe, kicked by
// Notify) and the backend drains instances through it before stopping
// them. On graylane's shutdown Close leaves the instances running; the
// next New on the same StateDir adopts them.
func ExampleNew() {
	var b *process.Backend
	router, err := proxy.NewRouter(proxy.RouterConfig{
		Instances: proxy.InstancesFunc(func(ctx context.Context, app string) ([]adapters.Instance, error) { return b.Observe(ctx, app) }),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer router.Close()
	b, err = process.New(process.Config{StateDir: "/var/lib/graylane/process", Logger: slog.Default(), Drainer: router})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	b.Notify(router.Kick)

	rel := &spec.Release{
		App:     "demo",
		Version: "v2",
		Backend: spec.Backend{Type: spec.BackendProcess, Process: &spec.ProcessBackend{
			Command: []string{"/usr/local/bin/demoapp", "--version", "{{.Version}}", "--addr", "{{.Addr}}"},
		}},
		Traffic: &spec.Traffic{Type: "proxy", Proxy: &spec.ProxyTraffic{Listen: "127.0.0.1:8081"}},
	}
	ctx := context.Background()
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 2, "v2": 1}, adapters.NoStep); err != nil {
		log.Fatal(err)
	}
	split := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v2", Weight: 10}, {Version: "v1", Weight: 90}}}
	if err := router.SetWeights(ctx, rel, split); err != nil {
		log.Fatal(err)
	}
	instances, _ := b.Observe(ctx, "demo") // demo-v1-0, demo-v1-1, demo-v2-0
	_ = instances
}
