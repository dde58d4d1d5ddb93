package apireg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/sdk"
)

// DefaultTTL is the registration TTL when Config.TTL is zero.
const DefaultTTL = 15 * time.Second

// Config configures a Registrar.
type Config struct {
	// Server is graylane's API base URL, e.g. http://127.0.0.1:8080.
	Server string
	// TTL: graylane drops the instance when no heartbeat arrives within
	// it; heartbeats go every TTL/3 (DefaultTTL).
	TTL time.Duration
	// HTTP defaults to a client with a 5 s timeout.
	HTTP *http.Client
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Registrar registers through the API.
type Registrar struct {
	cfg Config
	log *slog.Logger
}

var _ sdk.Registrar = (*Registrar)(nil)

// New returns a Registrar.
func New(cfg Config) *Registrar {
	cfg.Server = strings.TrimRight(cfg.Server, "/")
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 5 * time.Second}
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	return &Registrar{cfg: cfg, log: cfg.Logger.With("registry", "api", "server", cfg.Server)}
}

type registerBody struct {
	App     string            `json:"app"`
	Version string            `json:"version"`
	ID      string            `json:"id"`
	Addr    string            `json:"addr"`
	Ready   bool              `json:"ready"`
	Meta    map[string]string `json:"meta,omitempty"`
	TTL     string            `json:"ttl"`
}

// errExpired: the registration is gone; register again.
var errExpired = errors.New("registration expired")

// Register registers in and heartbeats every TTL/3 until ctx ends or
// Deregister; if graylane reports the registration expired, it registers
// again.
func (r *Registrar) Register(ctx context.Context, in gray.Instance) (sdk.Registration, error) {
	if err := in.Check(); err != nil {
		return nil, fmt.Errorf("api registry: register: %w", err)
	}
	if err := r.register(ctx, in); err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(ctx)
	g := &registration{r: r, in: in, cancel: cancel, done: make(chan struct{})}
	go g.heartbeats(hctx)
	return g, nil
}

func (r *Registrar) register(ctx context.Context, in gray.Instance) error {
	body, _ := json.Marshal(registerBody{App: in.App, Version: in.Version, ID: in.ID, Addr: in.Addr, Ready: in.Ready, Meta: in.Meta, TTL: r.cfg.TTL.String()})
	if err := r.call(ctx, http.MethodPost, "/api/v1/instances", body, http.StatusCreated); err != nil {
		return fmt.Errorf("api registry: register %s of %s: %w", in.ID, in.App, err)
	}
	return nil
}

func (r *Registrar) call(ctx context.Context, method, path string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, method, r.cfg.Server+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == want:
		return nil
	case resp.StatusCode == http.StatusNotFound && method == http.MethodPost:
		return errExpired
	default:
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
}

type registration struct {
	r      *Registrar
	in     gray.Instance
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error
}

func (g *registration) path() string {
	return "/api/v1/instances/" + url.PathEscape(g.in.App) + "/" + url.PathEscape(g.in.ID)
}

func (g *registration) heartbeats(ctx context.Context) {
	defer close(g.done)
	t := time.NewTicker(g.r.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := g.r.call(ctx, http.MethodPost, g.path()+"/heartbeat", nil, http.StatusOK)
		if errors.Is(err, errExpired) {
			g.r.log.Warn("registration expired; registering again", "app", g.in.App, "id", g.in.ID)
			err = g.r.register(ctx, g.in)
		}
		if err != nil && ctx.Err() == nil {
			g.r.log.Warn("heartbeat failed", "app", g.in.App, "id", g.in.ID, "err", err)
		}
	}
}

// Deregister stops the heartbeats and deletes the registration.
func (g *registration) Deregister(ctx context.Context) error {
	g.once.Do(func() {
		g.cancel()
		<-g.done
		if err := g.r.call(ctx, http.MethodDelete, g.path(), nil, http.StatusNoContent); err != nil {
			g.err = fmt.Errorf("api registry: deregister %s of %s: %w", g.in.ID, g.in.App, err)
		}
	})
	return g.err
}
