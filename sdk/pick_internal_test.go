package sdk

import (
	"testing"

	"github.com/graylane/graylane/gray"
)

func zoned(id, version, zone string) gray.Instance {
	return gray.Instance{App: "stock", ID: id, Version: version, Addr: id + ":80", Ready: true, Meta: map[string]string{gray.MetaZone: zone}}
}

// Picking prefers the caller's zone within the decided version, never
// over it, and spreads over every zone when the caller has none.
func TestPickPrefersTheCallersZone(t *testing.T) {
	list := []gray.Instance{
		zoned("v1-a", "v1", "a"), zoned("v1-b1", "v1", "b"), zoned("v1-b2", "v1", "b"),
		zoned("v2-b", "v2", "b"),
		{App: "stock", ID: "v1-a-down", Version: "v1", Addr: "down:80", Meta: map[string]string{gray.MetaZone: "a"}}, // not ready
	}
	pickN := func(zone, version, skip string, n int) map[string]int {
		t.Helper()
		s := &service{app: "stock"}
		s.list.Store(newInstanceSet(list, zone))
		got := map[string]int{}
		for i := 0; i < n; i++ {
			in, err := s.pick(version, nil, skip, preference{})
			if err != nil {
				t.Fatal(err)
			}
			got[in.ID]++
		}
		return got
	}
	for _, c := range []struct {
		name, zone, version, skip string
		want                      map[string]int
	}{
		{"local instance of the version", "a", "v1", "", map[string]int{"v1-a": 6}},
		{"local one failed: same version elsewhere", "a", "v1", "v1-a:80", map[string]int{"v1-b1": -1, "v1-b2": -1}},
		{"the version wins over the zone", "a", "v2", "", map[string]int{"v2-b": 6}},
		{"no zone: round robin over all of the version", "", "v1", "", map[string]int{"v1-a": 2, "v1-b1": 2, "v1-b2": 2}},
		{"no version decided: local first", "b", "", "", map[string]int{"v1-b1": 2, "v1-b2": 2, "v2-b": 2}},
		{"unknown version: any, local first", "a", "v9", "", map[string]int{"v1-a": 6}},
	} {
		if got := pickN(c.zone, c.version, c.skip, 6); !equalCounts(got, c.want) {
			t.Errorf("%s: picked %v, want %v", c.name, got, c.want)
		}
	}
}

// equalCounts compares picks with the wanted counts; -1 wants the
// instance picked at least once (when a skipped address makes round robin
// uneven).
func equalCounts(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		if g := got[k]; g == 0 || (w >= 0 && g != w) {
			return false
		}
	}
	return true
}

// n-d-address picks the named instances whatever their version; n-d-region
// prefers the region within the decided version, over the caller's zone.
func TestPickHonoursNepxionAddressAndRegion(t *testing.T) {
	in := func(id, version, region, zone string) gray.Instance {
		return gray.Instance{App: "stock", ID: id, Version: version, Addr: id + ":80", Ready: true,
			Meta: map[string]string{gray.MetaRegion: region, gray.MetaZone: zone}}
	}
	s := &service{app: "stock"}
	s.list.Store(newInstanceSet([]gray.Instance{
		in("v1-eu", "v1", "eu", "a"), in("v1-us", "v1", "us", "b"), in("v2-eu", "v2", "eu", "a"),
	}, "a"))
	for _, c := range []struct {
		name, version string
		pref          preference
		want          string
	}{
		{"address wins over the version", "v1", preference{addrs: []string{"v2-eu:80"}}, "v2-eu"},
		{"unknown address: ignored", "v1", preference{addrs: []string{"10.9.9.9:80"}}, "v1-eu"},
		{"region wins over the zone", "v1", preference{region: "us"}, "v1-us"},
		{"the version wins over the region", "v2", preference{region: "us"}, "v2-eu"},
	} {
		for i := 0; i < 3; i++ {
			got, err := s.pick(c.version, nil, "", c.pref)
			if err != nil || got.ID != c.want {
				t.Errorf("%s: picked %s (%v), want %s", c.name, got.ID, err, c.want)
			}
		}
	}
}
