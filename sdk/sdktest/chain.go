package sdktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/sdk"
	"github.com/graylane/graylane/testsupport/testenv"
)

// Registry is a registrar that is also a discovery (etcdreg, nacosreg).
type Registry interface {
	sdk.Registrar
	sdk.Discovery
}

// ChainConfig describes a chain of services apps[0] -> apps[1] -> ...,
// each running every version in Versions.
type ChainConfig struct {
	Apps     []string
	Versions []string
	// Rules and Registry connect every service (and the edge client) to
	// the centre.
	Rules    sdk.Rules
	Registry Registry
	// Async makes every service call the next one from a goroutine it
	// hands the request's context, as background work would.
	Async bool
	// StripDecision removes n-d-version from every call between services,
	// so each hop must derive its decision from the user key again.
	StripDecision bool
	Logger        *slog.Logger
}

// Chain is a running chain of real HTTP services using the SDK, and an
// edge client (a gateway) that calls the first app.
type Chain struct {
	cfg      ChainConfig
	Services []*Service
	Edge     *sdk.Client
	http     *http.Client
}

// Service is one instance: one app at one version.
type Service struct {
	App, Version, Addr string
	Client             *sdk.Client
	// Hits counts requests served.
	Hits atomic.Int64
	srv  *http.Server
}

// StartChain starts every service, registers it, and waits until the edge
// client and every service see all instances they call.
func StartChain(t testing.TB, cfg ChainConfig) *Chain {
	t.Helper()
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	ch := &Chain{cfg: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, app := range cfg.Apps {
		next := ""
		if i+1 < len(cfg.Apps) {
			next = cfg.Apps[i+1]
		}
		for _, v := range cfg.Versions {
			ch.Services = append(ch.Services, startService(t, ctx, cfg, app, v, next))
		}
	}
	edge, err := sdk.Start(ctx, sdk.Config{
		App: "edge", Version: "v0", Rules: cfg.Rules, Discovery: cfg.Registry,
		Services: cfg.Apps[:1], Edge: true, Logger: cfg.Logger,
	})
	Must(t, "start edge client", err)
	t.Cleanup(func() { _ = edge.Close() })
	ch.Edge = edge
	ch.http = &http.Client{Transport: edge.Transport(nil), Timeout: 10 * time.Second}
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	Must(t, "edge client ready", edge.Ready(rctx))
	for _, s := range ch.Services {
		Must(t, "service "+s.App+" "+s.Version+" ready", s.Client.Ready(rctx))
	}
	// every caller sees every instance of what it calls
	testenv.Eventually(t, 60*time.Second, "all instances visible to their callers", func() error {
		callers := append([]*sdk.Client{edge}, ch.clients()...)
		for i, app := range cfg.Apps {
			for _, c := range callers {
				if !c.Calls(app) {
					continue
				}
				if n := len(c.Instances(app)); n != len(cfg.Versions) {
					return fmt.Errorf("a caller of %s (hop %d) sees %d instances, want %d", app, i, n, len(cfg.Versions))
				}
			}
		}
		return nil
	})
	return ch
}

func (ch *Chain) clients() []*sdk.Client {
	var out []*sdk.Client
	for _, s := range ch.Services {
		out = append(out, s.Client)
	}
	return out
}

func startService(t testing.TB, ctx context.Context, cfg ChainConfig, app, version, next string) *Service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Must(t, "listen", err)
	s := &Service{App: app, Version: version, Addr: ln.Addr().String()}
	var services []string
	if next != "" {
		services = []string{next}
	}
	s.Client, err = sdk.Start(ctx, sdk.Config{
		App: app, Version: version, Addr: s.Addr, Zone: "zone-a", Env: "test",
		Rules: cfg.Rules, Registrar: cfg.Registry, Discovery: cfg.Registry, Services: services,
		Logger: cfg.Logger,
	})
	Must(t, "start sdk client", err)
	var base http.RoundTripper = http.DefaultTransport
	if cfg.StripDecision {
		base = stripDecision{http.DefaultTransport}
	}
	out := &http.Client{Transport: s.Client.Transport(base), Timeout: 10 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.Hits.Add(1)
		me := app + "=" + version
		if next == "" {
			_, _ = io.WriteString(w, me)
			return
		}
		call := func(ctx context.Context) (string, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+next+"/", nil)
			if err != nil {
				return "", err
			}
			resp, err := out.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return "", fmt.Errorf("%s answered %d: %s", next, resp.StatusCode, b)
			}
			return string(b), err
		}
		var (
			rest string
			err  error
		)
		if cfg.Async {
			// background work: a goroutine given the request's context,
			// detached from its cancellation, reporting on a channel
			type result struct {
				s   string
				err error
			}
			done := make(chan result, 1)
			go func(ctx context.Context) {
				s, err := call(ctx)
				done <- result{s, err}
			}(context.WithoutCancel(r.Context()))
			res := <-done
			rest, err = res.s, res.err
		} else {
			rest, err = call(r.Context())
		}
		if err != nil {
			http.Error(w, me+": "+err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, me+","+rest)
	})
	s.srv = &http.Server{Handler: s.Client.Middleware(mux), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Client.Close()
		_ = s.srv.Close()
	})
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	Must(t, "register "+app+" "+version, s.Client.Register(rctx))
	return s
}

type stripDecision struct{ base http.RoundTripper }

func (s stripDecision) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Del(gray.HeaderVersion)
	return s.base.RoundTrip(r)
}

// Call sends one request for user ("" for none) through the edge and
// returns the version of each app that served it.
func (ch *Chain) Call(ctx context.Context, user string, header map[string]string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ch.cfg.Apps[0]+"/", nil)
	if err != nil {
		return nil, err
	}
	if user != "" {
		req.Header.Set(gray.DefaultUserHeader, user)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := ch.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("chain answered %d: %s", resp.StatusCode, b)
	}
	out := map[string]string{}
	for _, part := range strings.Split(string(b), ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("malformed chain answer %q", b)
		}
		out[k] = v
	}
	if len(out) != len(ch.cfg.Apps) {
		return nil, fmt.Errorf("chain answer %q does not name every app", b)
	}
	return out, nil
}

// Uniform returns the version every hop agreed on, or an error naming the
// hops that disagreed.
func Uniform(hops map[string]string) (string, error) {
	v := ""
	for _, x := range hops {
		if v == "" {
			v = x
		} else if x != v {
			return "", errors.New("hops disagree: " + fmt.Sprint(hops))
		}
	}
	return v, nil
}

// WaitGenerations waits until the edge and every service run at least
// generation gen of app's document.
func (ch *Chain) WaitGenerations(t testing.TB, d time.Duration, app string, gen int64) {
	t.Helper()
	testenv.Eventually(t, d, fmt.Sprintf("every client runs generation %d of %s's rules", gen, app), func() error {
		for _, c := range append([]*sdk.Client{ch.Edge}, ch.clients()...) {
			if g := c.Router().Generation(app); g < gen {
				return fmt.Errorf("a client runs generation %d", g)
			}
		}
		return nil
	})
}
