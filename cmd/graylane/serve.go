package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/graylane/graylane/adapters/webhook"
	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configsync"
	etcdsource "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/console"
	"github.com/graylane/graylane/internal/etcdserver"
	"github.com/graylane/graylane/promotion"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/rollout/engine/etcdstore"
	"github.com/graylane/graylane/rollout/engine/shard"
	"github.com/graylane/graylane/server"
)

// defaults lists every configuration key with its default value.
var defaults = map[string]any{
	"http.addr":                "127.0.0.1:8080",
	"http.token":               "",
	"http.tls.certFile":        "",
	"http.tls.keyFile":         "",
	"http.secureCookies":       false,
	"http.sessionTTL":          "12h",
	"data.dir":                 "./data",
	"log.level":                "info",
	"log.format":               "text",
	"source.type":              "etcd",
	"etcd.endpoints":           "",
	"etcd.prefix":              etcdsource.DefaultPrefix,
	"etcd.statePrefix":         etcdstore.DefaultPrefix,
	"etcd.analysisPrefix":      etcdstore.DefaultJournalPrefix,
	"etcd.dialTimeout":         "5s",
	"etcd.embedded.clientAddr": etcdserver.DefaultClientAddr,
	"etcd.embedded.peerAddr":   etcdserver.DefaultPeerAddr,
	// the embedded member's housekeeping (README: etcd.embedded.*)
	"etcd.embedded.compactionRetention": etcdserver.DefaultCompactionRetention,
	"etcd.embedded.compactionMode":      "periodic",
	"etcd.embedded.quotaBackendBytes":   etcdserver.DefaultQuotaBackendBytes,
	"etcd.embedded.warnRequestDuration": etcdserver.DefaultWarnRequestDuration.String(),
	"etcd.embedded.defragInterval":      etcdserver.DefaultDefragInterval.String(),
	"etcd.embedded.logLevel":            etcdserver.DefaultEtcdLogLevel,
	"engine.workers":                    engine.DefaultWorkers,
	"debug.pprofAddr":                   "",
	"ha.enabled":                        false,
	"ha.mode":                           "",
	"ha.prefix":                         shard.DefaultPrefix,
	"ha.ttl":                            "10s",
	"ha.id":                             "",
	"ha.key":                            "/graylane/leader",
	"engine.resync":                     "10s",
	"engine.idleResync":                 engine.DefaultIdleResync.String(),
	"webhook.reassert":                  webhook.DefaultReassert.String(),
	"bootstrap.specs":                   "",
	"process.stateDir":                  "",
	"process.stopOnExit":                false,
	"kubernetes.kubeconfig":             "", // empty: in-cluster in a pod, else $KUBECONFIG or ~/.kube/config
	"kubernetes.context":                "", // empty: the kubeconfig's current context
	"kubernetes.namespaces":             "", // empty: every namespace (needs the ClusterRole)
	"kubernetes.qps":                    50,
	"kubernetes.burst":                  100,
	"nacos.servers":                     "",
	"nacos.grpcPort":                    0,
	"nacos.namespace":                   "",
	"nacos.group":                       "GRAYLANE_RELEASES",
	"nacos.indexDataId":                 "graylane.index",
	"nacos.username":                    "",
	"nacos.password":                    "",
	"nacos.accessKey":                   "",
	"nacos.secretKey":                   "",
	"nacos.cacheDir":                    "",
	"nacos.logDir":                      "",
	"nacos.timeout":                     "5s",
	"apollo.meta":                       "",
	"apollo.configService":              "",
	"apollo.appId":                      "graylane",
	"apollo.cluster":                    "default",
	"apollo.namespace":                  "graylane-releases",
	"apollo.secret":                     "",
	"apollo.label":                      "",
	"apollo.portal":                     "",
	"apollo.env":                        "DEV",
	"apollo.token":                      "",
	"apollo.operator":                   "apollo",
	"apollo.cacheDir":                   "",
	"apollo.timeout":                    "5s",
	"apollo.probeInterval":              "3s",
	"apollo.startupGrace":               "5s",
}

func newServe() *cobra.Command {
	v := viper.New()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run graylane: watch the config centre, roll releases out, serve the API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := loadConfig(v, cmd); err != nil {
				return &exitError{code: 2, err: err}
			}
			return serve(cmd.Context(), v)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "config file (YAML); env GRAYLANE_CONFIG")
	f.String("http.addr", "", "API listen address")
	f.String("data.dir", "", "data directory (embedded etcd, process state)")
	f.String("etcd.endpoints", "", "comma-separated external etcd endpoints (empty: embedded etcd)")
	f.String("etcd.prefix", "", "etcd key prefix of release specs")
	f.String("source.type", "", "config centre holding releases: etcd, nacos or apollo")
	f.StringSlice("bootstrap.specs", nil, "release spec files written to the config centre at start if their app has none")
	f.String("log.level", "", "debug, info, warn or error")
	return cmd
}

func loadConfig(v *viper.Viper, cmd *cobra.Command) error {
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("GRAYLANE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "config" && fl.Changed {
			_ = v.BindPFlag(fl.Name, fl)
		}
	})
	file, _ := cmd.Flags().GetString("config")
	if file == "" {
		file = os.Getenv("GRAYLANE_CONFIG")
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("read config %s: %w", file, err)
		}
	}
	return nil
}

// list reads a key that may be a YAML list or a comma-separated string.
func list(v *viper.Viper, key string) []string {
	var out []string
	switch x := v.Get(key).(type) {
	case []any:
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
	case []string:
		out = x
	case string:
		out = strings.Split(x, ",")
	}
	var clean []string
	for _, s := range out {
		if s = strings.TrimSpace(s); s != "" {
			clean = append(clean, s)
		}
	}
	return clean
}

func newLogger(v *viper.Viper) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(v.GetString("log.level"))); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch v.GetString("log.format") {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("log.format: %q is not text or json", v.GetString("log.format"))
	}
}

func serve(ctx context.Context, v *viper.Viper) error { return serveWith(ctx, v, serveOptions{}) }

// serveOptions are what tests inject into a graylane run in-process.
type serveOptions struct {
	// Clock is the one clock every component reads (engines, analysis,
	// config-in-step, hooks, the promotion rules); nil: the real clock.
	Clock clock.Clock
	// Serving, if set, receives the API's address once it listens.
	Serving chan<- string
	// Controller, if set, receives the promotion controller once built.
	Controller chan<- *promotion.Controller
}

func serveWith(ctx context.Context, v *viper.Viper, opts serveOptions) error {
	log, err := newLogger(v)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	dataDir, err := filepath.Abs(v.GetString("data.dir"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("data.dir %s: %w", dataDir, err)
	}

	// graylane's own state always lives in etcd: embedded by default.
	endpoints := list(v, "etcd.endpoints")
	if len(endpoints) == 0 && readEtcdTLS(v).enabled() {
		return &exitError{code: 2, err: errors.New("etcd.tls: set only with etcd.endpoints (the embedded etcd listens on loopback without TLS)")}
	}
	etcdCfg, err := etcdClientConfig(v, endpoints)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	var embedded *etcdserver.Server
	if len(endpoints) == 0 {
		// etcd's own log goes through graylane's logger from
		// etcd.embedded.logLevel up (warn: slow requests, problems)
		srv, err := etcdserver.Start(ctx, etcdserver.Config{
			Dir:                     filepath.Join(dataDir, "etcd"),
			ClientAddr:              v.GetString("etcd.embedded.clientAddr"),
			PeerAddr:                v.GetString("etcd.embedded.peerAddr"),
			Logger:                  log.With("component", "etcd"),
			EtcdLogLevel:            v.GetString("etcd.embedded.logLevel"),
			AutoCompactionRetention: v.GetString("etcd.embedded.compactionRetention"),
			AutoCompactionMode:      v.GetString("etcd.embedded.compactionMode"),
			QuotaBackendBytes:       v.GetInt64("etcd.embedded.quotaBackendBytes"),
			WarnRequestDuration:     v.GetDuration("etcd.embedded.warnRequestDuration"),
			DefragInterval:          v.GetDuration("etcd.embedded.defragInterval"),
		})
		if err != nil {
			return fmt.Errorf("start embedded etcd in %s: %w", filepath.Join(dataDir, "etcd"), err)
		}
		defer srv.Close()
		embedded = srv
		endpoints = srv.Endpoints()
		etcdCfg.Endpoints = endpoints
		log.Info("embedded etcd started", "endpoints", endpoints, "dir", filepath.Join(dataDir, "etcd"))
	}
	cli, err := clientv3.New(etcdCfg)
	if err != nil {
		return fmt.Errorf("etcd client for %v: %w", etcdCfg.Endpoints, err)
	}
	defer cli.Close()
	if etcdCfg.TLS != nil {
		if err := probeEtcdTLS(ctx, etcdCfg.Endpoints, etcdCfg.TLS, v.GetDuration("etcd.dialTimeout"), log); err != nil {
			return &exitError{code: 2, err: err}
		}
	}

	// advertise this graylane and learn the schema versions to write at
	// before any record is read or written (wiring_upgrade.go)
	gate, err := startUpgradeGate(ctx, v, cli, log)
	if err != nil {
		return err
	}
	defer gate.Close()

	set, err := environmentsOf(v)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	views := map[string]*viper.Viper{}
	for i := range set.Envs {
		ev, err := envViper(v, &set.Envs[i])
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		for k, d := range recordsDefaults { // the prefixes checkCollisions compares
			ev.SetDefault(k, d)
		}
		views[set.Envs[i].Name] = ev
	}
	if err := checkCollisions(set, views); err != nil {
		return &exitError{code: 2, err: err}
	}
	multi := v.IsSet("environments")

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if embedded != nil {
		reg.MustRegister(embedded.Collector())
	}
	// the member id the upgrade gate advertises under is ha.id (or
	// host-pid), the same id buildHA campaigns with on the election key
	// (graylanes before the gate are known by that key alone)
	ha, err := buildHA(v, cli, log) // ha.go
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// lead: one election for every environment's engine and the
	// promotions (ha.mode leader); in ha.mode shard the engines share
	// the apps and the election is the promotion controller's alone
	var lead *leadership
	switch ha.mode {
	case "leader":
		lead = newLeadership(ha.elect)
		ha.elect = lead.Elect
	case "shard":
		lead = newLeadership(etcdElect(cli, v.GetString("ha.key"), ha.id, v.GetDuration("ha.ttl"), log.With("component", "election")))
	}
	deps := stackDeps{cli: cli, dataDir: dataDir, metrics: engine.NewMetrics(reg), ha: ha, gate: gate, clock: opts.Clock, log: log, multi: multi}
	stacks := make([]*envStack, 0, len(set.Envs))
	byName := map[string]*envStack{}
	for i := range set.Envs {
		e := &set.Envs[i]
		st, err := buildEnv(ctx, views[e.Name], e, deps)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		defer st.close()
		stacks = append(stacks, st)
		byName[e.Name] = st
	}
	def := byName[set.Default]
	if err := bootstrap(ctx, v, def.parts.source, def.parts.writer, log); err != nil {
		return err
	}

	penvs := map[string]*promotion.Env{}
	for _, st := range stacks {
		penvs[st.name] = st.promotionEnv()
	}
	auditLog := def.recs.audit
	ctl, err := promotion.New(promotion.Config{Set: set, Envs: penvs, Store: promotion.NewStore(cli, v.GetString("environments.prefix")), Clock: opts.Clock,
		Logger: log.With("component", "promotion"),
		Audit: func(ctx context.Context, r audit.Record) {
			if err := auditLog.Append(ctx, r); err != nil {
				log.Error("write audit record", "action", r.Action, "err", err)
			}
		}})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	for _, st := range stacks {
		st.freeze.set(ctl.Freezer(st.name))
	}
	if opts.Controller != nil {
		opts.Controller <- ctl
	}
	for _, st := range stacks {
		if err := startNotifications(ctx, st.v, st.engine.Broker(), log.With("component", "notify", "env", st.name)); err != nil {
			return &exitError{code: 2, err: err}
		}
	}

	tlsCert, tlsKey := v.GetString("http.tls.certFile"), v.GetString("http.tls.keyFile")
	if (tlsCert == "") != (tlsKey == "") {
		return &exitError{code: 2, err: errors.New("http.tls: set both certFile and keyFile (or neither)")}
	}
	sessionTTL := v.GetDuration("http.sessionTTL")
	if sessionTTL <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("http.sessionTTL: %q is not a positive duration", v.GetString("http.sessionTTL"))}
	}
	tokens, err := apiTokens(v, set)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	teams, err := appTeams(v)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if len(tokens) == 0 && !loopback(v.GetString("http.addr")) {
		log.Warn("the API listens beyond loopback without tokens: anyone who reaches it can change releases; set http.token or http.tokens", "addr", v.GetString("http.addr"))
	}
	// readiness: every environment's source, and the embedded etcd
	ready := func(ctx context.Context) error {
		if embedded != nil {
			if err := embedded.Check(ctx); err != nil {
				return err
			}
		}
		for _, st := range stacks {
			if err := st.ready(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	apis := map[string]http.Handler{}
	var root http.Handler
	for _, st := range stacks {
		label := ""
		if multi {
			label = st.name
		}
		api := server.New(server.Config{
			Config: st.cfgw.manager,
			Engine: st.engine, Source: st.parts.source, Writer: st.parts.writer, Gatherer: reg,
			Logger: log.With("component", "api"), Ready: ready, Gray: st.adapt.grayAPI(),
			Records: st.recs.store, AuditLog: auditLog, Denials: def.recs.denials,
			Console: console.Handler(), Version: buildVersion(),
			SessionTTL: sessionTTL, SecureCookies: v.GetBool("http.secureCookies") || tlsCert != "",
			Env: label, Environments: ctl, Teams: teams, Hooks: st.hooks,
		})
		api.SetTokens(tokens)
		apis[st.name] = api.Handler()
		if st == def {
			root = apis[st.name]
		}
	}
	root = server.Route(root, apis)
	addr := v.GetString("http.addr")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http.addr %s: %w", addr, err)
	}
	// Event streams (the console's live pages) never end by themselves:
	// their requests' context is ended a second into a shutdown, after
	// ordinary requests in flight have had the time to finish.
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	httpSrv := &http.Server{Handler: root, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return streams }}
	httpSrv.RegisterOnShutdown(func() { time.AfterFunc(time.Second, endStreams) })
	scheme := "http"
	if tlsCert != "" {
		// load now, so a bad certificate stops graylane with a clear error
		if _, err := tls.LoadX509KeyPair(tlsCert, tlsKey); err != nil {
			ln.Close()
			return &exitError{code: 2, err: fmt.Errorf("http.tls: load %s and %s: %w", tlsCert, tlsKey, err)}
		}
		httpSrv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	var sources []string
	for _, st := range stacks {
		sources = append(sources, st.name+"="+st.parts.source.Name())
	}
	log.Info("graylane serving", "api", scheme+"://"+ln.Addr().String(), "console", scheme+"://"+ln.Addr().String()+"/", "environments", sources, "default", set.Default, "data", dataDir)
	if opts.Serving != nil {
		opts.Serving <- ln.Addr().String()
	}

	g, gctx := errgroup.WithContext(ctx)
	if lead != nil {
		go lead.run(gctx)
	}
	if addr := v.GetString("debug.pprofAddr"); addr != "" {
		stop, err := servePprof(gctx, addr, log)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		defer stop()
	}
	for _, st := range stacks {
		g.Go(func() error { return st.engine.Run(gctx) })
		g.Go(func() error { return st.recs.run(gctx) })
	}
	g.Go(func() error { return gate.Run(gctx) })
	g.Go(func() error { return ctl.Run(gctx) })
	g.Go(func() error {
		if lead == nil {
			ctl.Lead(gctx)
			return nil
		}
		for gctx.Err() == nil {
			lctx, err := lead.Elect(gctx)
			if err != nil {
				continue
			}
			ctl.Lead(lctx)
		}
		return nil
	})
	g.Go(func() error {
		var err error
		if tlsCert != "" {
			err = httpSrv.ServeTLS(ln, tlsCert, tlsKey)
		} else {
			err = httpSrv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := httpSrv.Shutdown(sctx); err != nil {
			// requests still running after 5 s are cut: graylane stops anyway
			log.Warn("HTTP requests still running at shutdown were closed", "err", err)
			httpSrv.Close()
		}
		return nil
	})
	err = g.Wait()
	if v.GetBool("process.stopOnExit") {
		log.Info("graylane stopping; process instances stop with it (process.stopOnExit)")
	} else {
		log.Info("graylane stopped; instances keep running and are adopted at the next start")
	}
	return err
}

// sourceParts is what a config centre contributes to graylane.
type sourceParts struct {
	source configsync.Source
	writer configsync.Writer               // nil: read-only
	ready  func(ctx context.Context) error // extra /readyz check, may be nil
	close  func()
}

// buildSource connects to the config centre holding the releases. Each
// centre's builder lives in its own file (source_<centre>.go).
func buildSource(ctx context.Context, v *viper.Viper, cli *clientv3.Client, dataDir string, log *slog.Logger) (sourceParts, error) {
	log = log.With("component", "source")
	switch t := v.GetString("source.type"); t {
	case "etcd", "":
		s := etcdsource.New(etcdsource.Config{Client: cli, Prefix: v.GetString("etcd.prefix"), Logger: log})
		return sourceParts{source: s, writer: s, close: func() { s.Close() }}, nil
	case "apollo":
		return buildApolloSource(ctx, v, dataDir, log)
	case "nacos":
		return buildNacosSource(ctx, v, cli, dataDir, log)
	default:
		return sourceParts{}, fmt.Errorf("source.type: %q is not a config centre this build supports (etcd, nacos, apollo)", t)
	}
}

// bootstrap writes the configured spec files to the source for apps that
// have no spec yet (the demo of `make run`).
func bootstrap(ctx context.Context, v *viper.Viper, src configsync.Source, w configsync.Writer, log *slog.Logger) error {
	for _, f := range list(v, "bootstrap.specs") {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("bootstrap.specs: %w", err)
		}
		app := appOf(data)
		if app == "" {
			return fmt.Errorf("bootstrap.specs: %s has no app field", f)
		}
		if w == nil {
			return fmt.Errorf("bootstrap.specs: source %s is read-only", src.Name())
		}
		_, err = w.Put(ctx, app, data, configsync.Absent)
		switch {
		case err == nil:
			log.Info("bootstrapped release spec", "app", app, "file", f)
		case errors.Is(err, configsync.ErrConflict):
			log.Info("bootstrap skipped: app already has a spec", "app", app)
		default:
			return fmt.Errorf("bootstrap %s: %w", f, err)
		}
	}
	return nil
}
