package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configrelease"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/hooks"
	"github.com/graylane/graylane/internal/upgrade"
	"github.com/graylane/graylane/promotion"
	"github.com/graylane/graylane/rollout/analysis"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/spec"
)

// envStack is one environment's release machinery: its source, adapters,
// config-in-step, records, analysis, hooks and engine, over graylane's
// one etcd, with the environment in every name (envconfig.go).
type envStack struct {
	name    string
	rules   *environments.Environment
	v       *viper.Viper
	dataDir string
	parts   sourceParts
	adapt   *resolver
	cfgw    *configWiring
	recs    *recordsWiring
	checks  *analysis.Runner
	hooks   *hooks.Runner
	engine  *engine.Engine
	content configrelease.ContentReader
	freeze  *lateFreezer
	closers []func()
}

func (s *envStack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// stackDeps is what every environment's stack shares.
type stackDeps struct {
	cli     *clientv3.Client
	dataDir string
	metrics *engine.Metrics
	ha      haParts // ha.go: forEnv gives the environment's own
	gate    *upgrade.Gate
	clock   clock.Clock
	log     *slog.Logger
	multi   bool // environments are declared
}

// lateFreezer is the engine's Freezer before the promotion controller
// exists (it needs the engines): nothing is frozen until it is set.
type lateFreezer struct {
	mu sync.Mutex
	f  engine.Freezer
}

func (l *lateFreezer) set(f engine.Freezer) { l.mu.Lock(); l.f = f; l.mu.Unlock() }

func (l *lateFreezer) Frozen() string {
	l.mu.Lock()
	f := l.f
	l.mu.Unlock()
	if f == nil {
		return ""
	}
	return f.Frozen()
}

// buildEnv builds one environment's stack from its view of the
// configuration (envViper).
func buildEnv(ctx context.Context, ev *viper.Viper, rules *environments.Environment, d stackDeps) (st *envStack, err error) {
	st = &envStack{name: rules.Name, rules: rules, v: ev, dataDir: envDataDir(d.dataDir, rules), freeze: &lateFreezer{}}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	log := d.log
	envLabel := ""
	if d.multi {
		log = log.With("env", rules.Name)
		envLabel = rules.Name
	}
	where := ""
	if d.multi {
		where = "environment " + rules.Name + ": "
	}
	if err := os.MkdirAll(st.dataDir, 0o755); err != nil {
		return st, fmt.Errorf("%sdata dir %s: %w", where, st.dataDir, err)
	}
	// the release source: graylane's etcd, or the environment's own cluster
	srcCli := d.cli
	if eps := list(ev, "source.etcd.endpoints"); len(eps) > 0 {
		c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: ev.GetDuration("etcd.dialTimeout")})
		if err != nil {
			return st, fmt.Errorf("%ssource etcd %v: %w", where, eps, err)
		}
		st.closers = append(st.closers, func() { c.Close() })
		srcCli = c
	}
	if st.parts, err = buildSource(ctx, ev, srcCli, st.dataDir, log); err != nil {
		return st, fmt.Errorf("%s%w", where, err)
	}
	st.closers = append(st.closers, st.parts.close)
	if st.adapt, err = newAdapters(ev, st.dataDir, envLabel, log); err != nil {
		return st, fmt.Errorf("%s%w", where, err)
	}
	ha, err := d.ha.forEnv(d.cli, rules, ev, log)
	if err != nil {
		return st, err
	}
	st.adapt.shard = ha.shard != nil
	st.closers = append(st.closers, st.adapt.Close)
	if err := st.adapt.wireGray(ctx, ev, d.cli, log); err != nil {
		return st, fmt.Errorf("%s%w", where, err)
	}
	st.recs = buildRecords(ev, d.cli, st.parts.source.Name(), envLabel, log)
	if st.cfgw, err = buildConfigReleaser(ctx, ev, d.cli, d.gate, d.clock, log, st.recs.store.ConfigIdentities); err != nil {
		return st, fmt.Errorf("%s%w", where, err)
	}
	st.closers = append(st.closers, st.cfgw.close)
	st.content = configrelease.NewEtcdStore(d.cli, ev.GetString("config.prefix"))
	var eng *engine.Engine
	st.checks = analysis.New(analysis.Config{Notify: func(app string) { eng.Trigger(app) }, Logger: log.With("component", "analysis"),
		Journal: etcdstore.OpenJournal(etcdstore.Config{Client: d.cli, Prefix: ev.GetString("etcd.analysisPrefix"), Gate: d.gate}), Clock: d.clock})
	st.closers = append(st.closers, st.checks.Close)
	st.hooks, err = hooks.New(hooks.Config{Store: hooks.NewEtcdStore(d.cli, ev.GetString("hooks.prefix")), Env: envLabel, Clock: d.clock,
		Logger: log.With("component", "hooks"), Notify: func(app string) { eng.Trigger(app) },
		Bundle: func(ctx context.Context, rel *spec.Release) (string, error) {
			b, _, err := st.bundle(ctx, rel)
			return b.Digest, err
		}})
	if err != nil {
		return st, err
	}
	st.closers = append(st.closers, st.hooks.Close)
	eng = engine.New(engine.Config{
		Config:    st.cfgw.manager,
		Analysis:  st.checks,
		Elect:     ha.elect,
		Shard:     ha.engineShard(),
		Nudges:    ha.nudges,
		ReplicaID: ha.id,
		// IdleResync: the back-off ceiling of idle apps (README)
		IdleResync: ev.GetDuration("engine.idleResync"),
		Source:     st.parts.source,
		Store:      etcdstore.Open(etcdstore.Config{Client: d.cli, Prefix: ev.GetString("etcd.statePrefix"), Gate: d.gate}),
		Resolver:   st.adapt,
		Logger:     log.With("component", "engine"),
		Metrics:    d.metrics,
		Workers:    ev.GetInt("engine.workers"),
		Resync:     ev.GetDuration("engine.resync"),
		Records:    st.recs.keeper,
		Hooks:      st.hooks,
		Freezer:    st.freeze,
		Env:        envLabel,
		Clock:      d.clock,
	})
	st.adapt.Notify(eng.Trigger)
	st.adapt.releases = eng.Release
	st.engine = eng
	return st, nil
}

// bundle is the release bundle of a spec in force in this environment
// (its code version and config files before the overlay) and its
// effective config digest (after it).
func (s *envStack) bundle(ctx context.Context, rel *spec.Release) (environments.Bundle, string, error) {
	if rel.Config == nil {
		return environments.NewBundle(rel.App, rel.Version, nil), "", nil
	}
	base, err := configrelease.ResolveBase(ctx, rel.App, rel.Config, s.content)
	if err != nil {
		return environments.Bundle{}, "", err
	}
	eff, err := configrelease.Resolve(ctx, rel.App, rel.Config, s.content)
	if err != nil {
		return environments.Bundle{}, "", err
	}
	return environments.NewBundle(rel.App, rel.Version, base.Files), eff.Digest, nil
}

// promotionEnv is the stack as the promotion controller sees it.
func (s *envStack) promotionEnv() *promotion.Env {
	return &promotion.Env{Config: s.rules, Engine: s.engine, Source: s.parts.source, Writer: s.parts.writer, Bundle: s.bundle,
		Revisions: s.recs.store.Revisions, Intent: s.recs.store.PutIntent}
}

// ready reports the environment's readiness for /readyz: its first read
// of the source done, the source reachable.
func (s *envStack) ready(ctx context.Context) error {
	select {
	case <-s.engine.Synced():
	default:
		return fmt.Errorf("environment %s: first read of its config source %s not finished", s.name, s.parts.source.Name())
	}
	if err := s.engine.SourceError(); err != nil {
		return fmt.Errorf("environment %s: config source %s unavailable: %w", s.name, s.parts.source.Name(), err)
	}
	if s.parts.ready != nil {
		if err := s.parts.ready(ctx); err != nil {
			return fmt.Errorf("environment %s: %w", s.name, err)
		}
	}
	return nil
}
