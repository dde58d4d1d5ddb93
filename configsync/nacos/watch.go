package nacos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/graylane/graylane/configsync"
)

// Watch implements configsync.Source.
//
// Nacos keeps no history, so every watch starts with a Reset listing (the
// index's apps that have a document); afterRevision only makes sure the
// source's local revisions continue above it. After that the watch delivers
// what changed, level-triggered: all watches of a Source share one hub that
// listens to the index and to every listed app (nacos-sdk-go listeners), and
// each watch diffs the hub's state against what it has delivered. So a
// watch never repeats content, never goes back to an older state, and a slow
// consumer gets the latest state of each app rather than a backlog.
//
// When the cluster cannot be reached the watch sends a response with Err
// wrapping configsync.ErrUnavailable and keeps the channel open; once a new
// connection is up it re-reads everything and delivers only real changes
// (the first response after recovery has Err == nil, with or without
// events). A malformed index is reported the same way, wrapping ErrBadIndex,
// while the last good app list stays in force.
func (s *Source) Watch(ctx context.Context, afterRevision int64) <-chan configsync.WatchResponse {
	ch := make(chan configsync.WatchResponse)
	s.revs.atLeast(afterRevision)
	h := s.startHub()
	if h == nil { // closed
		close(ch)
		return ch
	}
	go s.serve(ctx, h, ch)
	return ch
}

// serve feeds one watch from the hub.
func (s *Source) serve(ctx context.Context, h *hub, ch chan<- configsync.WatchResponse) {
	defer close(ch)
	have := map[string]string{} // app -> MD5 this consumer has
	reset := true               // the next data response is a Reset
	var sentErrGen uint64
	errShown := false
	var lastRev int64
	for {
		snap := h.snapshot()
		var resp configsync.WatchResponse
		send := false
		if snap.errGen != sentErrGen && (snap.err != nil || errShown) {
			resp.Err = snap.err
			send = true
		}
		if snap.synced {
			resp.Events = diff(have, snap, reset)
			resp.Reset = reset
			if reset || len(resp.Events) > 0 {
				send = true
			}
		}
		if send {
			resp.Revision = max(lastRev, snap.rev)
			select {
			case ch <- resp:
			case <-ctx.Done():
				return
			case <-s.closed:
				return
			}
			lastRev = resp.Revision
			sentErrGen, errShown = snap.errGen, resp.Err != nil
			if snap.synced {
				reset = false
				for _, ev := range resp.Events {
					if ev.Type == configsync.Delete {
						delete(have, ev.Entry.App)
					} else {
						have[ev.Entry.App] = ev.Entry.Version
					}
				}
			}
			continue // the state may have moved while we were sending
		}
		select {
		case <-snap.changed:
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		}
	}
}

// diff lists the events that take a consumer from have to snap, oldest
// first. For a Reset it lists every document.
func diff(have map[string]string, snap hubSnapshot, reset bool) []configsync.Event {
	var evs []configsync.Event
	for app, e := range snap.state {
		if reset || have[app] != e.Version {
			evs = append(evs, configsync.Event{Type: configsync.Put, Entry: e})
		}
	}
	if !reset {
		for app := range have {
			if _, ok := snap.state[app]; !ok {
				rev := snap.tombs[app]
				if rev == 0 {
					rev = snap.rev
				}
				evs = append(evs, configsync.Event{Type: configsync.Delete, Entry: configsync.Entry{App: app, Revision: rev}})
			}
		}
	}
	slices.SortFunc(evs, func(a, b configsync.Event) int {
		if a.Entry.Revision != b.Entry.Revision {
			return int(a.Entry.Revision - b.Entry.Revision)
		}
		if a.Entry.App < b.Entry.App {
			return -1
		}
		return 1
	})
	return evs
}

func (s *Source) startHub() *hub {
	s.hubMu.Lock()
	defer s.hubMu.Unlock()
	select {
	case <-s.closed:
		return nil
	default:
	}
	if s.hub == nil {
		s.hub = newHub(s)
		go s.hub.run()
	}
	return s.hub
}

// hub keeps the current state of every indexed app, shared by all watches.
// Only its run goroutine changes the state; watches read snapshots.
type hub struct {
	s      *Source
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	state   map[string]configsync.Entry // documents of indexed apps
	tombs   map[string]int64            // revision at which an app went away
	rev     int64
	err     error
	errGen  uint64
	synced  bool // a full read succeeded at least once
	changed chan struct{}

	dirtyMu sync.Mutex
	dirty   map[string]bool
	poke    chan struct{}

	// run goroutine only:
	apps      map[string]bool      // the index's apps
	added     map[string]time.Time // when each app was added to apps
	indexMD5  string
	listenGen uint64 // client generation the listeners are registered on
	listenOn  config_client.IConfigClient
	// missingSince holds dataIds (apps, the index) that were present and
	// read as missing, with when that was first seen: a deletion counts
	// only once it has lasted Config.DeleteConfirm. Polaris was seen
	// answering "not found" for a just-updated dataId for a few seconds
	// (its release cache can retire the new release along with the old
	// one), and losing the index would delete every release at once.
	missingSince map[string]time.Time
}

type hubSnapshot struct {
	state   map[string]configsync.Entry
	tombs   map[string]int64
	rev     int64
	err     error
	errGen  uint64
	synced  bool
	changed <-chan struct{}
}

func newHub(s *Source) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{
		s: s, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		state: map[string]configsync.Entry{}, tombs: map[string]int64{},
		changed: make(chan struct{}),
		dirty:   map[string]bool{}, poke: make(chan struct{}, 1),
		apps: map[string]bool{}, added: map[string]time.Time{},
		missingSince: map[string]time.Time{},
	}
}

func (h *hub) stop() {
	h.cancel()
	<-h.done
}

func (h *hub) snapshot() hubSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return hubSnapshot{
		state: maps.Clone(h.state), tombs: maps.Clone(h.tombs), rev: max(h.rev, h.s.revs.current()),
		err: h.err, errGen: h.errGen, synced: h.synced, changed: h.changed,
	}
}

// signalLocked wakes the watches; h.mu must be held.
func (h *hub) signalLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *hub) setErr(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil && err != nil && h.err.Error() == err.Error() {
		return
	}
	if h.err == nil && err == nil {
		return
	}
	h.err = err
	h.errGen++
	h.signalLocked()
	if err != nil {
		h.s.log.Warn("nacos: watch problem", "err", err)
	} else {
		h.s.log.Info("nacos: watch recovered")
	}
}

// markDirty is the SDK listener callback: it only notes the dataId and
// wakes the run loop, which re-reads it. The SDK calls listeners on fresh
// goroutines, in no particular order, so their content is not trusted.
func (h *hub) markDirty(dataID string) {
	h.dirtyMu.Lock()
	h.dirty[dataID] = true
	h.dirtyMu.Unlock()
	select {
	case h.poke <- struct{}{}:
	default:
	}
}

func (h *hub) takeDirty() []string {
	h.dirtyMu.Lock()
	defer h.dirtyMu.Unlock()
	keys := slices.Sorted(maps.Keys(h.dirty))
	clear(h.dirty)
	return keys
}

func (h *hub) run() {
	defer close(h.done)
	cfg := h.s.cfg
	probe := time.NewTicker(cfg.ProbeInterval)
	defer probe.Stop()
	resync := time.NewTicker(cfg.ResyncInterval)
	defer resync.Stop()
	h.fullSync()
	for {
		gen, up, lastErr, connChanged := h.s.sess.state()
		if !up {
			h.setErr(fmt.Errorf("nacos: %w: %w", configsync.ErrUnavailable, lastErr))
		} else if gen != h.listenGen {
			h.fullSync()
			continue
		}
		select {
		case <-h.ctx.Done():
			return
		case <-connChanged:
		case <-h.poke:
			h.syncDirty()
		case <-probe.C:
			h.probe()
		case <-resync.C:
			h.fullSync()
		}
	}
}

// readCtx bounds one read by the hub.
func (h *hub) readCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(h.ctx, 2*h.s.cfg.Timeout)
}

// fullSync re-reads the index and every app, (re)registering listeners on
// the current client generation.
func (h *hub) fullSync() {
	ctx, cancel := h.readCtx()
	defer cancel()
	c, gen, err := h.s.sess.client(ctx)
	if err != nil {
		h.setErr(fmt.Errorf("nacos: %w", err))
		return
	}
	if gen != h.listenGen {
		// A new client: it has no listeners yet.
		h.listenOn, h.listenGen = c, gen
		h.apps = map[string]bool{}
		h.listen(h.s.cfg.IndexDataID)
	}
	if err := h.syncIndex(ctx); err != nil {
		h.setErr(err)
		return
	}
	for _, app := range slices.Sorted(maps.Keys(h.apps)) {
		if err := h.syncApp(ctx, app); err != nil {
			h.setErr(err)
			return
		}
	}
	h.mu.Lock()
	if !h.synced {
		h.synced = true
		h.signalLocked()
	}
	h.mu.Unlock()
	h.setErr(nil)
}

func (h *hub) listen(dataID string) {
	if h.listenOn == nil {
		return
	}
	err := h.listenOn.ListenConfig(vo.ConfigParam{DataId: dataID, Group: h.s.cfg.Group,
		OnChange: func(_, _, dataID, _ string) { h.markDirty(dataID) }})
	if err != nil {
		h.s.log.Warn("nacos: listen failed", "dataId", dataID, "err", err)
	}
}

func (h *hub) unlisten(dataID string) {
	if h.listenOn == nil {
		return
	}
	_ = h.listenOn.CancelListenConfig(vo.ConfigParam{DataId: dataID, Group: h.s.cfg.Group})
}

// syncIndex re-reads the index and starts or stops following apps.
func (h *hub) syncIndex(ctx context.Context) error {
	raw, err := h.s.read(ctx, h.s.cfg.IndexDataID)
	if err != nil {
		return fmt.Errorf("nacos: read index %s: %w", h.s.cfg.IndexDataID, err)
	}
	sum := md5Hex(raw)
	if raw == "" && (len(h.apps) > 0 || h.holdsAny()) {
		if !h.confirmMissing(h.s.cfg.IndexDataID) {
			h.s.log.Debug("nacos: index reads as missing; confirming before dropping its apps")
			return nil
		}
	} else {
		delete(h.missingSince, h.s.cfg.IndexDataID)
	}
	if sum != h.indexMD5 {
		h.s.log.Debug("nacos: index changed", "md5", sum, "bytes", len(raw))
	}
	apps, err := parseIndex(raw)
	if err != nil {
		h.indexMD5 = sum
		return fmt.Errorf("nacos: %w: index %s (keeping the previous app list): %w", configsync.ErrUnavailable, h.s.cfg.IndexDataID, err)
	}
	h.indexMD5 = sum
	want := map[string]bool{}
	for _, a := range apps {
		want[a] = true
	}
	// Apps still held may have left the index while the client was being
	// replaced (h.apps is then empty): check them too.
	h.mu.Lock()
	held := slices.Collect(maps.Keys(h.state))
	h.mu.Unlock()
	for _, app := range append(slices.Collect(maps.Keys(h.apps)), held...) {
		if !want[app] {
			if h.apps[app] {
				delete(h.apps, app)
				delete(h.added, app)
				h.unlisten(app)
			}
			h.drop(app) // the index says so: no confirmation needed
		}
	}
	for _, app := range apps {
		if !h.apps[app] {
			h.apps[app] = true
			h.added[app] = time.Now()
			h.listen(app)
			if err := h.syncApp(ctx, app); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncApp re-reads one app's document.
func (h *hub) syncApp(ctx context.Context, app string) error {
	if !h.apps[app] {
		return nil
	}
	data, err := h.s.read(ctx, app)
	if err != nil {
		return fmt.Errorf("nacos: read app %q: %w", app, err)
	}
	h.apply(app, data)
	return nil
}

// apply records app's content as read ("" = no document) and wakes the
// watches if it changed. A document that goes missing is dropped only once
// the absence is confirmed (see missingSince).
func (h *hub) apply(app, data string) {
	if data == "" {
		h.mu.Lock()
		_, had := h.state[app]
		h.mu.Unlock()
		if had && h.confirmMissing(app) {
			h.drop(app)
		}
		return
	}
	delete(h.missingSince, app)
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.state[app]
	if had && old.Version == md5Hex(data) {
		return
	}
	e := h.s.entry(app, data, true)
	h.state[app] = e
	delete(h.tombs, app)
	h.rev = max(h.rev, e.Revision)
	h.signalLocked()
	h.s.log.Debug("nacos: app changed", "app", app, "version", e.Version, "revision", e.Revision)
}

// drop removes app's document from the state and wakes the watches.
func (h *hub) drop(app string) {
	delete(h.missingSince, app)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, had := h.state[app]; !had {
		return
	}
	delete(h.state, app)
	rev := h.s.revs.mint(app, "")
	h.tombs[app] = rev
	h.rev = max(h.rev, rev)
	h.signalLocked()
	h.s.log.Debug("nacos: app deleted", "app", app, "revision", rev)
}

// confirmMissing notes that dataID reads as missing and reports whether it
// has for Config.DeleteConfirm.
func (h *hub) confirmMissing(dataID string) bool {
	since, ok := h.missingSince[dataID]
	if !ok {
		h.missingSince[dataID] = time.Now()
		return h.s.cfg.DeleteConfirm <= 0
	}
	return time.Since(since) >= h.s.cfg.DeleteConfirm
}

func (h *hub) syncDirty() {
	ctx, cancel := h.readCtx()
	defer cancel()
	var err error
	for _, id := range h.takeDirty() {
		if id == h.s.cfg.IndexDataID {
			err = errors.Join(err, h.syncIndex(ctx))
		} else {
			err = errors.Join(err, h.syncApp(ctx, id))
		}
	}
	if err != nil {
		h.setErr(err)
	}
}

// probe re-reads the index: it notices an unreachable cluster, an index
// change whose notification was lost, and recovery from an earlier error.
func (h *hub) probe() {
	ctx, cancel := h.readCtx()
	defer cancel()
	raw, err := h.s.read(ctx, h.s.cfg.IndexDataID)
	if err != nil {
		h.setErr(fmt.Errorf("nacos: read index %s: %w", h.s.cfg.IndexDataID, err))
		return
	}
	h.mu.Lock()
	failing := h.err != nil || !h.synced
	h.mu.Unlock()
	if failing {
		h.fullSync()
		return
	}
	if md5Hex(raw) != h.indexMD5 {
		if err := h.syncIndex(ctx); err != nil {
			h.setErr(err)
			return
		}
	}
	// Documents that read as missing are re-read until the absence is
	// confirmed or over.
	for _, app := range slices.Sorted(maps.Keys(h.missingSince)) {
		if app == h.s.cfg.IndexDataID {
			continue // re-read above: its MD5 still differs
		}
		if err := h.syncApp(ctx, app); err != nil {
			h.setErr(err)
			return
		}
	}
	// nacos-sdk-go registers a new listener with the server on its next
	// listen cycle (up to 5 s later), and a read right after the index
	// change may not show the document yet: re-read recently added apps
	// until their listeners are surely in place.
	for app, at := range h.added {
		if time.Since(at) > listenWarmup {
			delete(h.added, app)
			continue
		}
		if err := h.syncApp(ctx, app); err != nil {
			h.setErr(err)
			return
		}
	}
}

func (h *hub) holdsAny() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.state) > 0
}

// listenWarmup covers nacos-sdk-go's listen cycle (5 s) plus a margin.
const listenWarmup = 7 * time.Second
