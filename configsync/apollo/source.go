package apollo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/apolloconfig/agollo/v4"
	agolloconfig "github.com/apolloconfig/agollo/v4/env/config"
	"github.com/apolloconfig/agollo/v4/storage"
	agolloutils "github.com/apolloconfig/agollo/v4/utils"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo/openapi"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
)

// pendingWindow is how long Get and List wait for this Source's own write
// to come back through agollo (one 2 s poll plus margin), so that a read
// after a write sees it.
const pendingWindow = 5 * time.Second

// agolloPoll is agollo's fixed pause between long polls.
const agolloPoll = 2 * time.Second

// Source reads and watches release documents in one Apollo namespace
// through agollo, and writes them through the Portal Open API.
type Source struct {
	cfg       Config
	log       *slog.Logger
	cs        *configService
	api       *openapi.Client // nil: read-only
	ns        openapi.Namespace
	cachePath string // "" when the cache is disabled

	mu           sync.Mutex
	hub          hub
	pending      map[string]pendingWrite
	probeKey     string            // release key of the last probe answer
	probeConfigs map[string]string // its documents
	closed       bool
	agollo       agollo.Client
	agolloSeen   bool          // an update came from agollo's poll loop (Close is race-free)
	seen         chan struct{} // closed when agolloSeen becomes true
	lis          *listener

	// saves counts the cache writes of updates already applied: Close
	// waits for them, and none starts after Close set closed.
	saves        sync.WaitGroup
	cacheMu      sync.Mutex
	cacheWritten int64 // revision of the last cache file written

	writeMu sync.Mutex // serialises Put and Delete (Apollo publishes whole namespaces)
	// beforePublish, when set (tests), runs between the item write and the
	// release.
	beforePublish func()

	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup
}

// pendingWrite is a write of this Source not yet seen through agollo.
type pendingWrite struct {
	version string // "" for a delete
	until   time.Time
}

// Interface guards.
var (
	_ configsync.Source        = (*Source)(nil)
	_ configsync.Writer        = (*Source)(nil)
	_ configsync.HealthChecker = (*Source)(nil)
)

// New returns a Source for cfg. It does not wait for Apollo: it loads the
// last-known-good cache (if any) at once, and starts agollo and the health
// probe in the background, so graylane starts with Apollo down.
func New(cfg Config) (*Source, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Source{
		cfg:     cfg,
		log:     logx.OrDiscard(cfg.Logger).With("centre", "apollo", "appId", cfg.AppID, "cluster", cfg.Cluster, "namespace", cfg.Namespace),
		ns:      openapi.Namespace{AppID: cfg.AppID, Cluster: cfg.Cluster, Name: cfg.Namespace},
		hub:     newHub(),
		pending: map[string]pendingWrite{},
		seen:    make(chan struct{}),
	}
	s.lis = &listener{s: s}
	if cfg.Portal != "" {
		s.api, err = openapi.New(openapi.Config{PortalURL: cfg.Portal, Token: cfg.Token, Env: cfg.Env, Operator: cfg.Operator, Timeout: cfg.RequestTimeout, HTTPClient: httpClient(cfg.TLS)})
		if err != nil {
			return nil, fmt.Errorf("apollo: %w", err)
		}
	}
	s.cs = &configService{
		fixed: cfg.ConfigService, meta: cfg.Meta,
		appID: cfg.AppID, cluster: cfg.Cluster, ns: cfg.Namespace,
		secret: cfg.Secret, label: cfg.Label, ip: agolloutils.GetInternal(),
		timeout: cfg.RequestTimeout, http: httpClient(cfg.TLS),
	}
	if cfg.CacheDir != "" {
		s.cachePath = cachePath(cfg.CacheDir, cfg)
		f, err := loadCache(s.cachePath, cfg)
		switch {
		case err != nil:
			s.log.Warn("ignoring the last-known-good cache", "err", err)
		case f != nil:
			s.hub.fromCache(f)
			s.cacheWritten = f.Revision
			s.log.Info("loaded the last-known-good cache", "file", s.cachePath, "apps", len(f.Entries), "savedAt", f.SavedAt, "revision", f.Revision)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.probeLoop()
	go s.graceTimer()
	go s.startAgollo() // not waited for: agollo's start blocks while Apollo is down
	return s, nil
}

// Name returns "apollo".
func (s *Source) Name() string { return "apollo" }

// Namespace returns the release namespace's coordinates (for the Open API).
func (s *Source) Namespace() openapi.Namespace { return s.ns }

// OpenAPI returns the Open API client, nil when no portal is configured.
// Gray branches of the release namespace are managed through it.
func (s *Source) OpenAPI() *openapi.Client { return s.api }

// startAgollo starts agollo on the release namespace and listens to it.
func (s *Source) startAgollo() {
	// agollo reads BackupConfigPath whenever Apollo fails (and writes it only
	// with IsBackupConfig). graylane keeps its own cache, so point agollo at
	// a directory that never exists: a stale backup must never be replayed.
	noBackup := filepath.Join(os.TempDir(), "graylane-apollo-no-backup-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if s.cfg.CacheDir != "" {
		noBackup = filepath.Join(s.cfg.CacheDir, "agollo-backup-disabled")
	}
	c, err := agollo.StartWithConfig(func() (*agolloconfig.AppConfig, error) {
		return &agolloconfig.AppConfig{
			AppID:             s.cfg.AppID,
			Cluster:           s.cfg.Cluster,
			NamespaceName:     s.cfg.Namespace,
			IP:                s.cfg.configServiceURL(),
			IsBackupConfig:    false,
			BackupConfigPath:  noBackup,
			Secret:            s.cfg.Secret,
			Label:             s.cfg.Label,
			SyncServerTimeout: int(math.Ceil(s.cfg.RequestTimeout.Seconds())),
			MustStart:         false,
		}, nil
	})
	s.mu.Lock()
	if err != nil {
		s.hub.agolloErr = fmt.Errorf("apollo: start agollo for app %s namespace %s: %w: %w", s.cfg.AppID, s.cfg.Namespace, configsync.ErrUnavailable, err)
		s.log.Error("agollo did not start", "err", err)
		s.hub.reclass()
		s.hub.notify()
		s.mu.Unlock()
		return
	}
	s.agollo = c
	c.AddChangeListener(s.lis)
	closed := s.closed
	s.mu.Unlock()
	s.log.Debug("agollo started", "configService", s.cfg.configServiceURL())
	if closed {
		// Closed while agollo was starting (Apollo was down): stop it when
		// that becomes race-free, if Apollo comes back soon enough.
		s.stopAgollo(c, time.Minute)
	}
}

// stopAgollo stops agollo's poll loop. agollo v4.4.0 creates the loop's
// stop channel inside the loop goroutine, so Close is race-free only once
// something from that goroutine reached us: an update. It waits up to wait
// for one (the first long poll answers at once when Apollo is up); without
// one the loop is left running.
func (s *Source) stopAgollo(c agollo.Client, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.seen:
	case <-t.C:
		s.log.Debug("agollo's poll loop is left running: it delivered nothing, so it cannot be stopped race-free")
		return
	}
	c.RemoveChangeListener(s.lis)
	c.Close()
}

// listener receives agollo's updates. agollo runs every callback in its own
// goroutine, so they arrive in any order: onUpdate serialises them and
// orders them by notification id.
type listener struct{ s *Source }

// OnChange is ignored: OnNewestChange carries the whole namespace.
func (l *listener) OnChange(*storage.ChangeEvent) {}

// OnNewestChange is one successful read of the namespace by agollo.
func (l *listener) OnNewestChange(e *storage.FullChangeEvent) {
	configs := make(map[string]string, len(e.Changes))
	for k, v := range e.Changes {
		if !spec.AppPattern.MatchString(k) {
			continue
		}
		if str, ok := v.(string); ok {
			configs[k] = str
		} else {
			configs[k] = fmt.Sprint(v)
		}
	}
	l.s.onUpdate(e.NotificationID, configs)
}

// onUpdate applies one agollo read (notification id, app -> document). A
// read with a notification id not above the last applied one is older (or
// the same release) and dropped, so an older state never follows a newer
// one; identical documents produce no event.
func (s *Source) onUpdate(id int64, configs map[string]string) {
	s.mu.Lock()
	if !s.agolloSeen {
		s.agolloSeen = true
		close(s.seen)
	}
	h := &s.hub
	if s.closed {
		s.mu.Unlock()
		return
	}
	if h.origin == originApollo && id <= h.notif {
		s.mu.Unlock()
		s.log.Debug("dropping an agollo update not newer than the one applied", "notificationId", id, "applied", h.notif)
		return
	}
	first := h.origin != originApollo
	evs := h.apply(configs)
	h.origin, h.notif, h.notReleased, h.savedAt = originApollo, id, false, time.Time{}
	h.reclass()
	var snap *cacheFile
	if s.cachePath != "" && (len(evs) > 0 || first) {
		snap = h.snapshot(s.cfg, time.Now())
		s.saves.Add(1) // under s.mu, before Close can see closed: Close waits for it
	}
	for _, ev := range evs {
		s.log.Info("release document changed in apollo", "app", ev.Entry.App, "event", ev.Type.String(), "revision", ev.Entry.Revision, "notificationId", id)
	}
	if first {
		s.log.Info("synced with apollo", "apps", len(h.entries), "notificationId", id)
	}
	h.notify()
	s.mu.Unlock()
	if snap != nil {
		s.saveCache(snap)
		s.saves.Done()
	}
}

// saveCache writes snap unless a newer snapshot was written meanwhile.
func (s *Source) saveCache(snap *cacheFile) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if snap.Revision < s.cacheWritten {
		return
	}
	if err := writeCache(s.cachePath, snap); err != nil {
		s.log.Error("cannot write the last-known-good cache", "file", s.cachePath, "err", err)
		return
	}
	s.cacheWritten = snap.Revision
}

// graceTimer ends the startup grace period.
func (s *Source) graceTimer() {
	defer s.wg.Done()
	t := time.NewTimer(s.cfg.StartupGrace)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
	case <-t.C:
		s.mu.Lock()
		s.hub.graceOver = true
		s.hub.notify()
		s.mu.Unlock()
	}
}

// probeLoop checks the config service every ProbeInterval.
func (s *Source) probeLoop() {
	defer s.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		_ = s.probe(s.ctx)
		t.Reset(s.cfg.ProbeInterval)
	}
}

// probe reads the namespace from the config service (a 304 when unchanged
// since the last probe) and records what it learnt about Apollo's health.
func (s *Source) probe(ctx context.Context) error {
	s.mu.Lock()
	key := s.probeKey
	s.mu.Unlock()
	res, err := s.cs.fetch(ctx, key)
	if ctx.Err() != nil {
		return err // the caller gave up: not an observation of Apollo
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &s.hub
	before := *h
	switch {
	case err == nil:
		h.probeErr, h.notReleased = nil, false
		if !res.notModified {
			s.probeKey, s.probeConfigs = res.releaseKey, apps(res.configs)
		}
		if h.origin == originCache && !h.confirmed && s.probeConfigs != nil && h.sameAs(s.probeConfigs) {
			h.confirmed = true
			s.log.Info("apollo holds exactly the cached release documents")
		}
	case errors.Is(err, errNotReleased):
		h.probeErr, h.notReleased = nil, true
		s.probeKey, s.probeConfigs = "", nil
	default:
		h.probeErr = err
	}
	h.probed = true
	h.reclass()
	switch {
	case before.probeErr == nil && h.probeErr != nil:
		s.log.Warn("apollo unreachable", "err", h.status(s.cfg.Namespace))
	case before.probeErr != nil && h.probeErr == nil:
		s.log.Info("apollo reachable again")
	case !before.notReleased && h.notReleased:
		s.log.Warn("the release namespace is not released in apollo (404): create and publish it once in the portal")
	}
	if !before.probed || before.seq != h.seq || before.confirmed != h.confirmed || (before.probeErr == nil) != (h.probeErr == nil) {
		h.notify()
	}
	return err
}

// Healthy checks now that the config service answers, and that the
// documents served are Apollo's (not a cache agollo has not yet confirmed).
// Errors wrap configsync.ErrUnavailable.
func (s *Source) Healthy(ctx context.Context) error {
	if err := s.probe(ctx); err != nil && ctx.Err() != nil {
		return fmt.Errorf("apollo: health check of namespace %s: %w: %w", s.cfg.Namespace, configsync.ErrUnavailable, ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hub.status(s.cfg.Namespace)
}

// awaitReady waits until the documents can be served: the first sync (or
// the cache, when Apollo is down) is there, and this Source's own writes to
// apps (all apps when none are named) have come back through agollo or
// their window has passed. It never waits past ctx, nor longer than the
// request timeout plus the startup grace for a first sync.
func (s *Source) awaitReady(ctx context.Context, step string, apps ...string) error {
	deadline := time.NewTimer(s.cfg.RequestTimeout + s.cfg.StartupGrace)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		h := &s.hub
		wake := h.changed
		ready := h.ready()
		var err error
		if !ready && h.probed && h.probeErr != nil && !h.loaded() {
			err = fmt.Errorf("apollo: %s: nothing received from apollo yet and no cache: %w", step, h.status(s.cfg.Namespace))
		}
		if s.closed {
			err = fmt.Errorf("apollo: %s: source closed: %w", step, configsync.ErrUnavailable)
		}
		wait := time.Duration(-1)
		if ready {
			wait = s.pendingLocked(apps)
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if ready && wait < 0 {
			return nil
		}
		var expire <-chan time.Time
		var timer *time.Timer
		if wait >= 0 {
			timer = time.NewTimer(wait)
			expire = timer.C
		}
		stop := func() {
			if timer != nil {
				timer.Stop()
			}
		}
		select {
		case <-wake:
			stop()
		case <-expire:
		case <-ctx.Done():
			stop()
			if ready {
				return nil // serve what is there rather than nothing
			}
			return fmt.Errorf("apollo: %s: not synced with apollo yet: %w: %w", step, configsync.ErrUnavailable, ctx.Err())
		case <-deadline.C:
			stop()
			if ready {
				return nil
			}
			return fmt.Errorf("apollo: %s: not synced with apollo within %s: %w", step, s.cfg.RequestTimeout+s.cfg.StartupGrace, configsync.ErrUnavailable)
		}
	}
}

// pendingLocked drops the pending writes that are visible or expired and
// returns how long until the first of the remaining ones (among apps, or
// all) expires; -1 when none remains.
func (s *Source) pendingLocked(apps []string) time.Duration {
	now := time.Now()
	wait := time.Duration(-1)
	for app, p := range s.pending {
		e, ok := s.hub.entries[app]
		if now.After(p.until) || (p.version == "" && !ok) || (ok && e.Version == p.version) {
			delete(s.pending, app)
			continue
		}
		if len(apps) > 0 && !contains(apps, app) {
			continue
		}
		if d := p.until.Sub(now); wait < 0 || d < wait {
			wait = d
		}
	}
	return wait
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Get returns app's released document as last received through agollo (or
// from the cache while Apollo is down), or an error wrapping
// configsync.ErrNotFound. Entry.Version is the MD5 of the document and
// Entry.Revision the local revision at which it was received.
func (s *Source) Get(ctx context.Context, app string) (configsync.Entry, error) {
	step := fmt.Sprintf("get app %q (item %q of namespace %s)", app, app, s.cfg.Namespace)
	if !spec.AppPattern.MatchString(app) {
		return configsync.Entry{}, fmt.Errorf("apollo: %s: not a valid app name: %w", step, configsync.ErrNotFound)
	}
	if err := s.awaitReady(ctx, step, app); err != nil {
		return configsync.Entry{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.hub.entries[app]
	if !ok {
		return configsync.Entry{}, fmt.Errorf("apollo: %s: %w", step, configsync.ErrNotFound)
	}
	return e, nil
}

// List returns every app's document, sorted by app, and the local revision
// they were received at.
func (s *Source) List(ctx context.Context) ([]configsync.Entry, int64, error) {
	if err := s.awaitReady(ctx, "list namespace "+s.cfg.Namespace); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hub.listing(), s.hub.rev, nil
}

// Watch streams changes after afterRevision (a revision of this Source, or
// of the cache it started from). It sends a Reset first unless the history
// reaches back to afterRevision. Responses with events never carry Err;
// whenever Apollo's state changes (unreachable, back, serving the cache) a
// response with only Err (or, on recovery, with neither events nor Err) says
// so. The channel closes when ctx ends or the Source is closed.
func (s *Source) Watch(ctx context.Context, afterRevision int64) <-chan configsync.WatchResponse {
	out := make(chan configsync.WatchResponse)
	go s.watch(ctx, afterRevision, out)
	return out
}

func (s *Source) watch(ctx context.Context, after int64, out chan<- configsync.WatchResponse) {
	defer close(out)
	var (
		started bool
		rev     = after
		seq     = int64(-1) // status class last reported
		errSent bool        // the last response sent carried Err
	)
	for {
		s.mu.Lock()
		h := &s.hub
		wake := h.changed
		var batch []configsync.WatchResponse
		st := h.status(s.cfg.Namespace)
		data := false
		switch {
		case s.closed:
		case !started && h.ready():
			started = true
			evs, ok := h.since(after)
			if after == 0 || !ok {
				events := []configsync.Event{}
				for _, e := range h.listing() {
					events = append(events, configsync.Event{Type: configsync.Put, Entry: e})
				}
				batch = append(batch, configsync.WatchResponse{Events: events, Reset: true, Revision: h.rev})
				data = true
			} else if len(evs) > 0 {
				batch = append(batch, configsync.WatchResponse{Events: evs, Revision: h.rev})
				data = true
			}
			rev = h.rev
		case !started:
			// Nothing to list yet; say why if Apollo is known to be down.
			if h.probed && h.probeErr != nil && seq != h.seq {
				batch = append(batch, configsync.WatchResponse{Err: st, Revision: after})
				seq, errSent = h.seq, true
			}
		default:
			evs, ok := h.since(rev)
			switch {
			case !ok:
				events := []configsync.Event{}
				for _, e := range h.listing() {
					events = append(events, configsync.Event{Type: configsync.Put, Entry: e})
				}
				batch = append(batch, configsync.WatchResponse{Events: events, Reset: true, Revision: h.rev})
				data = true
			case len(evs) > 0:
				batch = append(batch, configsync.WatchResponse{Events: evs, Revision: h.rev})
				data = true
			}
			rev = h.rev
		}
		if started && !s.closed {
			switch {
			case st != nil && (data || !errSent || seq != h.seq):
				// Events travel without Err (a consumer may skip responses
				// with one), so the state is repeated after them.
				batch = append(batch, configsync.WatchResponse{Err: st, Revision: rev})
				errSent = true
			case st == nil && errSent && !data:
				batch = append(batch, configsync.WatchResponse{Revision: rev})
				errSent = false
			case data:
				errSent = false
			}
			seq = h.seq
		}
		closed := s.closed
		s.mu.Unlock()
		for _, r := range batch {
			select {
			case out <- r:
			case <-ctx.Done():
				return
			case <-s.ctx.Done():
				return
			}
		}
		if closed {
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// Close ends every watch, the probe and agollo's poll loop. agollo v4.4.0
// can only be stopped race-free once an update came from its poll loop: if
// none has yet, Close waits for one for up to one poll plus a request
// timeout, and otherwise leaves the loop running (agollo's server-list
// goroutine never stops anyway). It is idempotent.
func (s *Source) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.mu.Lock()
		s.closed = true
		c := s.agollo
		s.hub.notify()
		s.mu.Unlock()
		if c != nil {
			s.stopAgollo(c, agolloPoll+s.cfg.RequestTimeout)
		}
		s.wg.Wait()
		// What was served is in the cache: an update applied before closed
		// was set is saved before Close returns.
		s.saves.Wait()
	})
	return nil
}
