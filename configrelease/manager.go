package configrelease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// GrayDocuments is implemented by centres whose clients find a
// version-bound copy by presenting a label rather than by location
// (configsync/apollo: a gray branch whose rule matches the label). The
// Manager uses it for gray placements when the centre's Documents has it.
type GrayDocuments interface {
	// WriteGray makes data the copy that clients presenting label read at
	// loc. Idempotent.
	WriteGray(ctx context.Context, loc configsync.Location, label string, data []byte) error
	// ReadGray returns what a client presenting label reads at loc, or an
	// error wrapping configsync.ErrNotFound when it gets no gray copy.
	ReadGray(ctx context.Context, loc configsync.Location, label string) (configsync.Doc, error)
	// DeleteGray removes the copy bound to label; a missing copy (or one
	// bound to another label) is left alone and is not an error.
	DeleteGray(ctx context.Context, loc configsync.Location, label string) error
}

// Defaults of Config.
const (
	DefaultDriftInterval   = 3 * time.Second
	DefaultReadBackTimeout = 5 * time.Second
	DefaultOpTimeout       = 15 * time.Second
	DefaultProbeTimeout    = time.Second
	maxBackoff             = 15 * time.Second
)

// Config configures a Manager.
type Config struct {
	// Store keeps history and state (required).
	Store Store
	// Centres are the config centres targets may name, one Documents per
	// centre ("etcd", "nacos", "apollo"). A target on a centre that is not
	// configured waits at the config gate with an error saying so.
	Centres []configsync.Documents
	// Logger defaults to discarding (logx.OrDiscard).
	Logger *slog.Logger
	// Clock stamps history, retries and drift (default the real clock).
	Clock clock.Clock
	// DriftInterval is how often stable and gray copies are read back to
	// detect edits made behind graylane's back (DefaultDriftInterval).
	DriftInterval time.Duration
	// ReadBackTimeout bounds waiting for a write to read back
	// (DefaultReadBackTimeout); centres whose reads lag (Polaris ~1 s)
	// need a few seconds.
	ReadBackTimeout time.Duration
	// OpTimeout bounds one placement's write and read-back
	// (DefaultOpTimeout).
	OpTimeout time.Duration
	// ProbeTimeout bounds one instance report request
	// (DefaultProbeTimeout).
	ProbeTimeout time.Duration
	// HTTPClient asks instances for their reports (default: a private one).
	HTTPClient *http.Client
}

// Manager keeps apps' bound config in step with their releases: it binds
// release identities (Prepare), writes each identity's config where its
// instances read it and reads it back (Reconcile), asks instances which
// config they loaded, detects and repairs drift, and keeps the history.
// It is safe for concurrent use; passes over one app must not overlap
// (the engine's work queue guarantees it).
type Manager struct {
	cfg     Config
	log     *slog.Logger
	centres map[string]configsync.Documents
	probe   prober

	mu   sync.Mutex
	apps map[string]*appMem
}

type appMem struct {
	retry     map[string]*retryState
	drift     map[string]Drift
	missing   map[string]time.Time // placement key -> first read as missing
	lastDrift time.Time
	txnSeen   string
	view      *View
}

type retryState struct {
	attempts int
	next     time.Time
	err      string
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("configrelease: a Store is required")
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.DriftInterval <= 0 {
		cfg.DriftInterval = DefaultDriftInterval
	}
	if cfg.ReadBackTimeout <= 0 {
		cfg.ReadBackTimeout = DefaultReadBackTimeout
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, centres: map[string]configsync.Documents{}, apps: map[string]*appMem{},
		probe: prober{client: cfg.HTTPClient, timeout: cfg.ProbeTimeout}}
	for _, d := range cfg.Centres {
		if d != nil {
			m.centres[d.Centre()] = d
		}
	}
	return m, nil
}

func (m *Manager) mem(app string) *appMem {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.apps[app]
	if a == nil {
		a = &appMem{retry: map[string]*retryState{}, drift: map[string]Drift{}, missing: map[string]time.Time{}}
		m.apps[app] = a
	}
	return a
}

// Forget drops an app's in-memory state (the app was deleted). Its
// history and the config in the centres are kept.
func (m *Manager) Forget(app string) {
	m.mu.Lock()
	delete(m.apps, app)
	m.mu.Unlock()
}

// Prepare resolves and validates rel's config section (reading files given
// by contentRef) and returns the release identity rel's instances run as:
// rel.Version when the config is the one that version was first released
// with (or it has none yet: the config is bound to it now), else
// "<version>_cfg<8 hex of the digest>" (a config-only change). Every
// identity is recorded in the history with its files before it is
// returned. Invalid config returns a *spec.ValidationError naming the file
// and the path, and nothing is recorded.
func (m *Manager) Prepare(ctx context.Context, rel *spec.Release) (string, error) {
	if rel.Config == nil {
		return rel.Version, nil
	}
	b, err := Resolve(ctx, rel.App, rel.Config, m.cfg.Store)
	if err != nil {
		return "", err
	}
	bound, ok, err := m.cfg.Store.Entry(ctx, rel.App, rel.Version)
	if err != nil {
		return "", err
	}
	boundDigest := ""
	if ok {
		boundDigest = bound.Bundle.Digest
	}
	id := Identity(rel.Version, b.Digest, boundDigest)
	if err := spec.CheckVersion(id); err != nil {
		return "", &spec.ValidationError{Errors: []spec.FieldError{{Path: "version", Msg: fmt.Sprintf("with a config change the release identity %s %v (%v): use a version of at most %d characters", id, err, errInvalidIdentity, 128-len(IdentitySeparator)-identityDigestLen)}}}
	}
	if id == rel.Version && ok {
		return id, nil
	}
	if id != rel.Version {
		if _, ok, err := m.cfg.Store.Entry(ctx, rel.App, id); err != nil || ok {
			return id, err
		}
	}
	e := HistoryEntry{App: rel.App, Identity: id, Version: rel.Version, Bundle: b, BoundAt: m.cfg.Clock.Now()}
	if err := m.cfg.Store.PutEntry(ctx, e, rel.Version); err != nil {
		return "", err
	}
	m.log.Info("config bound to release identity", "app", rel.App, "identity", id, "version", rel.Version, "digest", configwire.Short(b.Digest), "files", len(b.Files))
	return id, nil
}

// Pass is one reconcile pass's input.
type Pass struct {
	App string
	// Spec is the release in force (Spec.Config set).
	Spec *spec.Release
	// Identity is Prepare's answer for Spec.
	Identity string
	// Status is the persisted rollout status, before this pass plans.
	Status rollout.Status
	// Instances as the backend observes them (versions are identities).
	Instances []adapters.Instance
}

// Result is what a pass found and did.
type Result struct {
	// Gate feeds the planner (rollout.Input.Config).
	Gate *rollout.ConfigGate
	// Instances are the observed instances with MetaChecksum (or
	// MetaReportError) added.
	Instances []adapters.Instance
	// Events happened in this pass (writes, drift, recovery).
	Events []rollout.Event
	// RequeueAfter asks for the next pass (retries, read-backs, drift).
	RequeueAfter time.Duration
}

// Resolve reads and validates rel's config section (files given by
// contentRef included) and returns its bundle, writing nothing: the check
// a rollback to a revision or a dry-run makes. Invalid config returns a
// *spec.ValidationError.
func (m *Manager) Resolve(ctx context.Context, rel *spec.Release) (Bundle, error) {
	return Resolve(ctx, rel.App, rel.Config, m.cfg.Store)
}

// History lists an app's config versions, newest first.
func (m *Manager) History(ctx context.Context, app string) ([]HistoryEntry, error) {
	return m.cfg.Store.History(ctx, app)
}

// Entry returns one config version of an app (ok false when unknown).
func (m *Manager) Entry(ctx context.Context, app, identity string) (HistoryEntry, bool, error) {
	return m.cfg.Store.Entry(ctx, app, identity)
}

// Reconcile brings the centres in line with the layout in.Status implies,
// reads every write back, asks the instances which config they loaded,
// checks for drift, and reports the gate. Failed writes are retried with
// back-off on later passes; the write-ahead record (State.Txn) is saved
// before any centre is touched.
func (m *Manager) Reconcile(ctx context.Context, in Pass) (Result, error) {
	res, err := m.reconcile(ctx, in)
	if err != nil {
		a := m.mem(in.App)
		m.mu.Lock()
		if a.view == nil {
			a.view = &View{Identity: in.Identity}
		}
		a.view.Error = err.Error()
		a.view.UpdatedAt = m.cfg.Clock.Now()
		m.mu.Unlock()
	}
	return res, err
}

// reconcile is one pass: load the state and the layout the status
// implies, recover an interrupted write, check drift now and then, write
// what is pending, tell the gate, and ask the instances what they loaded.
func (m *Manager) reconcile(ctx context.Context, in Pass) (Result, error) {
	cfg := in.Spec.Config
	a := m.mem(in.App)
	now := m.cfg.Clock.Now()
	log := m.log.With("app", in.App)
	var res Result

	state, err := m.cfg.Store.LoadState(ctx, in.App)
	if err != nil {
		return res, fmt.Errorf("config of %s: %w", in.App, err)
	}
	bundles, err := m.loadBundles(ctx, in)
	if err != nil {
		return res, fmt.Errorf("config of %s: %w", in.App, err)
	}
	lay, stableB, grayB := planLayout(in.Status, in.Identity, bundles)
	res.Events = append(res.Events, m.recoverTxn(&state, lay, a, log)...)
	want, err := desired(in.App, cfg, lay, stableB, grayB, state.Applied)
	if err != nil {
		return res, fmt.Errorf("config of %s: %w", in.App, err)
	}
	// drift: re-read what is believed verified, now and then
	if now.Sub(a.lastDrift) >= m.cfg.DriftInterval && state.Txn == nil {
		a.lastDrift = now
		res.Events = append(res.Events, m.checkDrift(ctx, in.App, cfg, want, state.Applied, a)...)
	}
	if err := m.write(ctx, in, &state, want, lay, bundles, a, log, &res); err != nil {
		return res, err
	}
	g := planGate(cfg, lay, stableB, grayB, bundles, want, state.Applied)
	g.Waiting = m.waiting(want, state.Applied, a, m.cfg.Clock.Now())
	res.Instances = m.loaded(ctx, cfg, g, in.Instances)
	res.Gate = g
	if res.RequeueAfter == 0 || res.RequeueAfter > m.cfg.DriftInterval {
		res.RequeueAfter = m.cfg.DriftInterval
	}
	m.setView(in, a, lay, g, want, state, now)
	return res, nil
}

// loaded asks every instance which config it loaded, counts in g.Loaded
// the ready ones reporting their identity's digest, and returns the
// instances with MetaChecksum (or MetaReportError) added.
func (m *Manager) loaded(ctx context.Context, cfg *spec.Config, g *rollout.ConfigGate, insts []adapters.Instance) []adapters.Instance {
	reports, perrs := m.probe.probe(ctx, cfg.EffectiveReportPath(), insts)
	out := make([]adapters.Instance, len(insts))
	for i, inst := range insts {
		meta := make(map[string]string, len(inst.Meta)+1)
		for k, v := range inst.Meta {
			meta[k] = v
		}
		if r, ok := reports[inst.ID]; ok {
			meta[MetaChecksum] = r.Checksum
			if inst.Ready && r.Checksum != "" && r.Checksum == g.Digests[inst.Version] {
				g.Loaded[inst.Version]++
			}
		} else if e, ok := perrs[inst.ID]; ok {
			meta[MetaReportError] = e
		}
		inst.Meta = meta
		out[i] = inst
	}
	return out
}
