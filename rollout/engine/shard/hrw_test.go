package shard

import (
	"fmt"
	"testing"
)

func apps(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("app-%05d", i)
	}
	return out
}

// Every member gets about 1/N of the apps.
func TestOwnerSpreadsApps(t *testing.T) {
	for _, members := range [][]string{{"a", "b", "c"}, {"r1", "r2", "r3", "r4", "r5"}} {
		count := map[string]int{}
		all := apps(20000)
		for _, a := range all {
			count[Owner(a, members)]++
		}
		fair := len(all) / len(members)
		for _, m := range members {
			if c := count[m]; c < fair*9/10 || c > fair*11/10 {
				t.Fatalf("members %v: %s owns %d apps, want %d ±10%% (%v)", members, m, c, fair, count)
			}
		}
	}
}

// Adding a member moves only apps to it (about 1/N of them); removing one
// moves only its own apps.
func TestOwnerMovesOnlyWhatMustMove(t *testing.T) {
	all := apps(20000)
	three := []string{"a", "b", "c"}
	four := []string{"a", "b", "c", "d"}
	moved := 0
	for _, app := range all {
		before, after := Owner(app, three), Owner(app, four)
		if before != after {
			if after != "d" {
				t.Fatalf("%s moved from %s to %s when d joined", app, before, after)
			}
			moved++
		}
	}
	if want := len(all) / 4; moved < want*9/10 || moved > want*11/10 {
		t.Fatalf("%d apps moved to the fourth member, want about %d", moved, want)
	}
	two := []string{"a", "c"}
	for _, app := range all {
		before, after := Owner(app, three), Owner(app, two)
		if before != after && before != "b" {
			t.Fatalf("%s moved from %s to %s when b left", app, before, after)
		}
	}
}

func TestOwnerIsDeterministic(t *testing.T) {
	if Owner("shop", nil) != "" {
		t.Fatal("no members, yet an owner")
	}
	// worked example, kept stable: changing the hash would move every app
	// of a running cluster during a rolling upgrade of graylane
	const want = "8e6065c31e6cdcc0 da66bebd50b95afe r2"
	for _, members := range [][]string{{"r2", "r1"}, {"r1", "r2"}} {
		got := fmt.Sprintf("%016x %016x %s", Score("r1", "shop"), Score("r2", "shop"), Owner("shop", members))
		if got != want {
			t.Fatalf("members %v: scores and owner %q, want %q", members, got, want)
		}
	}
}
