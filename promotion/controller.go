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
	// AppNames lists every app (sorted).
	AppNames(ctx context.Context) ([]string, error)
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
	// Resync is the longest time between two rounds (default 2s): a
	// round observes the apps whose state changed since the last one,
	// evaluates the promotions into environments with a From, and
	// advances release plans.
	Resync time.Duration
	// FullResync is the longest time between two observations of every
	// app, changed or not (default 30m): changes are followed as they
	// happen (Engine.Changes), so this is the level-triggered safety net,
	// not the way changes are found. At 20,000 apps a full observation
	// reads 20,000 states from etcd and takes seconds of CPU (every 2 s
	// it cost a core).
	FullResync time.Duration
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

// DefaultFullResync is Config.FullResync's default.
const DefaultFullResync = 30 * time.Minute

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
	if cfg.FullResync <= 0 {
		cfg.FullResync = DefaultFullResync
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
	// a new term starts with a full round: another replica led before
	r := newRound()
	for {
		full := false
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-merged:
		case <-c.kick:
			full = true
		}
		if full || r.lastFull.IsZero() || c.clock.Now().Sub(r.lastFull) >= c.cfg.FullResync {
			r.lastFull, full = c.clock.Now(), true
		}
		next := c.reconcile(ctx, r, full)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// round is what the loop remembers from one round to the next during
// one leadership term.
type round struct {
	// seq is, per environment, the engine's change sequence observed.
	seq map[string]uint64
	// apps is, per environment, the apps it has (from the last full
	// observation and the changes since).
	apps     map[string]map[string]bool
	lastFull time.Time
}

func newRound() *round {
	return &round{seq: map[string]uint64{}, apps: map[string]map[string]bool{}}
}

// reconcile is one round: observe (every app when full, else the apps
// changed since the last round), promote, plans. It returns when to look
// again.
func (c *Controller) reconcile(ctx context.Context, r *round, full bool) time.Duration {
	next := c.cfg.Resync
	apps := map[string]bool{}
	for _, e := range c.cfg.Set.Envs {
		c.observeRound(ctx, e.Name, r, full)
		for app := range r.apps[e.Name] {
			apps[app] = true
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

// observeRound observes the environment's apps: every one when full (or
// when the engine no longer knows the changes since the last round), else
// those changed since, one app at a time. The change sequence is read
// before the apps, so a change made meanwhile is seen again next round,
// never lost.
func (c *Controller) observeRound(ctx context.Context, env string, r *round, full bool) {
	eng := c.cfg.Envs[env].Engine
	seq, known := r.seq[env]
	ch := eng.Changes(seq)
	var todo []string
	names := r.apps[env]
	if full || !known || ch.Reset {
		all, err := eng.AppNames(ctx)
		if err != nil {
			c.log.Warn("list apps", "env", env, "err", err)
			return
		}
		todo, names = all, make(map[string]bool, len(all))
		r.apps[env] = names
	} else {
		for _, app := range ch.Removed {
			delete(names, app)
		}
		for _, s := range ch.Changed {
			todo = append(todo, s.App)
		}
	}
	failed := false
	for _, app := range todo {
		v, err := eng.App(ctx, app)
		if errors.Is(err, engine.ErrNotFound) {
			delete(names, app)
			continue
		}
		if err != nil {
			// not observed: the next round looks at every app again
			c.log.Warn("read app", "env", env, "app", app, "err", err)
			failed = true
			continue
		}
		names[app] = true
		if _, err := c.observeView(ctx, env, v); err != nil && ctx.Err() == nil {
			c.log.Warn("observe", "env", env, "app", app, "err", err)
		}
	}
	if failed || ctx.Err() != nil {
		delete(r.seq, env)
	} else {
		r.seq[env] = ch.Seq
	}
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
