package rollout

import "github.com/graylane/graylane/traffic"

// scaleFor is ceil(r*w/100), at least 1 when w > 0: the instances a version
// needs to take w% of the traffic of r instances.
//
//	scaleFor(4, 25) = 1   scaleFor(4, 26) = 2   scaleFor(10, 11) = 2
func scaleFor(r, w int) int {
	if w <= 0 {
		return 0
	}
	return max(1, (r*w+99)/100)
}

// weight is one version's share of traffic, in percent.
func weight(v string, w int) traffic.VersionWeight {
	return traffic.VersionWeight{Version: v, Weight: w}
}

// splitOf is the split of the given weights, zero entries dropped, newest
// version first (traffic.New).
func splitOf(ws ...traffic.VersionWeight) *traffic.Split {
	s := traffic.New(ws...)
	return &s
}

// instances is a number of ready instances of one version.
func instances(v string, n int) traffic.VersionCount {
	return traffic.VersionCount{Version: v, Count: n}
}

// followInstances is the split in which each version gets its share of the
// ready instances (traffic.FromCounts: whole percent, largest remainder).
func followInstances(counts []traffic.VersionCount) *traffic.Split {
	s := traffic.FromCounts(counts)
	return &s
}
