package nacos

import (
	"errors"
	"strings"
	"testing"
)

func TestParseIndex(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      string // space-separated apps, or "ERR"
	}{
		{"empty document", "", ""},
		{"blank", "  \n", ""},
		{"empty list", "apps: []\n", ""},
		{"sorted and unique", "apps: [b, a, b]\n", "a b"},
		{"block list with comments", "# note\napps:\n  - checkout # main\n  - pay-2\n", "checkout pay-2"},
		{"rendered", renderIndex([]string{"z", "a"}), "a z"},
		{"typo in key", "app: [a]\n", "ERR"},
		{"not an app name", "apps: [Has_Upper]\n", "ERR"},
		{"dot is reserved for graylane's own dataIds", "apps: [graylane.index]\n", "ERR"},
		{"not a list", "apps: a\n", "ERR"},
		{"not YAML", "apps: [a\n", "ERR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apps, err := parseIndex(tc.doc)
			if tc.want == "ERR" {
				if !errors.Is(err, ErrBadIndex) {
					t.Fatalf("parseIndex(%q) = %v, %v; want ErrBadIndex", tc.doc, apps, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseIndex(%q): %v", tc.doc, err)
			}
			if got := strings.Join(apps, " "); got != tc.want {
				t.Fatalf("parseIndex(%q) = %q, want %q", tc.doc, got, tc.want)
			}
		})
	}
}

func TestRenderIndexRoundTrip(t *testing.T) {
	doc := renderIndex([]string{"b", "a", "a"})
	if !strings.HasPrefix(doc, "# graylane release index") || !strings.Contains(doc, "apps:\n  - a\n  - b\n") {
		t.Fatalf("rendered index:\n%s", doc)
	}
	if renderIndex(nil) != renderIndex([]string{}) || !strings.Contains(renderIndex(nil), "apps: []\n") {
		t.Fatalf("empty index:\n%s", renderIndex(nil))
	}
}

func TestRevisions(t *testing.T) {
	var r revisions
	r.init()
	if got := r.mint("a", ""); got != 0 {
		t.Fatalf("absent unknown app: revision %d, want 0 (no change)", got)
	}
	r1 := r.mint("a", "m1")
	r2 := r.mint("a", "m2")
	if r1 != 1 || r2 != 2 || r.mint("a", "m2") != 2 {
		t.Fatalf("mint: %d %d", r1, r2)
	}
	// A lagging read of older content keeps its old revision and does not
	// move the latest.
	if got := r.lookup("a", "m1"); got != r1 {
		t.Fatalf("lookup of older content: %d, want %d", got, r1)
	}
	if got := r.lookup("a", "m2"); got != r2 {
		t.Fatalf("lookup of latest: %d, want %d", got, r2)
	}
	// A real revert seen by the watch is a new change.
	if got := r.mint("a", "m1"); got != 3 {
		t.Fatalf("revert: %d, want 3", got)
	}
	// Unknown content read is a change too.
	if got := r.lookup("b", "x"); got != 4 {
		t.Fatalf("lookup of unknown: %d, want 4", got)
	}
	r.atLeast(100)
	if got := r.mint("a", ""); got != 101 {
		t.Fatalf("after atLeast(100): %d, want 101", got)
	}
	if r.current() != 101 {
		t.Fatalf("current %d", r.current())
	}
}

func TestReadYourWrites(t *testing.T) {
	var w writes
	w.remember("a", "", "v1")
	if got := w.overlay("a", ""); got != "v1" {
		t.Fatalf("read lagging a create: %q, want v1", got)
	}
	w.remember("a", "v1", "v2")
	for _, lagging := range []string{"", "v1"} {
		if got := w.overlay("a", lagging); got != "v2" {
			t.Fatalf("read %q lagging our write: %q, want v2", lagging, got)
		}
	}
	// Someone else's newer content shows through.
	if got := w.overlay("a", "v3"); got != "v3" {
		t.Fatalf("read of unknown content: %q, want v3", got)
	}
	w.remember("a", "v2", "")
	if got := w.overlay("a", "v2"); got != "" {
		t.Fatalf("read lagging our delete: %q, want \"\"", got)
	}
	if got := w.overlay("other", "x"); got != "x" {
		t.Fatalf("unrelated dataId: %q", got)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	c, servers, err := Config{Servers: []string{"10.0.0.1:8848", "[::1]:8850"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Group != DefaultGroup || c.IndexDataID != DefaultIndexDataID || c.Timeout != DefaultTimeout {
		t.Fatalf("defaults: %+v", c)
	}
	if servers[0].grpcAddr() != "10.0.0.1:9848" || servers[1].grpcAddr() != "[::1]:9850" {
		t.Fatalf("gRPC addresses: %s %s", servers[0].grpcAddr(), servers[1].grpcAddr())
	}
	_, servers, err = Config{Servers: []string{"lb:80"}, GRPCPort: 9000}.withDefaults()
	if err != nil || servers[0].grpcAddr() != "lb:9000" {
		t.Fatalf("GRPCPort: %v %v", servers, err)
	}
	for _, bad := range []Config{
		{},
		{Servers: []string{"no-port"}},
		{Servers: []string{"h:0"}},
		{Servers: []string{"h:65000"}},
		{Servers: []string{"h:1"}, GRPCPort: 70000},
		{Servers: []string{"h:1"}, Username: "u"},
		{Servers: []string{"h:1"}, AccessKey: "k"},
	} {
		if _, _, err := bad.withDefaults(); err == nil {
			t.Errorf("config %+v: no error", bad)
		}
	}
}
