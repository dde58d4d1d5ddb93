package configrelease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/internal/randid"
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

// Drift is a placement whose content changed behind graylane's back.
type Drift struct {
	Placement Placement `json:"placement"`
	Identity  string    `json:"identity"`
	// Want is the SHA-256 graylane wrote; Got what the centre serves now
	// ("" when the file is gone).
	Want  string    `json:"want"`
	Got   string    `json:"got"`
	Diff  string    `json:"diff,omitempty"`
	Since time.Time `json:"since"`
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

// View is an app's config status for the API.
type View struct {
	// Identity is the release identity of the spec in force.
	Identity string `json:"identity"`
	// Layout is what the stable locations and version-bound copies should
	// hold now.
	Layout Layout `json:"layout"`
	// Gate is what the planner was told.
	Gate *rollout.ConfigGate `json:"gate"`
	// Placements shows every placement with what it should hold.
	Placements []PlacementStatus `json:"placements"`
	// Pending is the dual-write in progress, if any.
	Pending *Txn `json:"pending,omitempty"`
	// Drift lists placements changed behind graylane's back.
	Drift []Drift `json:"drift,omitempty"`
	// Error is the last pass's error, if it failed.
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// PlacementStatus is one placement in View.
type PlacementStatus struct {
	Placement
	Identity string `json:"identity"`
	// Want is the file digest it should hold ("" = absent).
	Want     string    `json:"want"`
	Verified bool      `json:"verified"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	Retry    time.Time `json:"retryAt,omitempty"`
}

// Resolve reads and validates rel's config section (files given by
// contentRef included) and returns its bundle, writing nothing: the check
// a rollback to a revision or a dry-run makes. Invalid config returns a
// *spec.ValidationError.
func (m *Manager) Resolve(ctx context.Context, rel *spec.Release) (Bundle, error) {
	return Resolve(ctx, rel.App, rel.Config, m.cfg.Store)
}

// View returns the app's config status, nil before its first pass.
func (m *Manager) View(app string) *View {
	a := m.mem(app)
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.view == nil {
		return nil
	}
	v := *a.view
	return &v
}

// History lists an app's config versions, newest first.
func (m *Manager) History(ctx context.Context, app string) ([]HistoryEntry, error) {
	return m.cfg.Store.History(ctx, app)
}

// Entry returns one config version of an app (ok false when unknown).
func (m *Manager) Entry(ctx context.Context, app, identity string) (HistoryEntry, bool, error) {
	return m.cfg.Store.Entry(ctx, app, identity)
}

// wanted is a placement with the file it should hold (nil: absent).
type wanted struct {
	p        Placement
	file     *configwire.File
	identity string
}

// op is one write or delete to do, in a phase: 1 gray writes, 2 stable
// writes and deletes, 3 gray deletes. A phase starts only when the earlier
// ones are all verified, so a rollback pins the serving version's config
// before the stable config changes, and a promotion removes the gray copy
// only after the stable config holds it.
type op struct {
	key   string
	w     wanted
	phase int
}

// layout works out what the stable locations and the version-bound copies
// should hold for st.
func (m *Manager) layout(ctx context.Context, in Pass) (Layout, *Bundle, *Bundle, map[string]*Bundle, error) {
	st := in.Status
	stableID, canary := st.StableVersion, st.CanaryVersion
	if stableID == "" {
		stableID = in.Identity
	}
	bundles := map[string]*Bundle{}
	for _, id := range []string{stableID, canary, st.PreviousVersion, in.Identity} {
		if id == "" || bundles[id] != nil {
			continue
		}
		e, ok, err := m.cfg.Store.Entry(ctx, in.App, id)
		if err != nil {
			return Layout{}, nil, nil, nil, err
		}
		if ok {
			b := e.Bundle
			bundles[id] = &b
		}
	}
	var lay Layout
	var stableB, grayB *Bundle
	if canary != "" && st.Rollback {
		// a rollback: the target's config becomes stable; the version still
		// serving keeps its own config on a version-bound copy until
		// traffic has moved
		lay.StableIdentity, stableB = canary, bundles[canary]
		lay.GrayIdentity, grayB = stableID, bundles[stableID]
	} else {
		lay.StableIdentity, stableB = stableID, bundles[stableID]
		if canary != "" {
			lay.GrayIdentity, grayB = canary, bundles[canary]
		}
	}
	if grayB != nil && stableB != nil && grayB.Digest == stableB.Digest {
		lay.GrayIdentity, grayB = "", nil // its instances read the stable config
	}
	if grayB == nil {
		lay.GrayIdentity = ""
	}
	if stableB != nil {
		lay.StableDigest = stableB.Digest
	}
	if grayB != nil {
		lay.GrayDigest = grayB.Digest
	}
	return lay, stableB, grayB, bundles, nil
}

// desired lists every placement the layout needs, by key.
func desired(app string, cfg *spec.Config, lay Layout, stableB, grayB *Bundle, applied map[string]AppliedPlacement) (map[string]wanted, error) {
	out := map[string]wanted{}
	if stableB != nil {
		ps, err := Placements(app, cfg, stableB.Files, RoleStable, "")
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out[p.Key()] = wanted{p: p, file: stableB.File(p.File), identity: lay.StableIdentity}
		}
		// files that the stable config no longer has, at targets that
		// still exist, are deleted
		for k, ap := range applied {
			if _, ok := out[k]; ok || ap.Placement.Role != RoleStable {
				continue
			}
			if inScope(app, cfg, ap.Placement) {
				out[k] = wanted{p: ap.Placement, identity: lay.StableIdentity}
			}
		}
	}
	if grayB != nil {
		ps, err := Placements(app, cfg, grayB.Files, RoleGray, lay.GrayIdentity)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			out[p.Key()] = wanted{p: p, file: grayB.File(p.File), identity: lay.GrayIdentity}
		}
	}
	// every other gray copy graylane made goes
	for k, ap := range applied {
		if _, ok := out[k]; !ok && ap.Placement.Role == RoleGray {
			out[k] = wanted{p: ap.Placement, identity: ap.Placement.Identity}
		}
	}
	return out, nil
}

// inScope reports whether a stable placement graylane wrote belongs to a
// target the spec still has (else it is forgotten, not deleted).
func inScope(app string, cfg *spec.Config, p Placement) bool {
	if p.Target >= len(cfg.Targets) {
		return false
	}
	t := &cfg.Targets[p.Target]
	if t.Centre() != p.Centre || !t.Applies(p.File) {
		return false
	}
	loc, err := configwire.StableLocation(app, t, p.File)
	return err == nil && loc == p.Loc
}

func (w wanted) sha() string {
	if w.file == nil {
		return ""
	}
	return w.file.SHA256
}

func phaseOf(w wanted) int {
	switch {
	case w.p.Role == RoleGray && w.file != nil:
		return 1
	case w.p.Role == RoleStable:
		return 2
	default:
		return 3
	}
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
	lay, stableB, grayB, bundles, err := m.layout(ctx, in)
	if err != nil {
		return res, fmt.Errorf("config of %s: %w", in.App, err)
	}
	if state.Txn != nil && a.txnSeen != state.Txn.ID {
		// a write this process did not start: graylane died in the middle
		// of it. Everything it may have touched is unknown until read back.
		a.txnSeen = state.Txn.ID
		for _, o := range state.Txn.Ops {
			ap := state.Applied[o.Key]
			ap.Placement, ap.Verified = o.Placement, false
			state.Applied[o.Key] = ap
		}
		what := "finishing it"
		if state.Txn.To != lay {
			what = "the release moved on to " + lay.String() + ": undoing it"
		}
		res.Events = append(res.Events, rollout.Event{Type: rollout.Warning, Reason: "ConfigRecovery",
			Message: fmt.Sprintf("found an interrupted config write %s (%s -> %s, started %s): %s", state.Txn.ID, state.Txn.From, state.Txn.To, state.Txn.StartedAt.Format(time.RFC3339), what)})
		log.Warn("recovering an interrupted config write", "txn", state.Txn.ID, "from", state.Txn.From.String(), "to", state.Txn.To.String(), "now", lay.String())
	}
	want, err := desired(in.App, cfg, lay, stableB, grayB, state.Applied)
	if err != nil {
		return res, fmt.Errorf("config of %s: %w", in.App, err)
	}

	// drift: re-read what is believed verified, now and then
	if now.Sub(a.lastDrift) >= m.cfg.DriftInterval && state.Txn == nil {
		a.lastDrift = now
		res.Events = append(res.Events, m.checkDrift(ctx, in.App, cfg, want, state.Applied, a)...)
	}

	ops := pending(want, state.Applied)
	if len(ops) > 0 {
		if err := m.writeAhead(ctx, in.App, &state, ops, lay, a); err != nil {
			return res, err
		}
		waiting, evs := m.execute(ctx, in.App, &state, ops, a, log)
		res.Events = append(res.Events, evs...)
		if left := pending(want, state.Applied); len(left) == 0 {
			state.Txn = nil
			res.Events = append(res.Events, m.settled(ctx, in.App, state.Layout, lay, bundles)...)
			state.Layout = lay
		} else {
			res.RequeueAfter = m.retryAfter(a, now)
			_ = waiting
		}
		if err := m.cfg.Store.SaveState(ctx, in.App, state); err != nil {
			return res, fmt.Errorf("config of %s: %w", in.App, err)
		}
	} else if state.Txn != nil || state.Layout != lay {
		if state.Layout != lay {
			res.Events = append(res.Events, m.settled(ctx, in.App, state.Layout, lay, bundles)...)
		}
		state.Txn, state.Layout = nil, lay
		if err := m.cfg.Store.SaveState(ctx, in.App, state); err != nil {
			return res, fmt.Errorf("config of %s: %w", in.App, err)
		}
	}

	// the gate
	g := &rollout.ConfigGate{Digests: map[string]string{}, Placed: map[string]bool{}, Loaded: map[string]int{}, Verify: cfg.VerifiesInstances()}
	for id, b := range bundles {
		g.Digests[id] = b.Digest
	}
	stableOK := stableB != nil && allVerified(want, state.Applied, RoleStable)
	grayOK := grayB != nil && allVerified(want, state.Applied, RoleGray)
	// the stable config counts as in place only once nothing else is left
	// to do either (a copy to remove, a repair): a Healthy release leaves
	// every centre in the same, final state
	if stableOK && len(pending(want, state.Applied)) == 0 {
		g.StableDigest = stableB.Digest
	}
	for id, d := range g.Digests {
		g.Placed[id] = (id == lay.GrayIdentity && grayOK) || (stableOK && d == stableB.Digest)
	}
	g.Waiting = m.waiting(want, state.Applied, a, m.cfg.Clock.Now())

	// which config did the instances load?
	reports, perrs := m.probe.probe(ctx, cfg.EffectiveReportPath(), in.Instances)
	res.Instances = make([]adapters.Instance, len(in.Instances))
	for i, inst := range in.Instances {
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
		res.Instances[i] = inst
	}
	res.Gate = g
	if res.RequeueAfter == 0 || res.RequeueAfter > m.cfg.DriftInterval {
		res.RequeueAfter = m.cfg.DriftInterval
	}
	m.setView(in, a, lay, g, want, state, now)
	return res, nil
}

// pending lists the placements whose verified content is not what they
// should hold.
func pending(want map[string]wanted, applied map[string]AppliedPlacement) []op {
	var ops []op
	for k, w := range want {
		ap, ok := applied[k]
		if w.file == nil && !ok {
			continue // never written, nothing to delete
		}
		if ok && ap.Verified && ap.SHA256 == w.sha() {
			continue
		}
		ops = append(ops, op{key: k, w: w, phase: phaseOf(w)})
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].phase != ops[j].phase {
			return ops[i].phase < ops[j].phase
		}
		return ops[i].key < ops[j].key
	})
	return ops
}

func allVerified(want map[string]wanted, applied map[string]AppliedPlacement, role string) bool {
	for k, w := range want {
		if w.p.Role != role || w.file == nil {
			continue
		}
		if ap, ok := applied[k]; !ok || !ap.Verified || ap.SHA256 != w.sha() {
			return false
		}
	}
	return true
}

// writeAhead records the intent before any centre is touched: the
// placements to write become unknown (unverified) and the Txn lists them.
func (m *Manager) writeAhead(ctx context.Context, app string, state *State, ops []op, lay Layout, a *appMem) error {
	txn := state.Txn
	if txn == nil || txn.To != lay {
		txn = &Txn{ID: randid.Hex(6), StartedAt: m.cfg.Clock.Now(), From: state.Layout, To: lay}
	}
	known := map[string]bool{}
	for _, o := range txn.Ops {
		known[o.Key] = true
	}
	changed := txn != state.Txn
	for _, o := range ops {
		if !known[o.key] {
			txn.Ops = append(txn.Ops, TxnOp{Key: o.key, Placement: o.w.p, SHA256: o.w.sha()})
			changed = true
		}
		ap := state.Applied[o.key]
		if ap.Verified {
			ap.Verified = false
			changed = true
		}
		ap.Placement = o.w.p
		state.Applied[o.key] = ap
	}
	if !changed {
		return nil
	}
	state.Txn = txn
	a.txnSeen = txn.ID
	if err := m.cfg.Store.SaveState(ctx, app, *state); err != nil {
		return fmt.Errorf("config of %s: record the write before making it: %w", app, err)
	}
	return nil
}

// execute runs the ops phase by phase; it stops at the first phase that
// does not fully succeed. It returns whether it waits on something.
func (m *Manager) execute(ctx context.Context, app string, state *State, ops []op, a *appMem, log *slog.Logger) (bool, []rollout.Event) {
	var events []rollout.Event
	now := m.cfg.Clock.Now()
	for phase := 1; phase <= 3; phase++ {
		var batch []op
		for _, o := range ops {
			if o.phase == phase {
				batch = append(batch, o)
			}
		}
		if len(batch) == 0 {
			continue
		}
		type result struct {
			o   op
			sha string
			err error
		}
		results := make([]result, len(batch))
		var wg sync.WaitGroup
		for i, o := range batch {
			if r := a.retry[o.key]; r != nil && now.Before(r.next) {
				results[i] = result{o: o, err: errBackingOff}
				continue
			}
			wg.Add(1)
			go func(i int, o op) {
				defer wg.Done()
				octx, cancel := context.WithTimeout(ctx, m.cfg.OpTimeout)
				defer cancel()
				sha, err := m.applyOne(octx, o.w)
				results[i] = result{o: o, sha: sha, err: err}
			}(i, o)
		}
		wg.Wait()
		failed := false
		for _, r := range results {
			if r.err != nil {
				failed = true
				if errors.Is(r.err, errBackingOff) {
					continue
				}
				rs := a.retry[r.o.key]
				if rs == nil {
					rs = &retryState{}
					a.retry[r.o.key] = rs
				}
				rs.attempts++
				rs.err = r.err.Error()
				rs.next = m.cfg.Clock.Now().Add(backoff(rs.attempts))
				log.Warn("config write failed; retrying with back-off", "placement", r.o.w.p.String(), "file", r.o.w.p.File, "attempt", rs.attempts, "retryIn", backoff(rs.attempts), "err", r.err)
				if rs.attempts == 1 || rs.attempts%10 == 0 {
					events = append(events, rollout.Event{Type: rollout.Warning, Reason: "ConfigWriteFailed",
						Message: fmt.Sprintf("%s of %s at %s: %v (attempt %d, retrying)", verb(r.o.w), r.o.w.p.File, r.o.w.p, r.err, rs.attempts)})
				}
				continue
			}
			delete(a.retry, r.o.key)
			if r.o.w.file == nil {
				delete(state.Applied, r.o.key)
			} else {
				state.Applied[r.o.key] = AppliedPlacement{Placement: r.o.w.p, Identity: r.o.w.identity, SHA256: r.sha, Verified: true, At: m.cfg.Clock.Now()}
			}
			delete(a.drift, r.o.key)
			if state.Txn != nil {
				for i := range state.Txn.Ops {
					if state.Txn.Ops[i].Key == r.o.key {
						state.Txn.Ops[i].Done = true
					}
				}
			}
			log.Info("config placed and read back", "placement", r.o.w.p.String(), "file", r.o.w.p.File, "identity", r.o.w.identity, "action", verb(r.o.w))
		}
		if failed {
			return true, events
		}
	}
	return false, events
}

var errBackingOff = errors.New("backing off")

func verb(w wanted) string {
	if w.file == nil {
		return "delete"
	}
	return "write"
}

func backoff(attempt int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (m *Manager) retryAfter(a *appMem, now time.Time) time.Duration {
	next := 500 * time.Millisecond
	for _, r := range a.retry {
		if d := r.next.Sub(now); d > 0 && d < next {
			next = d
		}
	}
	return next
}

// applyOne makes one placement hold w.file (or nothing) and reads it back.
// It returns the file digest read back.
func (m *Manager) applyOne(ctx context.Context, w wanted) (string, error) {
	docs, ok := m.centres[w.p.Centre]
	if !ok {
		return "", fmt.Errorf("no %s centre is configured in graylane (see docs/config.md)", w.p.Centre)
	}
	cur, rerr := m.read(ctx, docs, w.p)
	if sha, ok := m.matches(w, cur, rerr); ok {
		return sha, nil
	}
	if rerr != nil && !isNotFound(rerr) {
		return "", fmt.Errorf("read before %s: %w", verb(w), rerr)
	}
	var err error
	switch gd, gray := docs.(GrayDocuments); {
	case w.p.Label != "" && !gray:
		return "", fmt.Errorf("%s has no label-selected copies", w.p.Centre)
	case w.p.Label != "" && w.file == nil:
		err = gd.DeleteGray(ctx, w.p.Loc, w.p.Label)
	case w.p.Label != "":
		err = gd.WriteGray(ctx, w.p.Loc, w.p.Label, []byte(w.file.Content))
	case w.file == nil:
		err = docs.Delete(ctx, w.p.Loc, cur.Version)
	default:
		expect := cur.Version
		if rerr != nil {
			expect = configsync.Absent
		}
		_, err = docs.Write(ctx, w.p.Loc, []byte(w.file.Content), expect)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", verb(w), err)
	}
	// read back until the centre serves it, for at most ReadBackTimeout
	rctx, cancel := context.WithTimeout(ctx, m.cfg.ReadBackTimeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		cur, rerr = m.read(ctx, docs, w.p)
		if sha, ok := m.matches(w, cur, rerr); ok {
			return sha, nil
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			got := "an error: " + fmt.Sprint(rerr)
			if rerr == nil {
				d, _ := configwire.FileDigest(w.p.Format, cur.Data)
				got = "digest " + configwire.Short(d)
			}
			return "", fmt.Errorf("%s done, but reading it back after %s still shows %s", verb(w), m.cfg.ReadBackTimeout, got)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("read back: %w", ctx.Err())
		case <-rctx.Done():
		case <-t.C:
		}
	}
}

// read reads a placement as the centre's clients see it.
func (m *Manager) read(ctx context.Context, docs configsync.Documents, p Placement) (configsync.Doc, error) {
	if p.Label != "" {
		gd, ok := docs.(GrayDocuments)
		if !ok {
			return configsync.Doc{}, fmt.Errorf("%s has no label-selected copies", p.Centre)
		}
		return gd.ReadGray(ctx, p.Loc, p.Label)
	}
	if rb, ok := docs.(configsync.ReadBacker); ok {
		return rb.ReadBack(ctx, p.Loc)
	}
	return docs.Read(ctx, p.Loc)
}

// matches reports whether what was read is what w wants, and its digest.
func (m *Manager) matches(w wanted, doc configsync.Doc, err error) (string, bool) {
	if w.file == nil {
		return "", isNotFound(err)
	}
	if err != nil {
		return "", false
	}
	sha, derr := configwire.FileDigest(w.p.Format, doc.Data)
	return sha, derr == nil && sha == w.file.SHA256
}

// missingConfirm is how long a placement must keep reading as missing
// before that counts as drift.
const missingConfirm = 4 * time.Second

// checkDrift re-reads every verified placement that should hold a file.
func (m *Manager) checkDrift(ctx context.Context, app string, cfg *spec.Config, want map[string]wanted, applied map[string]AppliedPlacement, a *appMem) []rollout.Event {
	var events []rollout.Event
	type found struct {
		key string
		w   wanted
		got string
		doc configsync.Doc
		err error
	}
	var mu sync.Mutex
	var fs []found
	var wg sync.WaitGroup
	for k, w := range want {
		ap, ok := applied[k]
		if w.file == nil || !ok || !ap.Verified || ap.SHA256 != w.sha() {
			continue
		}
		docs, ok := m.centres[w.p.Centre]
		if !ok {
			continue
		}
		wg.Add(1)
		go func(k string, w wanted) {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, m.cfg.OpTimeout)
			defer cancel()
			doc, err := m.read(rctx, docs, w.p)
			if err != nil && !isNotFound(err) {
				return // unreachable: not drift
			}
			got := ""
			if err == nil {
				got, _ = configwire.FileDigest(w.p.Format, doc.Data)
			}
			mu.Lock()
			fs = append(fs, found{key: k, w: w, got: got, doc: doc, err: err})
			mu.Unlock()
		}(k, w)
	}
	wg.Wait()
	sort.Slice(fs, func(i, j int) bool { return fs[i].key < fs[j].key })
	repair := cfg.DriftPolicy() == spec.DriftRepair
	now := m.cfg.Clock.Now()
	for _, f := range fs {
		if f.err == nil {
			delete(a.missing, f.key)
		} else if _, was := a.drift[f.key]; !was {
			// a file that reads as missing is drift only if it stays
			// missing: some servers (Polaris) answer "not found" for a
			// dataId being updated
			first, seen := a.missing[f.key]
			if !seen {
				a.missing[f.key] = now
				continue
			}
			if now.Sub(first) < missingConfirm {
				continue
			}
		}
		if f.got == f.w.sha() {
			if _, was := a.drift[f.key]; was {
				delete(a.drift, f.key)
				events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigDriftResolved", Message: fmt.Sprintf("%s of %s holds the config graylane wrote again", f.w.p, f.w.identity)})
			}
			continue
		}
		d := Drift{Placement: f.w.p, Identity: f.w.identity, Want: f.w.sha(), Got: f.got, Since: m.cfg.Clock.Now()}
		gotText := ""
		if f.err == nil {
			gotText = string(f.doc.Data)
		}
		d.Diff = Diff(f.w.file.Content, gotText)
		prev, seen := a.drift[f.key]
		if seen && prev.Got == d.Got {
			d.Since = prev.Since
		}
		a.drift[f.key] = d
		if !seen || prev.Got != d.Got {
			what := "changed"
			if f.err != nil {
				what = "deleted"
			}
			msg := fmt.Sprintf("%s (%s config of %s) was %s behind graylane's back: want %s, found %s", f.w.p, f.w.p.Role, f.w.identity, what, configwire.Short(d.Want), orNone(configwire.Short(d.Got)))
			if repair {
				msg += "; repairing"
			}
			events = append(events, rollout.Event{Type: rollout.Warning, Reason: "ConfigDrift", Message: msg + "\n" + d.Diff})
			m.log.Warn("config drift", "app", app, "placement", f.w.p.String(), "want", configwire.Short(d.Want), "got", configwire.Short(d.Got), "repair", repair)
		}
		if repair {
			ap := applied[f.key]
			ap.Verified = false
			applied[f.key] = ap
		}
	}
	return events
}

// settled records, once a layout is fully in place, what became of each
// config version (history events) and says so.
func (m *Manager) settled(ctx context.Context, app string, from, to Layout, bundles map[string]*Bundle) []rollout.Event {
	var events []rollout.Event
	mark := func(id, kind, detail string) {
		if id == "" {
			return
		}
		e, ok, err := m.cfg.Store.Entry(ctx, app, id)
		if err != nil || !ok {
			return
		}
		e.Events = append(e.Events, HistoryEvent{At: m.cfg.Clock.Now(), Kind: kind, Detail: detail})
		if len(e.Events) > maxHistoryEvents {
			e.Events = e.Events[len(e.Events)-maxHistoryEvents:]
		}
		if err := m.cfg.Store.PutEntry(ctx, e, to.StableIdentity, to.GrayIdentity, from.StableIdentity); err != nil {
			m.log.Warn("record config history", "app", app, "identity", id, "err", err)
		}
	}
	wasStable := func(id string) bool {
		e, ok, err := m.cfg.Store.Entry(ctx, app, id)
		if err != nil || !ok {
			return false
		}
		for _, ev := range e.Events {
			if ev.Kind == "stable" {
				return true
			}
		}
		return false
	}
	switch {
	case to.GrayIdentity == "" || to.GrayIdentity == from.GrayIdentity:
	case to.GrayIdentity == from.StableIdentity:
		mark(to.GrayIdentity, "pinned", "kept on a version-bound copy for its instances while the release rolls back to "+to.StableIdentity)
		events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigPinned",
			Message: fmt.Sprintf("config %s of %s is pinned for %s's instances while %s's config %s comes back on every target", configwire.Short(to.GrayDigest), to.GrayIdentity, to.GrayIdentity, to.StableIdentity, configwire.Short(to.StableDigest))})
	default:
		mark(to.GrayIdentity, "gray", "on a version-bound copy for "+to.GrayIdentity+"'s instances on every target")
		events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigPlaced",
			Message: fmt.Sprintf("config %s of %s is on every target for %s's instances only (stable stays %s)", configwire.Short(to.GrayDigest), to.GrayIdentity, to.GrayIdentity, orNone(to.StableIdentity))})
	}
	if to.StableIdentity != from.StableIdentity && to.StableDigest != "" {
		mark(to.StableIdentity, "stable", "the stable config on every target, replacing "+orNone(from.StableIdentity))
		mark(from.StableIdentity, "replaced", "by "+to.StableIdentity)
		events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigPromoted",
			Message: fmt.Sprintf("config %s of %s is the stable config on every target (was %s)", configwire.Short(to.StableDigest), to.StableIdentity, orNone(from.StableIdentity))})
	}
	if from.GrayIdentity != "" && from.GrayIdentity != to.GrayIdentity && from.GrayIdentity != to.StableIdentity && !wasStable(from.GrayIdentity) {
		mark(from.GrayIdentity, "withdrawn", "its version-bound copies were removed")
		events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigWithdrawn",
			Message: fmt.Sprintf("the version-bound copies of %s's config were removed from every target", from.GrayIdentity)})
	}
	return events
}

// waiting summarises what the layer waits for, for the planner's message.
func (m *Manager) waiting(want map[string]wanted, applied map[string]AppliedPlacement, a *appMem, now time.Time) string {
	var parts []string
	unverified := 0
	for k, w := range want {
		if ap, ok := applied[k]; ok && ap.Verified && ap.SHA256 == w.sha() {
			continue
		}
		if w.file == nil {
			if _, ok := applied[k]; !ok {
				continue
			}
		}
		if r := a.retry[k]; r != nil {
			parts = append(parts, fmt.Sprintf("%s: %s (attempt %d, retry in %s)", w.p, r.err, r.attempts, max(0, r.next.Sub(now)).Round(100*time.Millisecond)))
			continue
		}
		unverified++
	}
	sort.Strings(parts)
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("and %d more", len(parts)-3))
	}
	if unverified > 0 {
		parts = append(parts, fmt.Sprintf("%d placement(s) being written and read back", unverified))
	}
	return strings.Join(parts, "; ")
}

func (m *Manager) setView(in Pass, a *appMem, lay Layout, g *rollout.ConfigGate, want map[string]wanted, state State, now time.Time) {
	v := &View{Identity: in.Identity, Layout: lay, Gate: g, UpdatedAt: now, Pending: state.Txn}
	for k, w := range want {
		ap, ok := state.Applied[k]
		if !ok && w.file == nil {
			continue // deleted
		}
		ps := PlacementStatus{Placement: w.p, Identity: w.identity, Want: w.sha()}
		ps.Verified = ok && ap.Verified && ap.SHA256 == w.sha()
		if r := a.retry[k]; r != nil {
			ps.Error, ps.Attempts, ps.Retry = r.err, r.attempts, r.next
		}
		v.Placements = append(v.Placements, ps)
	}
	sort.Slice(v.Placements, func(i, j int) bool {
		pi, pj := v.Placements[i], v.Placements[j]
		if pi.Role != pj.Role {
			return pi.Role > pj.Role // stable first
		}
		return pi.Key() < pj.Key()
	})
	for _, d := range a.drift {
		v.Drift = append(v.Drift, d)
	}
	sort.Slice(v.Drift, func(i, j int) bool { return v.Drift[i].Placement.Key() < v.Drift[j].Placement.Key() })
	m.mu.Lock()
	a.view = v
	m.mu.Unlock()
}
