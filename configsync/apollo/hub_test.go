package apollo

import (
	"fmt"
	"slices"
	"testing"

	"github.com/graylane/graylane/configsync"
)

func describe(evs []configsync.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%s %s %q @%d", ev.Type, ev.Entry.App, ev.Entry.Data, ev.Entry.Revision))
	}
	return out
}

// apply turns a full read into events: puts in app order, then deletes,
// each with its own revision; identical documents and non-app keys produce
// nothing.
func TestHubApply(t *testing.T) {
	h := newHub()
	steps := []struct {
		configs map[string]string
		want    []string
	}{
		{map[string]string{"b": "1", "a": "1"}, []string{`PUT a "1" @1`, `PUT b "1" @2`}},
		{map[string]string{"b": "1", "a": "1"}, nil},
		{map[string]string{"a": "2", "b": "1", "c": "1"}, []string{`PUT a "2" @3`, `PUT c "1" @4`}},
		{map[string]string{"c": "1"}, []string{`DELETE a "" @5`, `DELETE b "" @6`}},
		{map[string]string{}, []string{`DELETE c "" @7`}},
	}
	for i, st := range steps {
		got := describe(h.apply(apps(st.configs)))
		if !slices.Equal(got, st.want) {
			t.Fatalf("step %d: events %q, want %q", i, got, st.want)
		}
	}
	if got := apps(map[string]string{"Not_An_App": "x", "ok": "y", "a.b": "z"}); len(got) != 1 || got["ok"] != "y" {
		t.Fatalf("apps kept %v", got)
	}
}

// since replays the history exactly from a revision it covers, and refuses
// (a Reset is needed) before it or past the current revision.
func TestHubSince(t *testing.T) {
	h := newHub()
	h.rev, h.histFrom = 10, 10 // as loaded from a cache at revision 10
	h.apply(map[string]string{"a": "1"})
	h.apply(map[string]string{"a": "2", "b": "1"})
	cases := []struct {
		from int64
		ok   bool
		want []string
	}{
		{10, true, []string{`PUT a "1" @11`, `PUT a "2" @12`, `PUT b "1" @13`}},
		{12, true, []string{`PUT b "1" @13`}},
		{13, true, nil},
		{9, false, nil},
		{14, false, nil},
		{0, false, nil},
	}
	for _, c := range cases {
		evs, ok := h.since(c.from)
		if ok != c.ok || !slices.Equal(describe(evs), c.want) {
			t.Errorf("since(%d) = %q, %v; want %q, %v", c.from, describe(evs), ok, c.want, c.ok)
		}
	}
	// The history is bounded: old revisions then need a Reset.
	for i := range historySize {
		h.apply(map[string]string{"a": fmt.Sprint(i + 100)})
	}
	if _, ok := h.since(13); ok {
		t.Error("since a revision dropped from the history succeeded")
	}
	if evs, ok := h.since(h.rev - 1); !ok || len(evs) != 1 {
		t.Errorf("since the previous revision = %d events, %v", len(evs), ok)
	}
	if len(h.history) != historySize {
		t.Errorf("history holds %d events, want %d", len(h.history), historySize)
	}
}
