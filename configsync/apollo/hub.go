package apollo

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/spec"
)

// historySize is how many events the hub keeps for watches resuming from
// a revision; older resumptions get a Reset.
const historySize = 1024

// origin says where the hub's documents came from.
type origin int

const (
	originNone   origin = iota // nothing yet
	originCache                // the last-known-good cache file
	originApollo               // an agollo update
)

// status classes; a change of class is reported to watches.
const (
	classOK          = "ok"
	classDown        = "down"
	classNotReleased = "not-released"
	classCache       = "cache"
)

// hub is the Source's view of the namespace: the documents, the local
// revision counter, a short history for resuming watches, and what is
// known about Apollo's health. Every field is guarded by Source.mu; changed
// is closed (and replaced) on every change so watches wake up.
type hub struct {
	changed chan struct{}

	entries map[string]configsync.Entry
	rev     int64
	notif   int64 // notification id of the last agollo update applied
	origin  origin
	savedAt time.Time // of the cache, when origin is originCache

	history  []configsync.Event // events after revision histFrom, in order
	histFrom int64

	probed      bool  // a probe has completed
	probeErr    error // nil: the config service answered
	notReleased bool  // the config service answered 404
	confirmed   bool  // the probe saw exactly the cached documents
	graceOver   bool
	agolloErr   error // agollo failed to start

	class string // status class last computed
	seq   int64  // bumped when class changes
}

func newHub() hub {
	return hub{changed: make(chan struct{}), entries: map[string]configsync.Entry{}, class: classOK}
}

// versionOf is an Entry.Version: the MD5 of the released value. Apollo's
// release key identifies the whole namespace, so it would change when any
// other app is released and make compare-and-swap conflict spuriously.
func versionOf(value string) string {
	sum := md5.Sum([]byte(value))
	return hex.EncodeToString(sum[:])
}

// apps keeps the configuration keys that are app names.
func apps(configs map[string]string) map[string]string {
	out := make(map[string]string, len(configs))
	for k, v := range configs {
		if spec.AppPattern.MatchString(k) {
			out[k] = v
		}
	}
	return out
}

// notify wakes every watch.
func (h *hub) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// loaded: the hub holds a state worth serving (possibly empty).
func (h *hub) loaded() bool { return h.origin != originNone || h.notReleased }

// ready: a watch may send its first listing and Get/List may answer. With a
// cache that Apollo has not confirmed, wait for agollo's first sync unless
// Apollo is down, the namespace is unreleased or the grace period is over.
func (h *hub) ready() bool {
	if !h.loaded() || !h.probed {
		return false
	}
	return h.origin == originApollo || h.confirmed || h.probeErr != nil || h.notReleased || h.graceOver
}

// status is what watches report in Err and Healthy adds to its own probe:
// nil when the documents are Apollo's current ones as far as graylane can
// tell, else an error wrapping configsync.ErrUnavailable.
func (h *hub) status(ns string) error {
	what := "serving the last state received"
	switch h.origin {
	case originCache:
		what = "serving the last-known-good cache saved " + h.savedAt.Format(time.RFC3339)
	case originNone:
		what = "nothing received yet"
	}
	switch {
	case h.agolloErr != nil:
		return fmt.Errorf("%w; %s", h.agolloErr, what)
	case h.probeErr != nil:
		return fmt.Errorf("%w; %s", h.probeErr, what)
	case h.notReleased:
		return fmt.Errorf("apollo: namespace %s has no release yet (create it and publish it once in the portal); %s: %w", ns, what, configsync.ErrUnavailable)
	case h.origin == originCache && !h.confirmed:
		return fmt.Errorf("apollo: namespace %s: %s until agollo's first sync: %w", ns, what, configsync.ErrUnavailable)
	}
	return nil
}

func (h *hub) classOf() string {
	switch {
	case h.agolloErr != nil || h.probeErr != nil:
		return classDown
	case h.notReleased:
		return classNotReleased
	case h.origin == originCache && !h.confirmed:
		return classCache
	}
	return classOK
}

// reclass bumps seq when the status class changed.
func (h *hub) reclass() {
	if c := h.classOf(); c != h.class {
		h.class = c
		h.seq++
	}
}

// fromCache loads the cache file into an empty hub.
func (h *hub) fromCache(f *cacheFile) {
	for _, e := range f.Entries {
		h.entries[e.App] = configsync.Entry{App: e.App, Data: []byte(e.Data), Version: versionOf(e.Data), Revision: e.Revision}
	}
	h.rev, h.histFrom = f.Revision, f.Revision
	h.origin, h.savedAt = originCache, f.SavedAt
	h.reclass()
}

// apply replaces the documents with configs (app -> value) and returns the
// events, each with its own new revision: puts in app order, then deletes.
func (h *hub) apply(configs map[string]string) []configsync.Event {
	names := make([]string, 0, len(configs))
	for app := range configs {
		names = append(names, app)
	}
	sort.Strings(names)
	var evs []configsync.Event
	for _, app := range names {
		v := configs[app]
		if held, ok := h.entries[app]; ok && string(held.Data) == v {
			continue
		}
		h.rev++
		e := configsync.Entry{App: app, Data: []byte(v), Version: versionOf(v), Revision: h.rev}
		h.entries[app] = e
		evs = append(evs, configsync.Event{Type: configsync.Put, Entry: e})
	}
	var gone []string
	for app := range h.entries {
		if _, ok := configs[app]; !ok {
			gone = append(gone, app)
		}
	}
	sort.Strings(gone)
	for _, app := range gone {
		h.rev++
		delete(h.entries, app)
		evs = append(evs, configsync.Event{Type: configsync.Delete, Entry: configsync.Entry{App: app, Revision: h.rev}})
	}
	h.history = append(h.history, evs...)
	if over := len(h.history) - historySize; over > 0 {
		h.histFrom = h.history[over-1].Entry.Revision
		h.history = append([]configsync.Event(nil), h.history[over:]...)
	}
	return evs
}

// since returns the events after rev; ok is false when the history does not
// reach back that far (or rev is not one of this hub's revisions).
func (h *hub) since(rev int64) ([]configsync.Event, bool) {
	if rev < h.histFrom || rev > h.rev {
		return nil, false
	}
	i := sort.Search(len(h.history), func(i int) bool { return h.history[i].Entry.Revision > rev })
	return append([]configsync.Event(nil), h.history[i:]...), true
}

// listing returns every document, sorted by app.
func (h *hub) listing() []configsync.Entry {
	out := make([]configsync.Entry, 0, len(h.entries))
	for _, e := range h.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// sameAs reports whether configs (app -> value) are exactly the documents.
func (h *hub) sameAs(configs map[string]string) bool {
	if len(configs) != len(h.entries) {
		return false
	}
	for app, v := range configs {
		if e, ok := h.entries[app]; !ok || string(e.Data) != v {
			return false
		}
	}
	return true
}

// snapshot is the cache file for the current documents.
func (h *hub) snapshot(c Config, now time.Time) *cacheFile {
	f := &cacheFile{Format: cacheFormat, AppID: c.AppID, Cluster: c.Cluster, Namespace: c.Namespace, Label: c.Label,
		SavedAt: now, Revision: h.rev, Entries: []cacheEntry{}}
	for _, e := range h.listing() {
		f.Entries = append(f.Entries, cacheEntry{App: e.App, Data: string(e.Data), Revision: e.Revision})
	}
	return f
}
