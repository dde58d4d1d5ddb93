package upgrade

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/graylane/graylane/internal/schema"
)

var (
	// rec existed before versions (0) and is at 1 now; born was born
	// versioned at 1 and is at 2 now.
	rec  = schema.Kind{Name: "rec", What: "rec", Current: 1, Unversioned: 0, Steps: []schema.Step{{}}}
	born = schema.Kind{Name: "born", What: "born", Current: 2, Unversioned: 1, Steps: []schema.Step{{}}}
)

func member(id string, reads map[string]int) Member {
	return Member{ID: id, Release: "r-" + id, Reads: reads}
}

func TestDecide(t *testing.T) {
	self := member("self", map[string]int{"rec": 1, "born": 2})
	for _, tc := range []struct {
		name    string
		view    View
		raise   map[string]int
		migrate map[string]int
		waiting []string
		refuse  bool
	}{
		{
			name:    "alone on a fresh etcd: raise and migrate both",
			view:    View{Members: []Member{self}},
			raise:   map[string]int{"rec": 1, "born": 2},
			migrate: map[string]int{"rec": 1, "born": 2},
		},
		{
			name:    "an older graylane holds back only the kind it reads",
			view:    View{Members: []Member{self}, Older: []string{"old-a"}},
			raise:   map[string]int{"born": 2},
			migrate: map[string]int{"born": 2},
			waiting: []string{"rec: written at schema 0 until every graylane reads 1: old-a (a graylane released before schema versions) reads 0"},
		},
		{
			name:    "a member reading an older version holds back that kind",
			view:    View{Members: []Member{self, member("b", map[string]int{"rec": 1, "born": 1})}},
			raise:   map[string]int{"rec": 1},
			migrate: map[string]int{"rec": 1},
			waiting: []string{"born: written at schema 1 until every graylane reads 2: b (r-b) reads up to 1"},
		},
		{
			name:  "a member that does not know a kind does not hold it back",
			view:  View{Members: []Member{self, member("c", map[string]int{"rec": 1})}},
			raise: map[string]int{"rec": 1, "born": 2}, migrate: map[string]int{"rec": 1, "born": 2},
		},
		{
			name:    "raised but not migrated: migrate only",
			view:    View{Members: []Member{self}, Storage: Storage{Kinds: map[string]int{"rec": 1, "born": 2}, Migrated: map[string]int{"born": 2}}},
			raise:   map[string]int{},
			migrate: map[string]int{"rec": 1},
		},
		{
			name:  "all done: nothing",
			view:  View{Members: []Member{self}, Storage: Storage{Kinds: map[string]int{"rec": 1, "born": 2}, Migrated: map[string]int{"rec": 1, "born": 2}}},
			raise: map[string]int{}, migrate: map[string]int{},
		},
		{
			name:  "held: nothing raised",
			view:  View{Members: []Member{self}, Hold: true, Storage: Storage{Kinds: map[string]int{"born": 2}, Migrated: map[string]int{"born": 2}}},
			raise: map[string]int{}, migrate: map[string]int{},
			waiting: []string{"rec: written at schema 0 (migration to 1 held: upgrade.migration is hold)"},
		},
		{
			name:  "storage newer than this graylane reads: refuse, and raise or migrate no other kind",
			view:  View{Members: []Member{self}, Storage: Storage{Kinds: map[string]int{"rec": 2}, RaisedBy: "n (v9)"}},
			raise: map[string]int{}, migrate: map[string]int{},
			refuse: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.view.Kinds = []schema.Kind{rec, born}
			d := Decide(tc.view)
			if !reflect.DeepEqual(d.Raise, tc.raise) || !reflect.DeepEqual(d.Migrate, tc.migrate) || !reflect.DeepEqual(d.Waiting, tc.waiting) {
				t.Fatalf("decision %+v\nwant raise %v migrate %v waiting %q", d, tc.raise, tc.migrate, tc.waiting)
			}
			if (d.Refuse != nil) != tc.refuse {
				t.Fatalf("refuse = %v", d.Refuse)
			}
			if tc.refuse && (!errors.Is(d.Refuse, schema.ErrNewer) || !strings.Contains(d.Refuse.Error(), "raised by n (v9)")) {
				t.Fatalf("refusal %v", d.Refuse)
			}
		})
	}
}
