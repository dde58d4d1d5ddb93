package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/sdk"
	"github.com/graylane/graylane/sdk/etcdreg"
)

// grayFlags turn demoapp into a service of a gray call chain through the
// SDK: it registers itself in etcd as --gray-app at its version, follows
// the published gray documents, and GET /chain calls --gray-calls (if set)
// through the SDK's transport and answers "app=version[,<the rest>]".
type grayFlags struct {
	etcd, app, calls string
}

func (g *grayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.etcd, "gray-etcd", "", "etcd endpoints (comma-separated): register and route as a gray chain service")
	fs.StringVar(&g.app, "gray-app", "", "the app this instance registers as (with --gray-etcd)")
	fs.StringVar(&g.calls, "gray-calls", "", "the app GET /chain calls next (with --gray-etcd)")
}

// grayService is demoapp's SDK client; registered turns true once the
// instance is registered (/healthz waits for it, so a router never sends
// traffic to an instance the chain's callers cannot see yet).
type grayService struct {
	client     *sdk.Client
	etcd       *clientv3.Client
	registered atomic.Bool
	calls      string
	app        string
	version    string
}

func startGray(ctx context.Context, g grayFlags, version, addr string) (*grayService, error) {
	if g.etcd == "" {
		return nil, nil
	}
	if g.app == "" {
		return nil, fmt.Errorf("--gray-etcd needs --gray-app")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(g.etcd, ","), DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("gray: etcd: %w", err)
	}
	reg := etcdreg.New(etcdreg.Config{Client: cli})
	cfg := sdk.Config{App: g.app, Version: version, Addr: addr, Rules: etcdreg.Rules(cli, ""), Registrar: reg, Discovery: reg}
	if g.calls != "" {
		cfg.Services = []string{g.calls}
	}
	c, err := sdk.Start(ctx, cfg)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("gray: %w", err)
	}
	return &grayService{client: c, etcd: cli, calls: g.calls, app: g.app, version: version}, nil
}

// ready waits for the documents and instance lists, then registers.
func (s *grayService) ready(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.client.Ready(rctx); err != nil {
		return err
	}
	if err := s.client.Register(rctx); err != nil {
		return err
	}
	s.registered.Store(true)
	return nil
}

func (s *grayService) close() {
	_ = s.client.Close() // deregisters
	_ = s.etcd.Close()
}

// chain answers GET /chain.
func (s *grayService) chain(w http.ResponseWriter, r *http.Request) {
	me := s.app + "=" + s.version
	w.Header().Set("X-Version", s.version)
	if s.calls == "" {
		io.WriteString(w, me)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://"+s.calls+"/chain", nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := s.client.HTTPClient().Do(req)
	if err != nil {
		http.Error(w, me+": "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		http.Error(w, me+": "+s.calls+" answered "+resp.Status+": "+string(b), http.StatusBadGateway)
		return
	}
	io.WriteString(w, me+","+string(b))
}
