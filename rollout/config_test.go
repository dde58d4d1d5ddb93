package rollout

import (
	"fmt"
	"strings"
	"testing"
)

// configSim stands in for the config layer (configrelease) in scenarios.
// In auto mode it behaves as the layer does when every centre answers:
// before each pass it places the config the persisted status asks for
// (the stable version's at the stable location, the version being rolled
// out at its version-bound copy, a fast rollback's target at the stable
// location with the current stable pinned), so placement lags the status
// by one pass, as in the engine. "config down" freezes the layer (a centre
// is unreachable): nothing new is placed until "config up".
//
// Script lines:
//
//	config on [noverify]     enable the gate; digests are "cfg-<version>"
//	config digest V D        set V's digest (e.g. equal to another's)
//	config nodigest V        V has no bound config
//	config down | up         a centre is unreachable / back
//	config mute V            V's instances stop reporting their checksum
//	config unmute V
//	config message TEXT...   expect the status message to contain TEXT
type configSim struct {
	verify  bool
	down    bool
	digests map[string]string
	none    map[string]bool
	muted   map[string]bool
	stable  string          // digest at the stable locations
	placed  map[string]bool // identity -> placed
	last    *ConfigGate
}

func (w *world) configLine(line string, f []string) {
	w.t.Helper()
	c := w.config
	if f[0] != "on" && c == nil {
		w.t.Fatalf("%s: config is not on", line)
	}
	switch f[0] {
	case "on":
		w.config = &configSim{verify: !(len(f) > 1 && f[1] == "noverify"), digests: map[string]string{},
			none: map[string]bool{}, muted: map[string]bool{}, placed: map[string]bool{}}
	case "digest":
		c.digests[f[1]] = f[2]
	case "nodigest":
		c.none[f[1]] = true
	case "down":
		c.down = true
	case "up":
		c.down = false
		w.run()
	case "mute":
		c.muted[f[1]] = true
	case "unmute":
		delete(c.muted, f[1])
		w.run()
	case "message":
		want := strings.Join(f[1:], " ")
		if !strings.Contains(w.status.Message, want) {
			w.t.Fatalf("%s: message %q does not contain %q\ntrace:\n%s", line, w.status.Message, want, strings.Join(w.trace, "\n"))
		}
	default:
		w.t.Fatalf("unknown config line %q", line)
	}
}

func (c *configSim) digest(v string) string {
	if v == "" || c.none[v] {
		return ""
	}
	if d, ok := c.digests[v]; ok {
		return d
	}
	return "cfg-" + v
}

// gate places what the status asks for (unless down) and reports.
func (c *configSim) gate(w *world) *ConfigGate {
	st := w.status
	stable, canary := st.StableVersion, st.CanaryVersion
	if stable == "" {
		stable = w.spec.Version
	}
	if !c.down {
		c.placed = map[string]bool{}
		if canary != "" && st.Rollback {
			c.stable = c.digest(canary)
			c.placed[canary] = true
			c.placed[stable] = true // pinned at its version-bound copy
		} else {
			c.stable = c.digest(stable)
			c.placed[stable] = true
			if canary != "" {
				c.placed[canary] = true
			}
		}
	}
	g := &ConfigGate{Digests: map[string]string{}, StableDigest: c.stable, Placed: map[string]bool{}, Loaded: map[string]int{}, Verify: c.verify}
	for v := range w.counts {
		if d := c.digest(v); d != "" {
			g.Digests[v] = d
		}
	}
	for _, v := range []string{stable, canary, st.PreviousVersion, w.spec.Version} {
		if d := c.digest(v); d != "" {
			g.Digests[v] = d
		}
	}
	for v := range g.Digests {
		// an instance loads its own config when placed, or the stable
		// config when the digests are equal
		g.Placed[v] = c.placed[v] || (g.Digests[v] == c.stable && c.stable != "")
		if g.Placed[v] && !c.muted[v] {
			if n := w.counts[v].Ready; n > 0 {
				g.Loaded[v] = n
			}
		}
	}
	if c.down {
		g.Waiting = "nacos: unavailable"
	}
	c.last = g
	return g
}

func TestConfigScenarios(t *testing.T) {
	runScenario(t, "canary_waits_for_config_then_reports", canaryYAML, `
		config on
		run
		expect phase=Healthy stable=v1 running=v1:4/4
		version v2
		expect phase=Progressing canary=v2 step=1 split=v2:25,v1:75 running=v1:4/4,v2:1/1
		wait 5s
		expect phase=Paused canary=v2 step=3 split=v2:50,v1:50
		cmd promote
		expect phase=Healthy stable=v2 split=v2:100 running=v1:4/4,v2:4/4
	`)
	runScenario(t, "first_release_waits_for_stable_config", canaryYAML, `
		config on
		config down
		plan
		expect phase=Progressing stable=v1 want=v1:0
		config message config cfg-v1 of v1 is not yet settled on every target (nacos: unavailable)
		config up
		expect phase=Healthy stable=v1 running=v1:4/4
	`)
	runScenario(t, "canary_not_started_while_a_centre_is_down", canaryYAML, `
		config on
		run
		config down
		version v2
		expect phase=Progressing canary=v2 step=0 want=v1:4,v2:0 split=v1:100 running=v1:4/4
		config message config cfg-v2 of v2 is not yet on every target (nacos: unavailable)
		wait 30s
		expect phase=Progressing canary=v2 step=0 running=v1:4/4
		config up
		expect phase=Progressing canary=v2 step=1 split=v2:25,v1:75 running=v1:4/4,v2:1/1
	`)
	runScenario(t, "traffic_waits_for_instances_to_report", canaryYAML, `
		config on
		run
		config mute v2
		version v2
		expect phase=Progressing canary=v2 step=0 split=v1:100 running=v1:4/4,v2:1/1
		config message 0/1 ready v2 instances report config cfg-v2
		config unmute v2
		expect step=1 split=v2:25,v1:75
	`)
	runScenario(t, "deadline_at_the_gate_rolls_back", canaryAutoRollbackYAML, `
		config on
		run
		config down
		version v2
		wait 1m
		expect phase=RolledBack stable=v1 canary= rejected=v2 running=v1:4/4
	`)
	runScenario(t, "promotion_healthy_only_once_stable_config_is_placed", canaryYAML, `
		config on
		run
		version v2
		wait 5s
		expect phase=Paused step=3
		config down
		cmd promote
		expect phase=Progressing stable=v2 canary= split=v2:100
		config message config cfg-v2 of v2 is not yet settled on every target
		config up
		expect phase=Healthy stable=v2
	`)
	runScenario(t, "fast_rollback_moves_traffic_after_old_config_is_back", canaryYAML, `
		config on
		run
		version v2
		wait 5s
		cmd promote
		expect phase=Healthy stable=v2 previous=v1 running=v1:4/4,v2:4/4
		config down
		cmd rollback
		expect phase=Progressing canary=v1 split=v2:100 running=v1:4/4,v2:4/4
		config up
		expect phase=RolledBack stable=v1 rejected=v2 split=v1:100
	`)
	runScenario(t, "code_only_change_needs_no_new_config", canaryYAML, `
		config on
		config digest v2 cfg-v1
		run
		config down
		version v2
		expect phase=Progressing canary=v2 step=1 split=v2:25,v1:75
	`)
	runScenario(t, "config_only_change_is_a_canary_of_its_identity", rollingYAML, `
		config on
		run
		version v1_cfg0a1b2c3d
		expect phase=Healthy stable=v1_cfg0a1b2c3d running=v1_cfg0a1b2c3d:4/4
		cmd rollback
		expect phase=RolledBack stable=v1 rejected=v1_cfg0a1b2c3d
	`)
	runScenario(t, "blue_green_switch_waits_for_reports", blueGreenYAML, `
		config on
		run
		config mute v2
		version v2
		expect phase=Progressing canary=v2 step=0 split=v1:100 running=v1:3/3,v2:3/3
		config unmute v2
		cmd promote
		expect phase=Healthy stable=v2 split=v2:100
	`)
	runScenario(t, "noverify_waits_only_for_placement", canaryYAML, `
		config on noverify
		run
		config mute v2
		version v2
		wait 5s
		expect phase=Paused canary=v2 step=3 split=v2:50,v1:50
	`)
	runScenario(t, "version_without_bound_config_is_not_gated", canaryYAML, `
		config on
		config nodigest v1
		config nodigest v2
		config down
		run
		expect phase=Healthy stable=v1 running=v1:4/4
	`)
}

// TestConfigGateNilChangesNothing replays a canary with and without an
// empty gate-free config (nil): the decisions are identical.
func TestConfigGateNilChangesNothing(t *testing.T) {
	a, b := newWorld(t, canaryYAML), newWorld(t, canaryYAML)
	for _, w := range []*world{a, b} {
		for _, l := range []string{"run", "version v2", "wait 5s", "cmd promote"} {
			w.do(l)
		}
	}
	if fmt.Sprint(a.trace) != fmt.Sprint(b.trace) {
		t.Fatal("traces differ")
	}
}
