package kubernetes

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// act renders actions compactly: name=version×replicas[+create|delete].
func act(acts []deployAction) string {
	var parts []string
	for _, a := range acts {
		s := fmt.Sprintf("%s=%s×%d", a.Name, a.Version, a.Replicas)
		if a.Create {
			s += "+create"
		}
		if a.Delete {
			s += "+delete"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestPlanDeployments(t *testing.T) {
	primary := func(v string, replicas, pods int) deployState {
		return deployState{Name: "cart", Version: v, Replicas: replicas, Pods: pods, Primary: true, Created: true}
	}
	version := func(v string, replicas, pods int) deployState {
		return deployState{Name: VersionDeploymentName("cart", v), Version: v, Replicas: replicas, Pods: pods, Created: true}
	}
	cases := []struct {
		name     string
		strategy string
		want     traffic.Replicas
		observed map[string]int
		desired  string
		deps     []deployState
		noCreate bool
		r        int
		out      string
		err      error
	}{
		// rolling: one Deployment, the controller rolls
		{name: "rolling first release creates the primary", strategy: spec.Rolling,
			want: traffic.Replicas{"v1": 4}, desired: "v1",
			out: "cart=v1×4+create"},
		{name: "rolling starts: primary switched to v2 at R", strategy: spec.Rolling,
			want: traffic.Replicas{"v1": 4, "v2": 1}, observed: map[string]int{"v1": 4}, desired: "v2",
			deps: []deployState{primary("v1", 4, 4)}, out: "cart=v2×4"},
		{name: "rolling in progress keeps v2", strategy: spec.Rolling,
			want: traffic.Replicas{"v1": 3, "v2": 2}, observed: map[string]int{"v1": 3, "v2": 2}, desired: "v2",
			deps: []deployState{primary("v2", 4, 5)}, out: "cart=v2×4"},
		{name: "rolling surge exhausted while superseded keeps the roll going", strategy: spec.Rolling,
			want: traffic.Replicas{"v1": 3, "v2": 2, "v3": 0}, observed: map[string]int{"v1": 3, "v2": 2}, desired: "v3",
			deps: []deployState{primary("v2", 4, 5)}, out: "cart=v2×4"},
		{name: "rolling superseded once there is room", strategy: spec.Rolling,
			want: traffic.Replicas{"v1": 2, "v2": 2, "v3": 1}, observed: map[string]int{"v1": 2, "v2": 2}, desired: "v3",
			deps: []deployState{primary("v2", 4, 4)}, out: "cart=v3×4"},
		{name: "rolling rolled back", strategy: spec.Rolling,
			want: traffic.Replicas{"v1": 4, "v2": 0}, observed: map[string]int{"v1": 4, "v2": 1}, desired: "v2",
			deps: []deployState{primary("v2", 4, 5)}, out: "cart=v1×4"},
		{name: "rolling fast rollback keeps its target while both grow", strategy: spec.Rolling,
			want: traffic.Replicas{"v1": 4, "v2": 4}, observed: map[string]int{"v1": 2, "v2": 3}, desired: "v2",
			deps: []deployState{primary("v1", 4, 5)}, out: "cart=v1×4"},
		{name: "rolling from a canary's Deployment grows the primary as asked", strategy: spec.Rolling,
			want: traffic.Replicas{"v2": 4, "v3": 1}, observed: map[string]int{"v2": 4}, desired: "v3",
			deps: []deployState{primary("v1", 0, 0), version("v2", 4, 4)}, out: "cart=v3×1 cart-v2=v2×4"},
		{name: "rolling back to a version in its own Deployment", strategy: spec.Rolling,
			want: traffic.Replicas{"v2": 4, "v3": 0}, observed: map[string]int{"v2": 4, "v3": 1}, desired: "v3",
			deps: []deployState{primary("v3", 1, 1), version("v2", 4, 4)}, out: "cart=v3×0 cart-v2=v2×4"},
		{name: "rolling to zero", strategy: spec.Rolling,
			want: traffic.Replicas{}, desired: "v1",
			deps: []deployState{primary("v1", 4, 4)}, out: "cart=v1×0"},
		{name: "rolling replicas shrink", strategy: spec.Rolling, r: 2,
			want: traffic.Replicas{"v1": 2}, observed: map[string]int{"v1": 4}, desired: "v1",
			deps: []deployState{primary("v1", 4, 4)}, out: "cart=v1×2"},

		// canary and blue-green: one Deployment per version, exact counts
		{name: "canary starts beside the primary", strategy: spec.Canary,
			want: traffic.Replicas{"v1": 4, "v2": 1}, desired: "v2",
			deps: []deployState{primary("v1", 4, 4)}, out: "cart=v1×4 cart-v2=v2×1+create"},
		{name: "canary grows, stable shrinks (no router)", strategy: spec.Canary,
			want: traffic.Replicas{"v1": 2, "v2": 2}, desired: "v2",
			deps: []deployState{primary("v1", 3, 3), version("v2", 1, 1)}, out: "cart=v1×2 cart-v2=v2×2"},
		{name: "canary abort scales the canary to zero", strategy: spec.Canary,
			want: traffic.Replicas{"v1": 4, "v2": 0}, desired: "v2",
			deps: []deployState{primary("v1", 4, 4), version("v2", 2, 2)}, out: "cart=v1×4 cart-v2=v2×0"},
		{name: "an idle version Deployment is deleted", strategy: spec.Canary,
			want: traffic.Replicas{"v1": 4}, desired: "v1",
			deps: []deployState{primary("v1", 4, 4), version("v2", 0, 0)}, out: "cart=v1×4 cart-v2=v2×0+delete"},
		{name: "a draining one is not", strategy: spec.Canary,
			want: traffic.Replicas{"v1": 4}, desired: "v1",
			deps: []deployState{primary("v1", 4, 4), version("v2", 0, 1)}, out: "cart=v1×4 cart-v2=v2×0"},
		{name: "the idle primary takes the next version", strategy: spec.Canary,
			want: traffic.Replicas{"v2": 4, "v3": 1}, desired: "v3",
			deps: []deployState{primary("v1", 0, 0), version("v2", 4, 4)}, out: "cart=v3×1 cart-v2=v2×4"},
		{name: "a primary still draining is not idle", strategy: spec.BlueGreen,
			want: traffic.Replicas{"v2": 4, "v3": 4}, desired: "v3",
			deps: []deployState{primary("v1", 0, 2), version("v2", 4, 4)}, out: "cart=v1×0 cart-v2=v2×4 cart-v3=v3×4+create"},
		{name: "operator's Deployment adopted in place by a canary's first release", strategy: spec.Canary, noCreate: true,
			want: traffic.Replicas{"v1": 4}, desired: "v1",
			deps: []deployState{{Name: "cart", Replicas: 3, Pods: 3, Primary: true}}, out: "cart=v1×4"},
		{name: "operator's Deployment missing", strategy: spec.Canary, noCreate: true,
			want: traffic.Replicas{"v1": 4}, desired: "v1", err: ErrNoDeployment},
		{name: "operator's Deployment never templated is adopted", strategy: spec.Rolling, noCreate: true,
			want: traffic.Replicas{"v1": 4}, desired: "v1",
			deps: []deployState{{Name: "cart", Replicas: 3, Pods: 3, Primary: true}}, out: "cart=v1×4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.r
			if r == 0 {
				r = 4
			}
			got, err := planDeployments(planInput{Strategy: c.strategy, R: r, Want: c.want, Observed: c.observed,
				Desired: c.desired, Primary: "cart", CanCreatePrimary: !c.noCreate, Deployments: c.deps})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := act(got); s != c.out {
				t.Fatalf("actions\n got %s\nwant %s", s, c.out)
			}
		})
	}
}

func TestVersionNames(t *testing.T) {
	for _, c := range []struct{ version, label, name string }{
		{"v2", "v2", "cart-v2"},
		{"2025-01-07", "2025-01-07", "cart-2025-01-07"},
		{"v1.4.0", "v1.4.0", "cart-v1-4-0-" + digest("v1.4.0", 8)},
		{"V2", "V2", "cart-v2-" + digest("V2", 8)},
		{"1.0+build.5", "sha-" + digest("1.0+build.5", 16), "cart-1-0-build-5-" + digest("1.0+build.5", 8)},
		{"_", "sha-" + digest("_", 16), "cart-" + digest("_", 8)},
		{strings.Repeat("a", 70), "sha-" + digest(strings.Repeat("a", 70), 16), "cart-aaaaaaaaaaa-" + digest(strings.Repeat("a", 70), 8)},
	} {
		if got := VersionLabel(c.version); got != c.label {
			t.Errorf("VersionLabel(%q) = %q, want %q", c.version, got, c.label)
		}
		if got := VersionDeploymentName("cart", c.version); got != c.name {
			t.Errorf("VersionDeploymentName(%q) = %q, want %q", c.version, got, c.name)
		}
		if n := VersionDeploymentName(strings.Repeat("d", spec.MaxKubernetesDeploymentName), c.version); len(n) > 63 {
			t.Errorf("VersionDeploymentName(42 chars, %q) is %d characters", c.version, len(n))
		}
	}
}
