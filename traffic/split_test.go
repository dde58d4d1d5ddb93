package traffic

import (
	"reflect"
	"testing"
)

func TestFromCounts(t *testing.T) {
	vc := func(v string, n int) VersionCount { return VersionCount{Version: v, Count: n} }
	vw := func(v string, w int) VersionWeight { return VersionWeight{Version: v, Weight: w} }
	for _, tc := range []struct {
		name   string
		counts []VersionCount
		want   []VersionWeight
	}{
		{"quarter", []VersionCount{vc("v2", 1), vc("v1", 3)}, []VersionWeight{vw("v2", 25), vw("v1", 75)}},
		{"largest remainder", []VersionCount{vc("v2", 1), vc("v1", 2)}, []VersionWeight{vw("v2", 33), vw("v1", 67)}},
		{"two to one", []VersionCount{vc("v2", 2), vc("v1", 1)}, []VersionWeight{vw("v2", 67), vw("v1", 33)}},
		{"one version", []VersionCount{vc("v2", 5)}, []VersionWeight{vw("v2", 100)}},
		{"ties to the earlier", []VersionCount{vc("v3", 1), vc("v2", 1), vc("v1", 1)}, []VersionWeight{vw("v3", 34), vw("v2", 33), vw("v1", 33)}},
		{"zero dropped", []VersionCount{vc("v2", 0), vc("v1", 4)}, []VersionWeight{vw("v1", 100)}},
		{"nothing", []VersionCount{vc("v2", 0)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FromCounts(tc.counts)
			if !reflect.DeepEqual(got.Weights, tc.want) {
				t.Fatalf("FromCounts(%v) = %v, want %v", tc.counts, got.Weights, tc.want)
			}
			if len(got.Weights) > 0 {
				if err := ValidateSplit(got); err != nil {
					t.Fatalf("FromCounts(%v) is not a valid split: %v", tc.counts, err)
				}
			}
		})
	}
}

func TestValidateSplit(t *testing.T) {
	for _, tc := range []struct {
		s  Split
		ok bool
	}{
		{Split{}, true},
		{New(VersionWeight{"v1", 100}), true},
		{Split{Weights: []VersionWeight{{"v1", 50}, {"v2", 40}}}, false},
		{Split{Weights: []VersionWeight{{"v1", 150}, {"v2", -50}}}, false},
		{Split{Weights: []VersionWeight{{"v1", 50}, {"v1", 50}}}, false},
	} {
		if err := ValidateSplit(tc.s); (err == nil) != tc.ok {
			t.Errorf("ValidateSplit(%v) = %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}

func TestSplitEqualIgnoresZeroWeights(t *testing.T) {
	a := Split{Weights: []VersionWeight{{"v2", 0}, {"v1", 100}}}
	b := New(VersionWeight{"v1", 100})
	if !a.Equal(b) {
		t.Fatalf("%v and %v route the same", a, b)
	}
	if a.Equal(Split{Weights: b.Weights, Preview: "v2"}) {
		t.Fatal("a preview makes splits differ")
	}
}
