package configrelease

import (
	"testing"

	"github.com/graylane/graylane/rollout"
)

// planLayout is pure: the rollout status and the bundles decide what the
// stable locations and the version-bound copies hold.
func TestPlanLayout(t *testing.T) {
	b := func(d string) *Bundle { return &Bundle{Digest: d} }
	bundles := map[string]*Bundle{"v1": b("d1"), "v2": b("d2"), "v2_cfgd3": b("d3"), "v3": b("d1")}
	for _, tc := range []struct {
		name     string
		st       rollout.Status
		identity string
		want     Layout
	}{
		{"first release: the identity being prepared is stable",
			rollout.Status{}, "v1", Layout{StableIdentity: "v1", StableDigest: "d1"}},
		{"steady", rollout.Status{StableVersion: "v1"}, "v1", Layout{StableIdentity: "v1", StableDigest: "d1"}},
		{"canary with its own config: a version-bound copy",
			rollout.Status{StableVersion: "v1", CanaryVersion: "v2"}, "v2",
			Layout{StableIdentity: "v1", StableDigest: "d1", GrayIdentity: "v2", GrayDigest: "d2"}},
		{"canary with the stable config: no copy",
			rollout.Status{StableVersion: "v1", CanaryVersion: "v3"}, "v3",
			Layout{StableIdentity: "v1", StableDigest: "d1"}},
		{"config-only change",
			rollout.Status{StableVersion: "v2", CanaryVersion: "v2_cfgd3"}, "v2_cfgd3",
			Layout{StableIdentity: "v2", StableDigest: "d2", GrayIdentity: "v2_cfgd3", GrayDigest: "d3"}},
		{"rollback: the target's config becomes stable, the serving version is pinned",
			rollout.Status{StableVersion: "v2", CanaryVersion: "v1", Rollback: true}, "v2",
			Layout{StableIdentity: "v1", StableDigest: "d1", GrayIdentity: "v2", GrayDigest: "d2"}},
		{"canary without a bound config: no copy",
			rollout.Status{StableVersion: "v1", CanaryVersion: "v9"}, "v9",
			Layout{StableIdentity: "v1", StableDigest: "d1"}},
		{"no bundle at all", rollout.Status{StableVersion: "v0"}, "v0", Layout{StableIdentity: "v0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, stableB, grayB := planLayout(tc.st, tc.identity, bundles)
			if got != tc.want {
				t.Fatalf("planLayout(%+v) = %+v, want %+v", tc.st, got, tc.want)
			}
			if (stableB == nil) != (got.StableDigest == "") || (grayB == nil) != (got.GrayIdentity == "") {
				t.Fatalf("bundles returned (%v, %v) disagree with the layout %+v", stableB, grayB, got)
			}
		})
	}
}
