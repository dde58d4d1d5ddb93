package configsync

import (
	"bytes"
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
}

// NewState returns an empty State.
func NewState() *State { return &State{} }

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
		return Event{Type: Delete, Entry: Entry{App: app, Revision: ev.Entry.Revision}}, true
	}
	s.entries[app] = ev.Entry
	if ok && bytes.Equal(held.Data, ev.Entry.Data) {
		return Event{}, false
	}
	return ev, true
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

// Revision returns the highest WatchResponse.Revision applied: the point to
// resume a watch from.
func (s *State) Revision() int64 { return s.revision }

// Clone returns an independent copy of s.
func (s *State) Clone() *State {
	c := &State{revision: s.revision, entries: make(map[string]Entry, len(s.entries))}
	for k, v := range s.entries {
		c.entries[k] = v
	}
	return c
}
