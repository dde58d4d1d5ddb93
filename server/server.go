package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/spec"
)

// Engine is what the API needs from the control loop.
type Engine interface {
	App(ctx context.Context, app string) (engine.AppView, error)
	// List answers a page of the apps list from the engine's index.
	List(ctx context.Context, q engine.Query) (engine.Page, error)
	// Changes and SubscribeChanges feed the all-apps event stream.
	Changes(seq uint64) engine.Changes
	SubscribeChanges() (<-chan struct{}, func())
	Command(ctx context.Context, app string, cmd rollout.Command) (engine.CommandResult, error)
	Broker() *engine.Broker
	SourceError() error
	Synced() <-chan struct{}
	Leader() bool
	// Drives reports whether this replica drives app (see engine.Engine).
	Drives(app string) bool
	// ShardStatus is the membership in ha.mode shard (ok false otherwise).
	ShardStatus() (engine.ShardStatus, bool)
	// Observe asks for a pass over app at once, on whichever replica
	// drives it (the observe callback).
	Observe(ctx context.Context, app string) error
}

// Config configures the API.
type Config struct {
	Engine Engine
	// Source is read for the current document when setting a version.
	Source configsync.Source
	// Writer writes specs to the config centre; nil makes the API read-only.
	Writer configsync.Writer
	// Gatherer serves /metrics; nil serves an empty registry.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// CommandTimeout bounds how long a command request waits for the
	// engine (default 15s).
	CommandTimeout time.Duration
	// Ready, if set, adds checks to /readyz (for example other centres).
	Ready func(ctx context.Context) error
	// Tokens, if any, are required on /api/v1 (auth.go); reads need a
	// read or write token, changes a write token.
	Tokens []Token
	// Gray serves the gray documents and the instance registry
	// (instances.go); nil answers those routes with 501.
	Gray GrayService
	// Config serves config-in-step status and history (config.go); nil
	// answers those routes with 501.
	Config ConfigService
	// Records serves revisions, statistics and rollback to a revision
	// (records.go, rollback.go); nil answers those routes with 501 and
	// records no intents.
	Records RecordsService
	// AuditLog, if set, keeps a persistent record of every mutating
	// request (auditlog.go) and serves GET /api/v1/audit.
	AuditLog AuditLog
	// Denials aggregates unauthenticated denials for the audit log; nil
	// writes each one.
	Denials Denials
	// Auditor records every change (audit.go); nil logs them and puts
	// them on the app's event stream (LogAuditor).
	Auditor Auditor
	// Console, if set, serves the web console at / (every path outside
	// /api/, /healthz, /readyz and /metrics).
	Console http.Handler
	// SessionTTL is how long a console session lasts (default 12h).
	SessionTTL time.Duration
	// SecureCookies marks session cookies Secure even on plain HTTP: for
	// graylane behind a TLS-terminating proxy (over TLS they always are).
	SecureCookies bool
	// Version is graylane's version, shown by the console.
	Version string
	// Env names the environment this API serves (environments.go): the
	// one of /api/v1/apps/{app}, or of /api/v1/envs/{env}/apps/{app} for
	// the per-environment APIs Route dispatches to.
	Env string
	// Environments serves the routes across environments (promotions,
	// approvals, freezes, release plans); nil answers them with 501.
	Environments Environments
	// Teams maps apps to the teams they belong to, for tokens scoped to
	// teams (scope.go).
	Teams map[string][]string
	// Hooks serves GET /apps/{app}/hooks (release hook outcomes); nil:
	// 501.
	Hooks HookRecords
}

// Server is the HTTP API.
type Server struct {
	cfg Config
	log *slog.Logger
}

// New returns a Server.
func New(cfg Config) *Server {
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 15 * time.Second
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Auditor == nil {
		la := LogAuditor{Log: cfg.Logger}
		if cfg.Engine != nil {
			la.Broker = cfg.Engine.Broker()
		}
		cfg.Auditor = la
	}
	if cfg.AuditLog != nil {
		cfg.Auditor = StoreAuditor{Store: cfg.AuditLog, Next: cfg.Auditor, Log: cfg.Logger}
	}
	return &Server{cfg: cfg, log: cfg.Logger}
}

// apiError is the JSON error body.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	// Rule names the rule that refused a promotion, an approval or the
	// caller (scope, role, soak, approvals, window, frozen, ...).
	Rule string `json:"rule,omitempty"`
	// Errors lists every field error of a rejected spec.
	Errors []fieldMsg `json:"errors,omitempty"`
}

// statusOf maps an error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, spec.ErrInvalid), errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, engine.ErrNotFound), errors.Is(err, configsync.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, configsync.ErrConflict):
		return http.StatusPreconditionFailed
	case errors.Is(err, errCommandRejected):
		return http.StatusConflict
	case errors.Is(err, configsync.ErrUnsupported), errors.Is(err, errReadOnly):
		return http.StatusMethodNotAllowed
	case errors.Is(err, configsync.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

var (
	errBadRequest      = errors.New("bad request")
	errCommandRejected = errors.New("command rejected")
	errReadOnly        = errors.New("this graylane has no writable config source")
)

func (s *Server) fail(c *gin.Context, err error) {
	code := statusOf(err)
	body := apiError{Error: err.Error(), Field: spec.FieldOf(err)}
	var fe *fieldErr
	if errors.As(err, &fe) {
		body.Field = fe.field
	}
	note(c).err = err.Error()
	var verr *spec.ValidationError
	if errors.As(err, &verr) {
		body.Errors = fieldMsgs(err)
	}
	lvl := slog.LevelWarn
	if code >= 500 {
		lvl = slog.LevelError
	}
	s.log.Log(c.Request.Context(), lvl, "api request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "status", code, "field", body.Field, "err", err)
	c.AbortWithStatusJSON(code, body)
}

type fieldErr struct {
	field string
	err   error
}

func (e *fieldErr) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldErr) Unwrap() error { return e.err }

// Handler returns the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.Router() }

// Router returns the API's gin router (Handler), for tests that enumerate
// its routes.
func (s *Server) Router() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.HandleMethodNotAllowed = true
	r.NoRoute(s.noRoute)
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})))
	r.GET("/api/v1/openapi.json", s.openAPI) // openapi.go
	v1 := r.Group("/api/v1")
	v1.Use(s.auditRequests, s.checkQuery) // auditlog.go, query.go
	read, write := s.authenticate(RoleRead), s.authenticate(RoleWrite)
	v1.GET("/apps", read, s.listApps) // list.go
	v1.GET("/events", read, s.allEvents)
	v1.GET("/health", read, s.health)
	v1.GET("/session", s.getSession) // session.go
	v1.POST("/session", s.login)
	v1.DELETE("/session", s.logout)
	v1.GET("/apps/:app", read, s.getApp)
	v1.GET("/apps/:app/spec", read, s.getSpec) // spec.go
	v1.POST("/apps/:app/validate", read, s.validateSpec)
	v1.PUT("/apps/:app", write, s.putSpec)
	v1.DELETE("/apps/:app", write, s.deleteApp)
	v1.PUT("/apps/:app/version", write, s.putVersion)
	v1.GET("/apps/:app/events", read, s.events)
	v1.POST("/apps/:app/observe", write, s.observe) // observe.go
	for _, cmd := range []rollout.Command{rollout.CmdPromote, rollout.CmdPromoteFull, rollout.CmdPause, rollout.CmdResume, rollout.CmdAbort} {
		v1.POST("/apps/:app/"+string(cmd), write, s.command(cmd))
	}
	v1.POST("/apps/:app/rollback", write, s.rollback) // rollback.go: the command, or back to a revision
	s.grayRoutes(v1)
	s.configRoutes(v1)
	s.recordsRoutes(v1)     // records.go
	s.auditRoutes(v1)       // auditlog.go
	s.environmentRoutes(v1) // environments.go
	return r
}

// noRoute serves the console outside /api/, and answers paths that are
// no endpoint; a POST to an app's unknown command is bad input (400,
// field command).
func (s *Server) noRoute(c *gin.Context) {
	if s.cfg.Console != nil && !strings.HasPrefix(c.Request.URL.Path, "/api/") &&
		(c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead) {
		s.cfg.Console.ServeHTTP(c.Writer, c.Request)
		return
	}
	if c.Request.Method == http.MethodPost {
		if rest, ok := strings.CutPrefix(c.Request.URL.Path, "/api/v1/apps/"); ok {
			if app, cmd, ok := strings.Cut(rest, "/"); ok && spec.CheckApp(app) == nil && !strings.Contains(cmd, "/") {
				c.JSON(http.StatusBadRequest, apiError{Field: "command",
					Error: fmt.Sprintf("%q is not a command (promote, promote-full, pause, resume, abort, rollback)", cmd)})
				return
			}
		}
	}
	c.JSON(http.StatusNotFound, apiError{Error: "no such endpoint: " + c.Request.URL.Path})
}

func (s *Server) readyz(c *gin.Context) {
	h := s.healthOf(c.Request.Context())
	if !h.Ready {
		c.JSON(http.StatusServiceUnavailable, apiError{Error: h.Error})
		return
	}
	c.String(http.StatusOK, "ok ("+h.Role+")\n")
}

// Health is the answer of GET /api/v1/health: /readyz as JSON, always
// 200, for the console's header.
type Health struct {
	Ready bool `json:"ready"`
	// Role is "leader" or "standby", or "shard" in ha.mode shard.
	Role string `json:"role"`
	// Shard is the membership as this replica sees it (ha.mode shard).
	Shard *engine.ShardStatus `json:"shard,omitempty"`
	// Source is the config centre holding the releases.
	Source string `json:"source"`
	// Error says what is not ready ("" when ready).
	Error string `json:"error,omitempty"`
}

func (s *Server) healthOf(ctx context.Context) Health {
	h := Health{Role: "standby", Source: s.cfg.Source.Name()}
	if s.cfg.Engine.Leader() {
		h.Role = "leader"
	}
	if st, ok := s.cfg.Engine.ShardStatus(); ok {
		h.Role, h.Shard = "shard", &st
		if !st.Active {
			h.Error = "not ready: not a member of the shard yet (registering in etcd)"
			return h
		}
	}
	select {
	case <-s.cfg.Engine.Synced():
	default:
		h.Error = "not ready: first read of the config source not finished"
		return h
	}
	if err := s.cfg.Engine.SourceError(); err != nil {
		h.Error = "config source " + s.cfg.Source.Name() + " unavailable: " + err.Error()
		return h
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(ctx); err != nil {
			h.Error = err.Error()
			return h
		}
	}
	h.Ready = true
	return h
}

func (s *Server) health(c *gin.Context) { c.JSON(http.StatusOK, s.healthOf(c.Request.Context())) }

func (s *Server) getApp(c *gin.Context) {
	v, err := s.cfg.Engine.App(c.Request.Context(), c.Param("app"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.detail(c, v))
}

func (s *Server) checkApp(c *gin.Context) (string, bool) {
	app := c.Param("app")
	if err := spec.CheckApp(app); err != nil {
		s.fail(c, &fieldErr{field: "app", err: fmt.Errorf("%w: %v", errBadRequest, err)})
		return "", false
	}
	return app, true
}

// putSpec validates a whole release spec and writes it to the centre.
func (s *Server) putSpec(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	dry, ok := s.dryRun(c) // dryrun.go
	if !ok {
		return
	}
	body, ok := s.readSpec(c) // spec.go
	if !ok {
		return
	}
	if dry {
		s.preview(c, app, body)
		return
	}
	rel, err := parseFor(app, body)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.annotate(c, app, "", map[string]any{"version": rel.Version, "specDigest": rel.Hash(), "ifMatch": c.GetHeader("If-Match")})
	s.write(c, app, body, c.GetHeader("If-Match"), rel.Version)
}

func (s *Server) write(c *gin.Context, app string, data []byte, expect, version string) {
	if s.cfg.Writer == nil {
		s.fail(c, errReadOnly)
		return
	}
	undo, err := s.intent(c, app, data, "apply", 0, version) // records.go
	if err != nil {
		s.fail(c, err)
		return
	}
	en, err := s.cfg.Writer.Put(c.Request.Context(), app, data, expect)
	if err != nil {
		undo()
	}
	s.audit(c, app, "write release spec to "+s.cfg.Source.Name(), err)
	if err != nil {
		s.fail(c, fmt.Errorf("write %s to %s: %w", app, s.cfg.Source.Name(), err))
		return
	}
	s.log.Info("release written to config centre", "app", app, "centre", s.cfg.Source.Name(), "version", en.Version)
	c.JSON(http.StatusOK, gin.H{"app": app, "written": true, "centre": s.cfg.Source.Name(), "documentVersion": en.Version, "revision": en.Revision})
}

func (s *Server) deleteApp(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	if s.cfg.Writer == nil {
		s.fail(c, errReadOnly)
		return
	}
	err := s.cfg.Writer.Delete(c.Request.Context(), app, c.GetHeader("If-Match"))
	s.audit(c, app, "delete release spec from "+s.cfg.Source.Name(), err)
	if err != nil {
		s.fail(c, fmt.Errorf("delete %s from %s: %w", app, s.cfg.Source.Name(), err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"app": app, "deleted": true})
}

type versionBody struct {
	Version string `json:"version"`
}

// putVersion changes only the version of an app's release, keeping the
// rest of the document (and its comments) as the operator wrote it, and
// writes it back with compare-and-swap against the version it read.
func (s *Server) putVersion(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	var body versionBody
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		s.fail(c, &fieldErr{field: "body", err: fmt.Errorf("%w: want {\"version\": \"...\"}: %v", errBadRequest, err)})
		return
	}
	if err := spec.CheckVersion(body.Version); err != nil {
		s.fail(c, &fieldErr{field: "version", err: fmt.Errorf("%w: %v", errBadRequest, err)})
		return
	}
	s.annotate(c, app, "set version "+body.Version, map[string]any{"version": body.Version})
	dry, ok := s.dryRun(c) // dryrun.go
	if !ok {
		return
	}
	if dry {
		en, err := s.cfg.Source.Get(c.Request.Context(), app)
		if err != nil {
			s.fail(c, fmt.Errorf("read %s from %s: %w", app, s.cfg.Source.Name(), err))
			return
		}
		doc, err := SetVersion(en.Data, body.Version)
		if err != nil {
			s.fail(c, fmt.Errorf("%w: the stored spec of %s cannot be edited: %v", errBadRequest, app, err))
			return
		}
		s.preview(c, app, doc)
		return
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		en, err := s.cfg.Source.Get(c.Request.Context(), app)
		if err != nil {
			s.fail(c, fmt.Errorf("read %s from %s: %w", app, s.cfg.Source.Name(), err))
			return
		}
		doc, err := SetVersion(en.Data, body.Version)
		if err != nil {
			s.fail(c, fmt.Errorf("%w: the stored spec of %s cannot be edited: %v", errBadRequest, app, err))
			return
		}
		if _, err := spec.Parse(doc); err != nil {
			s.fail(c, err)
			return
		}
		if s.cfg.Writer == nil {
			s.fail(c, errReadOnly)
			return
		}
		undo, err := s.intent(c, app, doc, "set-version", 0, body.Version) // records.go
		if err != nil {
			s.fail(c, err)
			return
		}
		put, err := s.cfg.Writer.Put(c.Request.Context(), app, doc, en.Version)
		if err != nil {
			undo()
		}
		if errors.Is(err, configsync.ErrConflict) {
			lastErr = err
			continue
		}
		s.audit(c, app, "set version "+body.Version, err)
		if err != nil {
			s.fail(c, fmt.Errorf("write %s to %s: %w", app, s.cfg.Source.Name(), err))
			return
		}
		s.log.Info("version written to config centre", "app", app, "version", body.Version, "centre", s.cfg.Source.Name())
		c.JSON(http.StatusOK, gin.H{"app": app, "version": body.Version, "centre": s.cfg.Source.Name(), "documentVersion": put.Version, "revision": put.Revision})
		return
	}
	s.fail(c, fmt.Errorf("write %s: gave up after repeated concurrent edits: %w", app, lastErr))
}

// SetVersion returns doc with its top-level version field set to v. YAML
// keeps its layout and comments; JSON stays JSON.
func SetVersion(doc []byte, v string) ([]byte, error) {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(trimmed))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return nil, err
		}
		m["version"] = v
		return json.MarshalIndent(m, "", "  ")
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("spec is not a mapping")
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "version" {
			m.Content[i+1].Kind = yaml.ScalarNode
			m.Content[i+1].Tag = "!!str"
			m.Content[i+1].Value = v
			m.Content[i+1].Style = 0
			return encodeYAML(&root)
		}
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "version"},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
	return encodeYAML(&root)
}

func encodeYAML(n *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// command is the handler of POST /apps/{app}/{cmd}.
func (s *Server) command(cmd rollout.Command) gin.HandlerFunc {
	return func(c *gin.Context) {
		if app, ok := s.checkApp(c); ok {
			s.runCommand(c, app, cmd)
		}
	}
}

// runCommand sends cmd to the engine, waits for the pass that processes
// it and answers the app's view.
func (s *Server) runCommand(c *gin.Context, app string, cmd rollout.Command) {
	s.annotate(c, app, string(cmd), map[string]any{"command": string(cmd)})
	ctx, cancel := context.WithTimeout(engine.WithCaller(c.Request.Context(), actor(c), via(c)), s.cfg.CommandTimeout)
	defer cancel()
	res, err := s.cfg.Engine.Command(ctx, app, cmd)
	if err == nil && res.Error != "" {
		s.audit(c, app, string(cmd), fmt.Errorf("%s", res.Error))
	} else {
		s.audit(c, app, string(cmd), err)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if res.Error != "" {
		s.fail(c, fmt.Errorf("%s %s: %w: %s", cmd, app, errCommandRejected, res.Error))
		return
	}
	v, err := s.cfg.Engine.App(c.Request.Context(), app)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.detail(c, v))
}

// events streams an app's status changes and events as Server-Sent Events:
// "event: status" carries the whole app view with its actions (as GET
// /api/v1/apps/{app}), "event: event" one event.
func (s *Server) events(c *gin.Context) {
	app, ok := s.checkApp(c)
	if !ok {
		return
	}
	v, err := s.cfg.Engine.App(c.Request.Context(), app)
	if err != nil {
		s.fail(c, err)
		return
	}
	ch, cancel := s.cfg.Engine.Broker().Subscribe(app)
	defer cancel()
	w := c.Writer
	startSSE(w)
	send := func(m engine.Message) bool {
		if m.Kind == "status" && m.App != nil {
			d := s.detail(c, *m.App)
			return sendSSE(w, m.Kind, struct {
				Kind string     `json:"kind"`
				App  *AppDetail `json:"app"`
			}{m.Kind, &d})
		}
		return sendSSE(w, m.Kind, m)
	}
	if c.Query("history") != "0" {
		for _, m := range s.cfg.Engine.Broker().Recent(app) {
			if !send(m) {
				return
			}
		}
	}
	if !send(engine.Message{Kind: "status", App: &v}) {
		return
	}
	// Only the driving replica's passes publish statuses; the others
	// follow the state records instead (the apps index), so their stream
	// is live too.
	changed, stop := s.cfg.Engine.SubscribeChanges()
	defer stop()
	seq := s.cfg.Engine.Changes(^uint64(0)).Seq
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-c.Request.Context().Done():
			return
		case m := <-ch:
			if !send(m) {
				return
			}
		case <-changed:
			chg := s.cfg.Engine.Changes(seq)
			seq = chg.Seq
			if s.cfg.Engine.Drives(app) || !touches(chg, app) {
				continue
			}
			v, err := s.cfg.Engine.App(c.Request.Context(), app)
			if err == nil && !send(engine.Message{Kind: "status", App: &v}) {
				return
			}
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			w.Flush()
		}
	}
}

// touches reports whether chg may concern app.
func touches(chg engine.Changes, app string) bool {
	if chg.Reset {
		return true
	}
	for _, sm := range chg.Changed {
		if sm.App == app {
			return true
		}
	}
	return false
}
