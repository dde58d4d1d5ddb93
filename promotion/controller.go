package promotion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
)

// EnvEngine is what the controller needs of an environment's engine
// (engine.Engine).
type EnvEngine interface {
	App(ctx context.Context, app string) (engine.AppView, error)
	Apps(ctx context.Context) ([]engine.AppView, error)
	// SubscribeChanges and Changes say which apps changed.
	SubscribeChanges() (<-chan struct{}, func())
	Changes(seq uint64) engine.Changes
	// TriggerAll asks for a pass over every app (after an unfreeze).
	TriggerAll()
}

var _ EnvEngine = (*engine.Engine)(nil)

// Env is one environment as the controller sees it.
type Env struct {
	Config *environments.Environment
	Engine EnvEngine
	// Source reads the environment's release documents; Writer writes
	// them (nil: read-only, it cannot be promoted into).
	Source configsync.Source
	Writer configsync.Writer
	// Bundle returns the bundle of a spec in force (its code version and
	// config files before the environment's overlay) and its effective
	// config digest (after the overlay; "" without config).
	Bundle func(ctx context.Context, rel *spec.Release) (environments.Bundle, string, error)
	// Revisions lists the environment's release records, newest first
	// (records.Store); nil: analysis outcomes are unknown.
	Revisions func(ctx context.Context, app string) ([]records.Revision, error)
	// Intent records who is about to write a document (records.Store
	// PutIntent), so the release record names the promoter; nil: none.
	Intent func(ctx context.Context, in records.Intent) error
}

// Config configures a Controller.
type Config struct {
	Set   environments.Set
	Envs  map[string]*Env
	Store *Store
	// Audit records promotions, approvals, refusals and plans (the
	// persistent audit log); nil logs them only.
	Audit func(ctx context.Context, r audit.Record)
	// Clock is the one clock of the rules (soak, windows, approval
	// expiry); default the real clock.
	Clock  clock.Clock
	Logger *slog.Logger
	// Resync is the longest time between two evaluations of every app
	// (default 2s).
	Resync time.Duration
}

// Controller keeps environment states, carries out promotions and plans.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	clock clock.Clock

	locks sync.Map // env/app -> *sync.Mutex

	fmu     sync.Mutex
	freezes map[string]environments.Freeze
	synced  chan struct{}
	once    sync.Once

	kick chan struct{}
}

// New returns a Controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Store == nil || len(cfg.Envs) == 0 {
		return nil, errors.New("promotion: a Store and environments are required")
	}
	for _, e := range cfg.Set.Envs {
		if cfg.Envs[e.Name] == nil {
			return nil, fmt.Errorf("promotion: environment %s is declared but not wired", e.Name)
		}
	}
	cfg.Clock = clock.Or(cfg.Clock)
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.Resync <= 0 {
		cfg.Resync = 2 * time.Second
	}
	return &Controller{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, freezes: map[string]environments.Freeze{},
		synced: make(chan struct{}), kick: make(chan struct{}, 1)}, nil
}

// lock serialises the controller's work on one app in one environment
// (in this process; etcd's compare-and-swap between replicas).
func (c *Controller) lock(env, app string) func() {
	m, _ := c.locks.LoadOrStore(env+"/"+app, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Kick asks the loop for an evaluation of every app soon.
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run follows the environments until ctx ends: every replica keeps the
// freezes current (Freezer); lead, called with the leader's context,
// evaluates and promotes.
func (c *Controller) Run(ctx context.Context) error {
	c.watchFreezes(ctx) // freeze.go
	return nil
}

// Lead runs the promotion loop until ctx ends (one leadership term):
// observe every environment's apps, carry out pending requests and
// automatic promotions, advance running plans.
func (c *Controller) Lead(ctx context.Context) {
	var subs []<-chan struct{}
	for _, e := range c.cfg.Set.Envs {
		ch, stop := c.cfg.Envs[e.Name].Engine.SubscribeChanges()
		defer stop()
		subs = append(subs, ch)
	}
	merged := make(chan struct{}, 1)
	for _, ch := range subs {
		go func(ch <-chan struct{}) {
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-ch:
					if !ok {
						return
					}
					select {
					case merged <- struct{}{}:
					default:
					}
				}
			}
		}(ch)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-merged:
		case <-c.kick:
		}
		next := c.reconcile(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// reconcile is one round: observe, promote, plans. It returns when to
// look again.
func (c *Controller) reconcile(ctx context.Context) time.Duration {
	next := c.cfg.Resync
	apps := map[string]bool{}
	for _, e := range c.cfg.Set.Envs {
		views, err := c.cfg.Envs[e.Name].Engine.Apps(ctx)
		if err != nil {
			c.log.Warn("list apps", "env", e.Name, "err", err)
			continue
		}
		for _, v := range views {
			apps[v.App] = true
			if _, err := c.observeView(ctx, e.Name, v); err != nil && ctx.Err() == nil {
				c.log.Warn("observe", "env", e.Name, "app", v.App, "err", err)
			}
		}
	}
	for _, e := range c.cfg.Set.Envs {
		if e.From == "" {
			continue
		}
		for app := range apps {
			if at, err := c.advance(ctx, e.Name, app); err != nil && ctx.Err() == nil {
				c.log.Warn("promotion", "env", e.Name, "app", app, "err", err)
			} else if !at.IsZero() {
				if d := at.Sub(c.clock.Now()); d > 0 && d < next {
					next = d
				}
			}
		}
	}
	c.advancePlans(ctx) // plans.go
	return max(next, 50*time.Millisecond)
}

// env returns the named environment's wiring and rules.
func (c *Controller) env(name string) (*Env, error) {
	e, ok := c.cfg.Envs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not an environment of this graylane (%v)", ErrUnknownEnv, name, c.cfg.Set.Names())
	}
	return e, nil
}

// ErrUnknownEnv is returned (wrapped) for an environment not declared.
var ErrUnknownEnv = errors.New("unknown environment")

// audit records one action.
func (c *Controller) audit(ctx context.Context, r audit.Record) {
	if r.Time.IsZero() {
		r.Time = c.clock.Now()
	}
	c.log.Info("audit", "actor", r.Actor, "via", r.Via, "env", r.Env, "app", r.App, "action", r.Action, "outcome", r.Outcome, "error", r.Error)
	if c.cfg.Audit != nil {
		c.cfg.Audit(ctx, r)
	}
}
