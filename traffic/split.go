package traffic

// New builds a split from weights in order, dropping zero entries (the
// first entry stays first: it is the newest version). The weights are
// taken as given; ValidateSplit checks them.
//
//	New(VersionWeight{"v2", 25}, VersionWeight{"v1", 75}) -> v2 25, v1 75
//	New(VersionWeight{"v2", 0}, VersionWeight{"v1", 100}) -> v1 100
func New(ws ...VersionWeight) Split {
	var s Split
	for _, w := range ws {
		if w.Weight > 0 {
			s.Weights = append(s.Weights, w)
		}
	}
	return s
}

// VersionCount is a number of instances of one version.
type VersionCount struct {
	Version string
	Count   int
}

// FromCounts turns instance counts into a split in which each version's
// weight is its share of the instances, in whole percent summing to 100:
// traffic that follows instance counts. It uses the largest-remainder
// method: every version gets floor(100*count/total), and the points still
// missing go one each to the versions with the largest remainders (ties to
// the earlier entry). Zero counts are dropped; no instances at all give an
// empty split. Order is kept.
//
//	v2:1 v1:3  -> v2 25, v1 75
//	v2:1 v1:2  -> v2 33, v1 67   (remainders 1 and 2: v1 gets the point)
//	v3:1 v2:1 v1:1 -> v3 34, v2 33, v1 33  (equal remainders: earliest)
func FromCounts(counts []VersionCount) Split {
	total := 0
	for _, c := range counts {
		total += max(c.Count, 0)
	}
	if total == 0 {
		return Split{}
	}
	out := make([]VersionWeight, len(counts))
	rem := make([]int, len(counts))
	sum := 0
	for i, c := range counts {
		n := max(c.Count, 0)
		out[i] = VersionWeight{Version: c.Version, Weight: n * 100 / total}
		rem[i] = n * 100 % total
		sum += out[i].Weight
	}
	for sum < 100 {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		out[best].Weight++
		rem[best] = -1
		sum++
	}
	return New(out...)
}
