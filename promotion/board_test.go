package promotion

import (
	"strings"
	"testing"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestBoard: every app of any environment is a row, in name order, with a
// cell per declared environment in order; an app absent from an
// environment is a cell that says so; the cell into which a promotion
// waits names the rule that refuses it.
func TestBoard(t *testing.T) {
	testenv.IntegrationTest(t)
	w := newWorld(t)
	w.put("dev", "web", doc("web", "v1", "hello", 1, ""))
	w.put("dev", "shop", doc("shop", "v1", "hello", 1, ""))
	w.put("test", "shop", doc("shop", "v0", "hello", 1, ""))
	w.healthy("dev", "web", "v1")
	w.healthy("dev", "shop", "v1")
	w.healthy("test", "shop", "v0")

	b, err := w.c.Board(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, e := range b.Environments {
		stages = append(stages, e.Name)
	}
	if got := strings.Join(stages, ","); got != "dev,test,pre,prod" {
		t.Fatalf("stages %s", got)
	}
	if len(b.Apps) != 2 || b.Apps[0].App != "shop" || b.Apps[1].App != "web" {
		t.Fatalf("rows %+v", b.Apps)
	}
	cells := map[string]AppEnv{}
	for _, a := range b.Apps {
		if len(a.Environments) != 4 {
			t.Fatalf("%s has %d cells, want 4", a.App, len(a.Environments))
		}
		for _, e := range a.Environments {
			cells[a.App+"/"+e.Name] = e
		}
	}
	if c := cells["web/test"]; c.Present {
		t.Fatalf("web is not in test, but its cell says %+v", c)
	}
	if c := cells["shop/test"]; !c.Present || c.Bundle == nil || c.Bundle.Version != "v0" {
		t.Fatalf("shop in test: %+v", c)
	}
	// dev's v1 has not soaked 10m: the cell into test names the soak rule
	v := cells["shop/test"].Promotion
	if v == nil || v.Allowed || v.Candidate == nil || v.Candidate.Version != "v1" || v.Rule() != environments.RuleSoak {
		t.Fatalf("shop's promotion into test: %+v", v)
	}
}
