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
	entries  map[string]held
	revision int64
	// thins counts the thin entries (Thin).
	thins int
	// thin: every entry is thin (NewThinState).
	thin bool
}

// held is one app's entry. A thin entry (Thin) keeps no Data but the
// digest of its document, so the same content arriving again is still
// recognised.
type held struct {
	Entry
	sum  [sha256.Size]byte
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
		s.entries = make(map[string]held)
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
	h, ok := s.entries[app]
	if ev.Type == Delete {
		if !ok {
			return Event{}, false
		}
		s.remove(app, h)
		return Event{Type: Delete, Entry: Entry{App: app, Revision: ev.Entry.Revision}}, true
	}
	same := ok && h.holds(ev.Entry.Data)
	if h.thin {
		s.thins--
	}
	s.entries[app] = held{Entry: ev.Entry}
	if s.thin || (same && h.thin) {
		s.Thin(app) // unchanged content stays thin
	}
	if same {
		return Event{}, false
	}
	return ev, true
}

// remove forgets app's entry h.
func (s *State) remove(app string, h held) {
	if h.thin {
		s.thins--
	}
	delete(s.entries, app)
}

// holds reports whether h has data as its content.
func (h held) holds(data []byte) bool {
	if h.thin {
		return h.sum == sha256.Sum256(data)
	}
	return bytes.Equal(h.Data, data)
}

// Thin drops app's document data and keeps its digest (and its entry's
// App, Version and Revision): Get returns the entry without Data and
// IsThin reports it, until a Put with new content or Fill brings data
// back. A sharded engine keeps only the documents of the apps it drives.
func (s *State) Thin(app string) {
	h, ok := s.entries[app]
	if !ok || h.thin {
		return
	}
	h.sum, h.thin, h.Data = sha256.Sum256(h.Data), true, nil
	s.entries[app] = h
	s.thins++
}

// IsThin reports whether app's entry is held without its data.
func (s *State) IsThin(app string) bool { return s.entries[app].thin }

// Fill gives a thin app's entry its data back, from en, the app's
// document as read from the source (Source.Get). It takes en when it is
// the revision held or has the content held (a later rewrite of the same
// content, which the State collapsed): the entry keeps the revision and
// version held, as it would have without Thin. It returns the entry to
// use and whether it took en; a document with other content is left for
// the watch to deliver, as a change (use en meanwhile).
func (s *State) Fill(en Entry) (Entry, bool) {
	h, ok := s.entries[en.App]
	if !ok || !h.thin || s.thin || (en.Revision != h.Revision && h.sum != sha256.Sum256(en.Data)) {
		return en, false
	}
	h.Entry.Data, h.thin, h.sum = en.Data, false, [sha256.Size]byte{}
	s.entries[en.App] = h
	s.thins--
	return h.Entry, true
}

// Get returns app's current document, if any.
func (s *State) Get(app string) (Entry, bool) {
	h, ok := s.entries[app]
	return h.Entry, ok
}

// Entries returns every current document, sorted by app.
func (s *State) Entries() []Entry {
	out := make([]Entry, 0, len(s.entries))
	for _, h := range s.entries {
		out = append(out, h.Entry)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// Len returns the number of apps with a document.
func (s *State) Len() int { return len(s.entries) }

// ThinLen returns the number of apps held thin (Thin, NewThinState).
func (s *State) ThinLen() int { return s.thins }

// Revision returns the highest WatchResponse.Revision applied: the point to
// resume a watch from.
func (s *State) Revision() int64 { return s.revision }

// Clone returns an independent copy of s.
func (s *State) Clone() *State {
	c := &State{revision: s.revision, entries: make(map[string]held, len(s.entries)), thins: s.thins, thin: s.thin}
	for k, v := range s.entries {
		c.entries[k] = v
	}
	return c
}
