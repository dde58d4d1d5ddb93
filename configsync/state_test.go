package configsync_test

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"

	"github.com/graylane/graylane/configsync"
)

func put(app, data, version string, rev int64) configsync.Event {
	return configsync.Event{Type: configsync.Put, Entry: configsync.Entry{App: app, Data: []byte(data), Version: version, Revision: rev}}
}

func del(app string, rev int64) configsync.Event {
	return configsync.Event{Type: configsync.Delete, Entry: configsync.Entry{App: app, Revision: rev}}
}

// summary renders events as "PUT a=A", "DELETE a" for compact comparisons.
func summary(evs []configsync.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == configsync.Delete {
			out = append(out, "DELETE "+ev.Entry.App)
		} else {
			out = append(out, fmt.Sprintf("PUT %s=%s", ev.Entry.App, ev.Entry.Data))
		}
	}
	return out
}

func TestStateApply(t *testing.T) {
	a1 := put("a", "A", "1", 1)
	tests := []struct {
		name        string
		held        []configsync.Event // applied first, as one response
		resp        configsync.WatchResponse
		wantChanges []string
		wantHeld    map[string]string // app -> data
		wantVersion map[string]string // app -> version, where it matters
	}{
		{name: "new app", resp: resp(put("a", "A", "1", 1)),
			wantChanges: []string{"PUT a=A"}, wantHeld: map[string]string{"a": "A"}},
		{name: "same content newer version", held: []configsync.Event{a1}, resp: resp(put("a", "A", "2", 2)),
			wantHeld: map[string]string{"a": "A"}, wantVersion: map[string]string{"a": "2"}},
		{name: "changed content", held: []configsync.Event{a1}, resp: resp(put("a", "B", "2", 2)),
			wantChanges: []string{"PUT a=B"}, wantHeld: map[string]string{"a": "B"}},
		{name: "delete held", held: []configsync.Event{a1}, resp: resp(del("a", 2)),
			wantChanges: []string{"DELETE a"}, wantHeld: map[string]string{}},
		{name: "delete unknown", resp: resp(del("a", 2)), wantHeld: map[string]string{}},
		{name: "reset drops unlisted", held: []configsync.Event{a1, put("b", "B", "1", 1)},
			resp:        configsync.WatchResponse{Reset: true, Revision: 5, Events: []configsync.Event{put("b", "B", "1", 1)}},
			wantChanges: []string{"DELETE a"}, wantHeld: map[string]string{"b": "B"}},
		{name: "reset same content newer version", held: []configsync.Event{a1},
			resp:     configsync.WatchResponse{Reset: true, Revision: 5, Events: []configsync.Event{put("a", "A", "2", 2)}},
			wantHeld: map[string]string{"a": "A"}, wantVersion: map[string]string{"a": "2"}},
		{name: "reset changes and removals", held: []configsync.Event{a1, put("z", "Z", "1", 1), put("y", "Y", "1", 1)},
			resp:        configsync.WatchResponse{Reset: true, Revision: 5, Events: []configsync.Event{put("c", "C", "3", 3), put("a", "A2", "4", 4)}},
			wantChanges: []string{"PUT c=C", "PUT a=A2", "DELETE y", "DELETE z"}, wantHeld: map[string]string{"a": "A2", "c": "C"}},
		{name: "churn back to held content", held: []configsync.Event{a1}, resp: resp(put("a", "B", "2", 2), put("a", "A", "3", 3)),
			wantHeld: map[string]string{"a": "A"}, wantVersion: map[string]string{"a": "3"}},
		{name: "last event per app in order of last events", resp: resp(put("a", "1", "1", 1), put("b", "1", "2", 2), put("a", "2", "3", 3)),
			wantChanges: []string{"PUT b=1", "PUT a=2"}, wantHeld: map[string]string{"a": "2", "b": "1"}},
		{name: "create then delete in one batch", resp: resp(put("a", "1", "1", 1), del("a", 2)), wantHeld: map[string]string{}},
		{name: "error only", held: []configsync.Event{a1}, resp: configsync.WatchResponse{Err: configsync.ErrUnavailable},
			wantHeld: map[string]string{"a": "A"}},
		{name: "empty data is content", held: []configsync.Event{a1}, resp: resp(put("a", "", "2", 2)),
			wantChanges: []string{"PUT a="}, wantHeld: map[string]string{"a": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s configsync.State // zero value is usable
			s.Apply(configsync.WatchResponse{Events: tt.held, Revision: 1})
			got := summary(s.Apply(tt.resp))
			if !reflect.DeepEqual(got, tt.wantChanges) {
				t.Errorf("changes = %q, want %q", got, tt.wantChanges)
			}
			held := map[string]string{}
			for _, e := range s.Entries() {
				held[e.App] = string(e.Data)
			}
			if !reflect.DeepEqual(held, tt.wantHeld) {
				t.Errorf("held = %v, want %v", held, tt.wantHeld)
			}
			if s.Len() != len(tt.wantHeld) {
				t.Errorf("Len = %d, want %d", s.Len(), len(tt.wantHeld))
			}
			for app, v := range tt.wantVersion {
				if e, _ := s.Get(app); e.Version != v {
					t.Errorf("version of %s = %q, want %q", app, e.Version, v)
				}
			}
		})
	}
}

func resp(evs ...configsync.Event) configsync.WatchResponse {
	var rev int64
	for _, ev := range evs {
		rev = max(rev, ev.Entry.Revision)
	}
	return configsync.WatchResponse{Events: evs, Revision: rev}
}

func TestStateRevisionAndClone(t *testing.T) {
	s := configsync.NewState()
	s.Apply(configsync.WatchResponse{Revision: 7, Events: []configsync.Event{put("a", "A", "7", 7)}})
	s.Apply(configsync.WatchResponse{Revision: 3, Err: configsync.ErrUnavailable})
	if s.Revision() != 7 {
		t.Fatalf("Revision = %d, want 7 (never moves back)", s.Revision())
	}
	c := s.Clone()
	c.Apply(configsync.WatchResponse{Revision: 9, Events: []configsync.Event{del("a", 9)}})
	if _, ok := s.Get("a"); !ok {
		t.Fatal("changing the clone changed the original")
	}
	if _, ok := c.Get("a"); ok || c.Revision() != 9 {
		t.Fatalf("clone: a present=%v revision=%d", ok, c.Revision())
	}
}

func ExampleState() {
	var s configsync.State
	show := func(resp configsync.WatchResponse) {
		for _, ev := range s.Apply(resp) {
			fmt.Printf("%s %s %s\n", ev.Type, ev.Entry.App, ev.Entry.Data)
		}
	}
	show(configsync.WatchResponse{Reset: true, Revision: 2, Events: []configsync.Event{
		put("api", "v1", "1", 1), put("web", "v1", "2", 2),
	}})
	show(configsync.WatchResponse{Revision: 4, Events: []configsync.Event{
		put("api", "v1", "3", 3), // same content again: dropped
		put("web", "v2", "4", 4),
	}})
	show(configsync.WatchResponse{Reset: true, Revision: 9, Events: []configsync.Event{
		put("web", "v2", "4", 4),
	}})
	// Output:
	// PUT api v1
	// PUT web v1
	// PUT web v2
	// DELETE api
}

// A thin app keeps its digest, not its document: the same content is still
// collapsed, new content is a change and brings the data back, and Fill
// restores the data of the revision held only.
func TestStateThin(t *testing.T) {
	s := configsync.NewState()
	s.Apply(configsync.WatchResponse{Revision: 2, Events: []configsync.Event{put("a", "A", "1", 1), put("b", "B", "2", 2)}})
	s.Thin("a")
	if en, _ := s.Get("a"); en.Data != nil || !s.IsThin("a") || en.Version != "1" || en.Revision != 1 {
		t.Fatalf("thin a = %+v (thin %v), want no data, version 1, revision 1", en, s.IsThin("a"))
	}
	if en, _ := s.Get("b"); string(en.Data) != "B" || s.IsThin("b") {
		t.Fatalf("b = %+v, want its data", en)
	}
	if got := summary(s.Apply(configsync.WatchResponse{Revision: 3, Events: []configsync.Event{put("a", "A", "3", 3)}})); got != nil {
		t.Fatalf("same content on a thin app = %v, want no change", got)
	}
	if _, ok := s.Fill(configsync.Entry{App: "a", Data: []byte("other"), Version: "5", Revision: 5}); ok || !s.IsThin("a") {
		t.Fatal("Fill took other content than the one held")
	}
	if en, ok := s.Fill(configsync.Entry{App: "a", Data: []byte("A"), Version: "3", Revision: 3}); !ok || s.IsThin("a") || string(en.Data) != "A" || en.Revision != 3 {
		t.Fatalf("Fill of the revision held = %+v, %v", en, ok)
	}
	if en, _ := s.Get("a"); string(en.Data) != "A" {
		t.Fatalf("a after Fill = %+v", en)
	}
	// the same content rewritten later (collapsed by the State) fills too,
	// keeping the revision held
	s.Thin("a")
	if en, ok := s.Fill(configsync.Entry{App: "a", Data: []byte("A"), Version: "9", Revision: 9}); !ok || en.Revision != 3 || en.Version != "3" || string(en.Data) != "A" {
		t.Fatalf("Fill of a later rewrite of the same content = %+v, %v; want revision 3 with the data", en, ok)
	}
	s.Thin("a")
	if got := summary(s.Apply(configsync.WatchResponse{Revision: 4, Events: []configsync.Event{put("a", "A2", "4", 4)}})); !reflect.DeepEqual(got, []string{"PUT a=A2"}) {
		t.Fatalf("new content on a thin app = %v", got)
	}
	if en, _ := s.Get("a"); string(en.Data) != "A2" || s.IsThin("a") {
		t.Fatalf("a after new content = %+v, want its data back", en)
	}
	s.Thin("a")
	c := s.Clone()
	if got := summary(c.Apply(configsync.WatchResponse{Revision: 5, Events: []configsync.Event{put("a", "A2", "5", 5)}})); got != nil || !s.IsThin("a") {
		t.Fatalf("a clone forgot the digest: %v", got)
	}
	if got := summary(s.Apply(configsync.WatchResponse{Revision: 6, Events: []configsync.Event{del("a", 6)}})); !reflect.DeepEqual(got, []string{"DELETE a"}) || s.IsThin("a") {
		t.Fatalf("delete of a thin app = %v (thin %v)", got, s.IsThin("a"))
	}
}

// A thin State holds no data at all and still collapses repeats.
func TestThinState(t *testing.T) {
	s := configsync.NewThinState()
	if got := summary(s.Apply(configsync.WatchResponse{Reset: true, Revision: 1, Events: []configsync.Event{put("a", "A", "1", 1)}})); !reflect.DeepEqual(got, []string{"PUT a=A"}) {
		t.Fatalf("first = %v", got)
	}
	if en, _ := s.Get("a"); en.Data != nil || !s.IsThin("a") {
		t.Fatalf("a thin state kept data: %+v", en)
	}
	if got := summary(s.Apply(configsync.WatchResponse{Revision: 2, Events: []configsync.Event{put("a", "A", "2", 2)}})); got != nil {
		t.Fatalf("repeat = %v, want none", got)
	}
	if _, ok := s.Fill(configsync.Entry{App: "a", Data: []byte("A"), Revision: 2}); ok {
		t.Fatal("a thin state took data")
	}
	if got := summary(s.Apply(configsync.WatchResponse{Revision: 3, Events: []configsync.Event{put("a", "B", "3", 3)}})); !reflect.DeepEqual(got, []string{"PUT a=B"}) {
		t.Fatalf("change = %v", got)
	}
}

// BenchmarkThinStateMemory reports the heap a thin entry takes
// (bytes/entry): a sharded replica holds one, in the engine and in the
// etcd source, for every app another replica drives.
func BenchmarkThinStateMemory(b *testing.B) {
	const apps = 20000
	events := make([]configsync.Event, apps)
	for j := range events {
		events[j] = put(fmt.Sprintf("svc-%05d", j), "version: v1\n", fmt.Sprint(1000+j), int64(1000+j))
	}
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := configsync.NewThinState()
		s.Apply(configsync.WatchResponse{Reset: true, Revision: 1000 + apps, Events: events})
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/apps, "bytes/entry")
		runtime.KeepAlive(s)
	}
}
