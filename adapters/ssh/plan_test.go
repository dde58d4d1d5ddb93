package ssh

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/graylane/graylane/traffic"
)

func hosts(spec ...string) []HostState {
	// "a:v1:canary", "b:v1", "c:" (idle)
	var out []HostState
	for _, s := range spec {
		var h HostState
		parts := splitColon(s)
		h.Name, h.Version = parts[0], parts[1]
		h.Canary = len(parts) > 2 && parts[2] == "canary"
		out = append(out, h)
	}
	return out
}

func splitColon(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ':' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func fmtMoves(ms []Move) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s:%s->%s", m.Host, m.From, m.To))
	}
	return out
}

func TestPlanMoves(t *testing.T) {
	cases := []struct {
		name   string
		hosts  []HostState
		want   traffic.Replicas
		target string
		moves  []string
	}{
		{"nothing to do", hosts("a:v1", "b:v1"), traffic.Replicas{"v1": 2}, "v1", nil},
		{"first deploy fills idle hosts", hosts("a:", "b:"), traffic.Replicas{"v1": 2}, "v1",
			[]string{"a:->v1", "b:->v1"}},
		{"canary host moves first", hosts("a:v1", "b:v1", "c:v1:canary", "d:v1"), traffic.Replicas{"v1": 3, "v2": 1}, "v2",
			[]string{"c:v1->v2"}},
		{"then the rest in spec order", hosts("a:v1", "b:v1", "c:v2:canary", "d:v1"), traffic.Replicas{"v1": 1, "v2": 3}, "v2",
			[]string{"a:v1->v2", "b:v1->v2"}},
		{"full switch", hosts("a:v1", "b:v1", "c:v2:canary", "d:v1"), traffic.Replicas{"v2": 4}, "v2",
			[]string{"a:v1->v2", "b:v1->v2", "d:v1->v2"}},
		{"rollback", hosts("a:v2", "b:v2", "c:v2:canary", "d:v1"), traffic.Replicas{"v1": 4}, "v1",
			[]string{"c:v2->v1", "a:v2->v1", "b:v2->v1"}},
		{"surge on fixed hosts becomes a replacement", hosts("a:v1", "b:v1"), traffic.Replicas{"v1": 2, "v2": 1}, "v2",
			[]string{"a:v1->v2"}},
		{"surplus without a taker stops", hosts("a:v1", "b:v1", "c:v1"), traffic.Replicas{"v1": 1}, "v1",
			[]string{"a:v1->", "b:v1->"}},
		{"idle hosts are used before running ones", hosts("a:v1", "b:"), traffic.Replicas{"v1": 1, "v2": 1}, "v2",
			[]string{"b:->v2"}},
		{"old versions absent from want give way", hosts("a:v0", "b:v1"), traffic.Replicas{"v1": 1, "v2": 1}, "v2",
			[]string{"a:v0->v2"}},
		{"everything to zero", hosts("a:v1", "b:v2"), traffic.Replicas{}, "v2",
			[]string{"a:v1->", "b:v2->"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fmtMoves(PlanMoves(tc.hosts, tc.want, tc.target))
			if !reflect.DeepEqual(got, tc.moves) {
				t.Fatalf("moves = %v, want %v", got, tc.moves)
			}
			// Applying the moves must reach want wherever hosts allow.
			after := map[string]int{}
			moved := map[string]string{}
			for _, m := range PlanMoves(tc.hosts, tc.want, tc.target) {
				moved[m.Host] = m.To
			}
			for _, h := range tc.hosts {
				v := h.Version
				if to, ok := moved[h.Name]; ok {
					v = to
				}
				if v != "" {
					after[v]++
				}
			}
			total := 0
			for _, n := range tc.want {
				total += n
			}
			if total <= len(tc.hosts) {
				for v, n := range tc.want {
					if after[v] != n {
						t.Fatalf("after moves %v, want %v", after, tc.want)
					}
				}
			}
			// Idempotent: planning again from the result plans nothing.
			var next []HostState
			for _, h := range tc.hosts {
				if to, ok := moved[h.Name]; ok {
					h.Version = to
				}
				next = append(next, h)
			}
			if total <= len(tc.hosts) {
				if again := PlanMoves(next, tc.want, tc.target); len(again) != 0 {
					t.Fatalf("second plan is not empty: %v", fmtMoves(again))
				}
			}
		})
	}
}

func TestBatches(t *testing.T) {
	moves := []Move{
		{Host: "a", From: "v1", To: "v2"}, {Host: "b", From: "v1", To: "v2"},
		{Host: "c", From: "v1", To: "v2", Canary: true}, {Host: "d", From: "v1", To: "v2"},
		{Host: "e", From: "v1", To: ""},
	}
	var got [][]string
	for _, b := range Batches(moves, "v2", 2) {
		var names []string
		for _, m := range b {
			names = append(names, m.Host)
		}
		got = append(got, names)
	}
	want := [][]string{{"c"}, {"a", "b"}, {"d"}, {"e"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("batches = %v, want %v", got, want)
	}
	if n := len(Batches(moves, "v2", 0)); n != 5 {
		t.Fatalf("size 0 gives %d batches, want 5 of one host", n)
	}
}

func TestPrune(t *testing.T) {
	rel := []string{"v9", "v8", "v7", "v6", "v5", "v1"}
	if got := Prune(rel, 3, "v9", "v1"); !reflect.DeepEqual(got, []string{"v6", "v5"}) {
		t.Fatalf("Prune = %v", got)
	}
	if got := Prune(rel, 20); got != nil {
		t.Fatalf("Prune under the limit = %v", got)
	}
}
