package configsync

import (
	"bytes"
	"crypto/sha256"
	"sort"
)

// State is the current document of every app as seen through a stream of
// WatchResponses: it collapses churn so that a consumer acts only on real
// changes (practice 7: drop unchanged values, keep the latest).
//
// Apply folds one response in and returns the effective changes. For each
// app the rules are:
//
//	held        event                      change reported   held after
//	-           Put  data=A                Put A             A
//	A v1        Put  data=A v2             none              A v2 (newer Version kept)
//	A           Put  data=B                Put B             B
//	A           Delete                     Delete            -
//	-           Delete                     none              -
//	A           Reset not listing the app  Delete            -
//	A v1        Reset listing data=A v2    none              A v2
//
// Within one response only an app's last event counts (Put B then Put A
// while holding A reports nothing). Responses carrying only Err change
// nothing.
//
// Sources use a State to de-duplicate what they send; consumers (the engine,
// sourcetest.Collector) use one to track current documents. The zero value
// is an empty State ready to use. A State is not safe for concurrent use.
type State struct {
	entries  map[string]Entry
	revision int64
	// sums holds, for each thin app (Thin), the digest of its document:
	// its entry keeps no Data, and the same content arriving again is
	// still recognised.
	sums map[string][sha256.Size]byte
	// thin: every entry is thin (NewThinState).
	thin bool
}

// NewState returns an empty State.
func NewState() *State { return &State{} }

// NewThinState returns an empty State that keeps no document data, only
// a digest per app: a source that needs it only to collapse repeated
// content (practice 7) holds about 100 bytes per app instead of the
// document. Its entries have no Data.
func NewThinState() *State { return &State{thin: true} }

// Apply folds resp into s and returns the effective changes: for every app
// whose document was created, changed content or was removed, one event
// with its final state (Put with the new Entry, or Delete naming the app),
// in the order of each app's last event in resp; apps removed by a Reset
// come last, sorted by name.
func (s *State) Apply(resp WatchResponse) []Event {
	if s.entries == nil {
		s.entries = make(map[string]Entry)
	}
	if resp.Revision > s.revision {
		s.revision = resp.Revision
	}
	// Keep only each app's last event, in the order of those last events.
	last := make(map[string]int, len(resp.Events))
	for i, ev := range resp.Events {
		last[ev.Entry.App] = i
	}
	var changes []Event
	for i, ev := range resp.Events {
		if last[ev.Entry.App] != i {
			continue
		}
		if ch, ok := s.apply(ev); ok {
			changes = append(changes, ch)
		}
	}
	if resp.Reset {
		var gone []string
		for app := range s.entries {
			if _, listed := last[app]; !listed {
				gone = append(gone, app)
			}
		}
		sort.Strings(gone)
		for _, app := range gone {
			ch, _ := s.apply(Event{Type: Delete, Entry: Entry{App: app, Revision: resp.Revision}})
			changes = append(changes, ch)
		}
	}
	return changes
}

func (s *State) apply(ev Event) (Event, bool) {
	app := ev.Entry.App
	held, ok := s.entries[app]
	if ev.Type == Delete {
		if !ok {
			return Event{}, false
		}
		delete(s.entries, app)
		delete(s.sums, app)
		return Event{Type: Delete, Entry: Entry{App: app, Revision: ev.Entry.Revision}}, true
	}
	wasThin := s.IsThin(app)
	same := ok && s.holds(app, held, ev.Entry.Data)
	s.entries[app] = ev.Entry
	delete(s.sums, app)
	if s.thin || (same && wasThin) {
		s.Thin(app) // unchanged content stays thin
	}
	if same {
		return Event{}, false
	}
	return ev, true
}

// holds reports whether held, app's entry, has data as its content.
func (s *State) holds(app string, held Entry, data []byte) bool {
	if sum, thin := s.sums[app]; thin {
		return sum == sha256.Sum256(data)
	}
	return bytes.Equal(held.Data, data)
}

// Thin drops app's document data and keeps its digest (and its entry's
// App, Version and Revision): Get returns the entry without Data and
// IsThin reports it, until a Put with new content or Fill brings data
// back. A sharded engine keeps only the documents of the apps it drives.
func (s *State) Thin(app string) {
	en, ok := s.entries[app]
	if !ok {
		return
	}
	if _, thin := s.sums[app]; thin {
		return
	}
	if s.sums == nil {
		s.sums = make(map[string][sha256.Size]byte)
	}
	s.sums[app] = sha256.Sum256(en.Data)
	en.Data = nil
	s.entries[app] = en
}

// IsThin reports whether app's entry is held without its data.
func (s *State) IsThin(app string) bool {
	_, thin := s.sums[app]
	return thin
}

// Fill gives a thin app's entry its data back, read from the source
// (Source.Get), when en is the revision held; it reports whether it did.
// A newer revision is left for the watch to deliver, as a change.
func (s *State) Fill(en Entry) bool {
	held, ok := s.entries[en.App]
	if !ok || !s.IsThin(en.App) || s.thin || en.Revision != held.Revision {
		return false
	}
	s.entries[en.App] = en
	delete(s.sums, en.App)
	return true
}

// Get returns app's current document, if any.
func (s *State) Get(app string) (Entry, bool) {
	e, ok := s.entries[app]
	return e, ok
}

// Entries returns every current document, sorted by app.
func (s *State) Entries() []Entry {
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// Len returns the number of apps with a document.
func (s *State) Len() int { return len(s.entries) }

// ThinLen returns the number of apps held thin (Thin, NewThinState).
func (s *State) ThinLen() int { return len(s.sums) }

// Revision returns the highest WatchResponse.Revision applied: the point to
// resume a watch from.
func (s *State) Revision() int64 { return s.revision }

// Clone returns an independent copy of s.
func (s *State) Clone() *State {
	c := &State{revision: s.revision, entries: make(map[string]Entry, len(s.entries)), thin: s.thin}
	for k, v := range s.entries {
		c.entries[k] = v
	}
	if s.sums != nil {
		c.sums = make(map[string][sha256.Size]byte, len(s.sums))
		for k, v := range s.sums {
			c.sums[k] = v
		}
	}
	return c
}
