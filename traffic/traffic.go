package traffic

import (
	"errors"
	"sort"
)

// Replicas is the desired number of instances per version. A version absent
// from the map is wanted at zero.
type Replicas map[string]int

// VersionWeight is one version's share of traffic, in percent.
type VersionWeight struct {
	Version string `json:"version"`
	Weight  int    `json:"weight"`
}

// Split is how an app's traffic is divided between versions.
type Split struct {
	// Weights sum to 100 (or are empty: no traffic routed yet). Order
	// matters for stickiness: the first entry is the newest version, and a
	// sticky user's bucket b (0..99) goes to the first entry whose
	// cumulative weight exceeds b, so users who reached a canary at 10%
	// stay on it at 20%.
	Weights []VersionWeight `json:"weights"`
	// Preview, if set, is a version requests can reach by header
	// (X-Graylane-Version) whatever the weights: a blue-green preview or a
	// canary under test.
	Preview string `json:"preview,omitempty"`
}

// Map returns the weights keyed by version.
func (s Split) Map() map[string]int {
	m := make(map[string]int, len(s.Weights))
	for _, w := range s.Weights {
		m[w.Version] += w.Weight
	}
	return m
}

// Total is the sum of the weights.
func (s Split) Total() int {
	t := 0
	for _, w := range s.Weights {
		t += w.Weight
	}
	return t
}

// Equal reports whether two splits route identically.
func (s Split) Equal(o Split) bool {
	if s.Preview != o.Preview {
		return false
	}
	a, b := s.nonZero(), o.nonZero()
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (s Split) nonZero() []VersionWeight {
	var out []VersionWeight
	for _, w := range s.Weights {
		if w.Weight != 0 {
			out = append(out, w)
		}
	}
	return out
}

// Versions returns the versions with a non-zero weight, sorted.
func (s Split) Versions() []string {
	var v []string
	for _, w := range s.nonZero() {
		v = append(v, w.Version)
	}
	sort.Strings(v)
	return v
}

// ValidateSplit checks that a split's weights are each 0..100 and sum to 100
// (or that it is empty).
func ValidateSplit(s Split) error {
	if len(s.Weights) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, w := range s.Weights {
		if w.Weight < 0 || w.Weight > 100 {
			return errors.New("weight of " + w.Version + " is outside 0..100")
		}
		if seen[w.Version] {
			return errors.New("version " + w.Version + " appears twice in the split")
		}
		seen[w.Version] = true
	}
	if s.Total() != 100 {
		return errors.New("weights do not sum to 100")
	}
	return nil
}
