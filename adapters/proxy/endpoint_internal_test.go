package proxy

import (
	"slices"
	"testing"
)

func testGroup(addrs ...string) *group {
	g := &group{version: "v1"}
	for _, a := range addrs {
		g.eps = append(g.eps, &endpoint{addr: a, version: "v1"})
	}
	return g
}

// Even endpoints take turns; a busy one is passed over for the next in
// turn, and taken when it is the only one left.
func TestGroupNextLessBusyOfTwo(t *testing.T) {
	g := testGroup("a", "b", "c")
	var order []string
	for i := 0; i < 6; i++ {
		order = append(order, g.next(nil, 0, false).addr)
	}
	if got, want := order, []string{"b", "c", "a", "b", "c", "a"}; !slices.Equal(got, want) {
		t.Fatalf("idle endpoints picked %v, want turns %v", got, want)
	}

	g.eps[1].inflight.Store(5) // b has fallen behind
	counts := map[string]int{}
	for i := 0; i < 30; i++ {
		counts[g.next(nil, 0, false).addr]++
	}
	if counts["b"] != 0 || counts["a"] == 0 || counts["c"] == 0 {
		t.Fatalf("with b busy the picks were %v; want a and c only", counts)
	}

	if e := g.next([]*endpoint{g.eps[0], g.eps[2]}, 0, false); e == nil || e.addr != "b" {
		t.Fatalf("with a and c tried, next = %v; want the busy b, the only one left", e)
	}
	g.eps[1].downUntil.Store(1 << 62)
	if e := g.next([]*endpoint{g.eps[0], g.eps[2]}, 0, false); e != nil {
		t.Fatalf("with a and c tried and b down, next = %s; want none", e.addr)
	}
}
