package configsync

import (
	"bytes"
	"crypto/sha256"
	"maps"
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
	// An app is in entries (held whole) or in digests (held thin: Thin,
	// NewThinState), never in both.
	entries  map[string]Entry
	digests  map[string]digest
	revision int64
	// thin: every entry is thin (NewThinState).
	thin bool
}

// digest is a thin entry: the document's digest instead of its data, so
// the same content arriving again is still recognised, and its Version
// and Revision. About 60 bytes against 100 for an Entry: a sharded
// replica holds one for every app another replica drives.
type digest struct {
	version  string
	revision int64
	sum      [sha256.Size]byte
}

func (d digest) entry(app string) Entry {
	return Entry{App: app, Version: d.version, Revision: d.revision}
}

func digestOf(en Entry) digest {
	return digest{version: en.Version, revision: en.Revision, sum: sha256.Sum256(en.Data)}
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
		s.entries, s.digests = make(map[string]Entry), make(map[string]digest)
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
	whole, isWhole := s.entries[app]
	d, isThin := s.digests[app]
	if ev.Type == Delete {
		if !isWhole && !isThin {
			return Event{}, false
		}
		delete(s.entries, app)
		delete(s.digests, app)
		return Event{Type: Delete, Entry: Entry{App: app, Revision: ev.Entry.Revision}}, true
	}
	var same bool
	if isThin || s.thin {
		nd := digestOf(ev.Entry)
		same = isThin && d.sum == nd.sum
		if same || s.thin { // unchanged content stays thin
			s.digests[app] = nd
			if same {
				return Event{}, false
			}
			return ev, true
		}
		delete(s.digests, app) // new content is held whole
	} else {
		same = isWhole && bytes.Equal(whole.Data, ev.Entry.Data)
	}
	s.entries[app] = ev.Entry
	if same {
		return Event{}, false
	}
	return ev, true
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
	delete(s.entries, app)
	s.digests[app] = digestOf(en)
}

// IsThin reports whether app's entry is held without its data.
func (s *State) IsThin(app string) bool {
	_, ok := s.digests[app]
	return ok
}

// Fill gives a thin app's entry its data back, from en, the app's
// document as read from the source (Source.Get). It takes en when it is
// the revision held or has the content held (a later rewrite of the same
// content, which the State collapsed): the entry keeps the revision and
// version held, as it would have without Thin. It returns the entry to
// use and whether it took en; a document with other content is left for
// the watch to deliver, as a change (use en meanwhile).
func (s *State) Fill(en Entry) (Entry, bool) {
	d, ok := s.digests[en.App]
	if !ok || s.thin || (en.Revision != d.revision && d.sum != sha256.Sum256(en.Data)) {
		return en, false
	}
	filled := d.entry(en.App)
	filled.Data = en.Data
	delete(s.digests, en.App)
	s.entries[en.App] = filled
	return filled, true
}

// Get returns app's current document, if any (without Data when thin).
func (s *State) Get(app string) (Entry, bool) {
	if en, ok := s.entries[app]; ok {
		return en, true
	}
	d, ok := s.digests[app]
	return d.entry(app), ok
}

// Entries returns every current document, sorted by app.
func (s *State) Entries() []Entry {
	out := make([]Entry, 0, s.Len())
	for _, en := range s.entries {
		out = append(out, en)
	}
	for app, d := range s.digests {
		out = append(out, d.entry(app))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// Len returns the number of apps with a document.
func (s *State) Len() int { return len(s.entries) + len(s.digests) }

// ThinLen returns the number of apps held thin (Thin, NewThinState).
func (s *State) ThinLen() int { return len(s.digests) }

// Revision returns the highest WatchResponse.Revision applied: the point to
// resume a watch from.
func (s *State) Revision() int64 { return s.revision }

// Clone returns an independent copy of s.
func (s *State) Clone() *State {
	return &State{revision: s.revision, entries: maps.Clone(s.entries), digests: maps.Clone(s.digests), thin: s.thin}
}
