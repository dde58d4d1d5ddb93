package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/graylane/graylane/configsync"
)

// Source is an in-memory config centre. Create it with New.
type Source struct {
	mu        sync.Mutex
	rev       int64                       // store revision: bumped by every write
	docs      map[string]configsync.Entry // current documents
	base      map[string]configsync.Entry // documents at revision compacted
	history   []configsync.Event          // events after compacted, in revision order
	compacted int64
	down      bool
	changed   chan struct{} // closed and replaced on every change of the above
	closed    bool
	done      chan struct{} // closed by Close
}

// Interface guards.
var (
	_ configsync.Source        = (*Source)(nil)
	_ configsync.Writer        = (*Source)(nil)
	_ configsync.HealthChecker = (*Source)(nil)
)

// New returns an empty, available Source at revision 0.
func New() *Source {
	return &Source{
		docs:    map[string]configsync.Entry{},
		base:    map[string]configsync.Entry{},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Name returns "memory".
func (s *Source) Name() string { return "memory" }

// check reports why the source cannot serve a client call; the caller
// holds mu.
func (s *Source) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed {
		return fmt.Errorf("source closed: %w", configsync.ErrUnavailable)
	}
	if s.down {
		return fmt.Errorf("memory centre made unavailable: %w", configsync.ErrUnavailable)
	}
	return nil
}

// Get returns app's document or an error wrapping configsync.ErrNotFound.
func (s *Source) Get(ctx context.Context, app string) (configsync.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return configsync.Entry{}, fmt.Errorf("memory: get app %q: %w", app, err)
	}
	e, ok := s.docs[app]
	if !ok {
		return configsync.Entry{}, fmt.Errorf("memory: get app %q: %w", app, configsync.ErrNotFound)
	}
	return clone(e), nil
}

// List returns every document, sorted by app, and the current revision.
func (s *Source) List(ctx context.Context) ([]configsync.Entry, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return nil, 0, fmt.Errorf("memory: list: %w", err)
	}
	return s.listLocked(), s.rev, nil
}

func (s *Source) listLocked() []configsync.Entry {
	out := make([]configsync.Entry, 0, len(s.docs))
	for _, e := range s.docs {
		out = append(out, clone(e))
	}
	slices.SortFunc(out, func(a, b configsync.Entry) int { return strings.Compare(a.App, b.App) })
	return out
}

// Healthy reports whether the source is available.
func (s *Source) Healthy(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("memory: health: %w", err)
	}
	return nil
}

// Put stores data as app's document, with etcd's compare-and-swap rules:
// expect "" is unconditional, configsync.Absent requires that no document
// exists, anything else must equal the current Version. A lost
// compare-and-swap returns an error wrapping configsync.ErrConflict.
func (s *Source) Put(ctx context.Context, app string, data []byte, expect string) (configsync.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return configsync.Entry{}, fmt.Errorf("memory: put app %q: %w", app, err)
	}
	if err := s.compare(app, expect); err != nil {
		return configsync.Entry{}, fmt.Errorf("memory: put app %q: %w", app, err)
	}
	return s.putLocked(app, data), nil
}

// Delete removes app's document (same expect rules as Put). Deleting a
// missing document is not an error, whatever expect says.
func (s *Source) Delete(ctx context.Context, app string, expect string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("memory: delete app %q: %w", app, err)
	}
	if _, ok := s.docs[app]; !ok {
		return nil
	}
	if err := s.compare(app, expect); err != nil {
		return fmt.Errorf("memory: delete app %q: %w", app, err)
	}
	s.removeLocked(app)
	return nil
}

func (s *Source) compare(app, expect string) error {
	cur, ok := s.docs[app]
	switch expect {
	case "":
		return nil
	case configsync.Absent:
		if ok {
			return fmt.Errorf("document exists at version %s: %w", cur.Version, configsync.ErrConflict)
		}
		return nil
	}
	if !ok {
		return fmt.Errorf("expected version %s, document is absent: %w", expect, configsync.ErrConflict)
	}
	if cur.Version != expect {
		return fmt.Errorf("expected version %s, document is at %s: %w", expect, cur.Version, configsync.ErrConflict)
	}
	return nil
}

// Set stores data as app's document the way a console would: it works even
// while the source is unavailable (the centre is up, the client is cut
// off). It returns the new entry.
func (s *Source) Set(app string, data []byte) configsync.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putLocked(app, data)
}

// Remove deletes app's document the way a console would.
func (s *Source) Remove(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.docs[app]; ok {
		s.removeLocked(app)
	}
}

func (s *Source) putLocked(app string, data []byte) configsync.Entry {
	s.rev++
	e := configsync.Entry{App: app, Data: bytes.Clone(data), Version: strconv.FormatInt(s.rev, 10), Revision: s.rev}
	if e.Data == nil {
		e.Data = []byte{}
	}
	s.docs[app] = e
	s.history = append(s.history, configsync.Event{Type: configsync.Put, Entry: e})
	s.notifyLocked()
	return clone(e)
}

func (s *Source) removeLocked(app string) {
	s.rev++
	delete(s.docs, app)
	s.history = append(s.history, configsync.Event{Type: configsync.Delete, Entry: configsync.Entry{App: app, Revision: s.rev}})
	s.notifyLocked()
}

func (s *Source) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// SetAvailable makes the centre reachable (true) or not (false). While it
// is unreachable Get, List, Put, Delete and Healthy fail with an error
// wrapping configsync.ErrUnavailable, and every watch reports that once;
// Set and Remove still work, and the watches deliver what they changed
// once the centre is available again.
func (s *Source) SetAvailable(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != !ok {
		s.down = !ok
		s.notifyLocked()
	}
}

// Revision returns the current store revision.
func (s *Source) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Compact drops the history up to and including rev, like etcd's
// compaction: a watch that has to resume from before it re-reads
// everything and sends a Reset.
func (s *Source) Compact(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rev = min(rev, s.rev)
	if rev <= s.compacted {
		return
	}
	i := 0
	for ; i < len(s.history) && s.history[i].Entry.Revision <= rev; i++ {
		ev := s.history[i]
		if ev.Type == configsync.Delete {
			delete(s.base, ev.Entry.App)
		} else {
			s.base[ev.Entry.App] = ev.Entry
		}
	}
	s.history = slices.Clone(s.history[i:])
	s.compacted = rev
	s.notifyLocked()
}

// Close ends every watch (their channels close) and makes further calls
// fail. It is idempotent.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
		s.notifyLocked()
	}
	return nil
}

// Watch streams changes after afterRevision; see configsync.Source. With
// afterRevision 0, or one the history no longer reaches (compacted), it
// first sends a Reset with every document. While the source is
// unavailable it sends one response whose Err wraps
// configsync.ErrUnavailable, and once it is back a response with Err nil
// (carrying what changed meanwhile, or no events). The channel closes when
// ctx ends or the source is closed.
func (s *Source) Watch(ctx context.Context, afterRevision int64) <-chan configsync.WatchResponse {
	out := make(chan configsync.WatchResponse)
	go s.watch(ctx, afterRevision, out)
	return out
}

func (s *Source) watch(ctx context.Context, after int64, out chan<- configsync.WatchResponse) {
	defer close(out)
	send := func(r configsync.WatchResponse) bool {
		select {
		case out <- r:
			return true
		case <-ctx.Done():
			return false
		case <-s.done:
			return false
		}
	}
	var (
		state    *configsync.State // what the consumer holds; nil until known
		rev      = after
		reported bool // an Err has been sent and not yet cleared
	)
	for {
		s.mu.Lock()
		changed := s.changed
		var resp configsync.WatchResponse
		var have bool
		switch {
		case s.closed:
			s.mu.Unlock()
			return
		case s.down:
			if !reported {
				resp, have = configsync.WatchResponse{Revision: rev, Err: fmt.Errorf("memory: watch: centre made unavailable: %w", configsync.ErrUnavailable)}, true
				reported = true
			}
		case rev < s.compacted || (state == nil && (rev == 0 || rev > s.rev)):
			// Starting from scratch, or the history no longer reaches rev
			// (compacted, or rev is from the future): send everything.
			resp = configsync.WatchResponse{Reset: true, Revision: s.rev, Events: puts(s.listLocked())}
			if state == nil {
				state = configsync.NewState()
			}
			state.Apply(resp)
			rev, have, reported = s.rev, true, false
		default:
			if state == nil {
				// Resuming: what the consumer holds is the store at rev.
				state = configsync.NewState()
				state.Apply(configsync.WatchResponse{Reset: true, Revision: rev, Events: puts(s.atLocked(rev))})
			}
			var evs []configsync.Event
			for _, ev := range s.history {
				if ev.Entry.Revision > rev {
					evs = append(evs, cloneEvent(ev))
				}
			}
			if len(evs) > 0 {
				rev = evs[len(evs)-1].Entry.Revision
			}
			evs = state.Apply(configsync.WatchResponse{Events: evs, Revision: rev})
			if len(evs) > 0 || reported {
				resp, have = configsync.WatchResponse{Events: evs, Revision: rev}, true
				reported = false
			}
		}
		s.mu.Unlock()
		if have && !send(resp) {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

// atLocked returns the documents as they were at revision rev (>= compacted).
func (s *Source) atLocked(rev int64) []configsync.Entry {
	docs := make(map[string]configsync.Entry, len(s.base))
	for k, v := range s.base {
		docs[k] = v
	}
	for _, ev := range s.history {
		if ev.Entry.Revision > rev {
			break
		}
		if ev.Type == configsync.Delete {
			delete(docs, ev.Entry.App)
		} else {
			docs[ev.Entry.App] = ev.Entry
		}
	}
	out := make([]configsync.Entry, 0, len(docs))
	for _, e := range docs {
		out = append(out, e)
	}
	return out
}

func puts(entries []configsync.Entry) []configsync.Event {
	evs := make([]configsync.Event, len(entries))
	for i, e := range entries {
		evs[i] = configsync.Event{Type: configsync.Put, Entry: clone(e)}
	}
	return evs
}

func cloneEvent(ev configsync.Event) configsync.Event {
	if ev.Type == configsync.Put {
		ev.Entry = clone(ev.Entry)
	}
	return ev
}

func clone(e configsync.Entry) configsync.Entry {
	e.Data = bytes.Clone(e.Data)
	if e.Data == nil {
		e.Data = []byte{}
	}
	return e
}
