package rollout

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// hookSim plays the release-hook runner: hooks of the declared kinds for
// the desired version; a hook the planner asks for starts (running), and
// the script decides its outcome.
type hookSim struct {
	kinds map[string]bool
	state map[string]string // "identity/kind" -> state
}

func (h *hookSim) gate(w *world) *HookGate {
	g := &HookGate{Identity: w.spec.Version, Hooks: map[string]HookState{}}
	for k := range h.kinds {
		st := h.state[w.spec.Version+"/"+k]
		g.Hooks[k] = HookState{State: st, Message: "hook " + k + " " + st}
	}
	return g
}

func (h *hookSim) apply(w *world, d Decision) {
	for _, k := range d.RetryHooks {
		delete(h.state, w.spec.Version+"/"+k)
	}
	for _, k := range d.StartHooks {
		h.state[w.spec.Version+"/"+k] = HookRunning
	}
}

func (h *hookSim) String() string {
	var out []string
	for k, v := range h.state {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// hookLine runs: hooks KIND... (the app has hooks of these kinds), hook
// KIND passed|failed (the desired version's hook ends), freeze REASON,
// unfreeze.
func (w *world) hookLine(f []string) {
	switch f[0] {
	case "hooks":
		w.hooks = &hookSim{kinds: map[string]bool{}, state: map[string]string{}}
		for _, k := range f[1:] {
			w.hooks.kinds[k] = true
		}
	case "hook":
		w.hooks.state[w.spec.Version+"/"+f[1]] = f[2]
		w.run()
	case "freeze":
		w.frozen = strings.Join(f[1:], " ")
		w.run()
	case "unfreeze":
		w.frozen = ""
		w.run()
	default:
		panic(fmt.Sprint("hook line ", f))
	}
}

func TestHookScenarios(t *testing.T) {
	// pre-release: no canary instance starts until the hook passed; a
	// failure holds the release Paused with nothing started, resume retries
	runScenario(t, "pre_release_gates_the_first_instance", canaryYAML, `
		run
		hooks preRelease
		version v2
		expect phase=Progressing canary=v2 step=0 running=v1:4/4 split=v1:100
		hook preRelease failed
		expect phase=Paused canary=v2 running=v1:4/4 split=v1:100 message=pre-release_hook_of_v2_failed:_hook_preRelease_failed;_resume_to_retry
		cmd resume
		expect phase=Progressing running=v1:4/4
		hook preRelease passed
		expect phase=Progressing step=1 running=v1:4/4,v2:1/1 split=v2:25,v1:75
	`)
	// a first release waits for its pre-release hook too
	runScenario(t, "pre_release_gates_a_first_release", canaryYAML, `
		hooks preRelease
		run
		expect phase=Progressing stable=v1 running=
		hook preRelease passed
		expect phase=Healthy running=v1:4/4
	`)
	// confirm-promotion: asked for only when the canary reaches its last
	// step (setWeight 100 here); the canary holds at 50% until it passes;
	// promote does not bypass it
	runScenario(t, "confirm_promotion_before_the_last_step", canaryYAML, `
		run
		hooks confirmPromotion
		version v2
		wait 5s
		expect phase=Paused step=3 split=v2:50,v1:50
		cmd promote
		expect phase=Progressing step=4 split=v2:50,v1:50 running=v1:4/4,v2:2/2
		cmd promote-full
		expect phase=Progressing step=4 split=v2:50,v1:50 running=v1:4/4,v2:2/2
		hook confirmPromotion failed
		expect phase=Paused step=4 split=v2:50,v1:50 running=v1:4/4,v2:2/2
		cmd resume
		hook confirmPromotion passed
		expect phase=Healthy stable=v2 split=v2:100
	`)
	runScenario(t, "confirm_promotion_holds_the_bluegreen_switch", blueGreenAutoYAML, `
		run
		hooks confirmPromotion
		version v2
		wait 10s
		expect phase=Progressing running=v1:2/2,v2:2/2 split=v1:100 preview=v2
		hook confirmPromotion passed
		expect phase=Healthy stable=v2 split=v2:100
	`)
	runScenario(t, "confirm_promotion_holds_a_rolling_update_at_its_start", rollingYAML, `
		run
		hooks confirmPromotion
		version v2
		expect phase=Progressing canary=v2 running=v1:4/4
		hook confirmPromotion passed
		expect phase=Healthy stable=v2 running=v2:4/4
	`)
}

func TestFreezeScenarios(t *testing.T) {
	// a frozen environment starts no release; a rollout in progress
	// carries on; unfreezing lets the waiting version start
	runScenario(t, "frozen_holds_new_releases", canaryYAML, `
		run
		freeze change freeze
		version v2
		expect phase=Paused stable=v1 canary= running=v1:4/4 message=environment_frozen_(change_freeze):_v2_waits_until_it_is_unfrozen
		unfreeze
		expect phase=Progressing canary=v2 step=1
	`)
	runScenario(t, "frozen_holds_a_first_release", canaryYAML, `
		freeze audit
		run
		expect phase=Paused stable= running=
		unfreeze
		expect phase=Healthy stable=v1 running=v1:4/4
	`)
	runScenario(t, "frozen_lets_a_rollout_in_progress_finish", canaryYAML, `
		run
		version v2
		freeze late
		wait 5s
		expect phase=Paused step=3
		cmd promote
		expect phase=Healthy stable=v2
	`)
}
