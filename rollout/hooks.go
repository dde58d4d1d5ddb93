package rollout

import (
	"fmt"
)

// Hook kinds a HookGate reports on.
const (
	// HookPreRelease runs once per bundle before any instance of it starts
	// (a database migration).
	HookPreRelease = "preRelease"
	// HookConfirmPromotion must answer 2xx before the release's last step
	// (the step that gives the new version all traffic).
	HookConfirmPromotion = "confirmPromotion"
)

// Hook states.
const (
	// HookIdle: not started yet (the decision asks for it in StartHooks).
	HookIdle = ""
	// HookRunning: started, no outcome yet.
	HookRunning = "running"
	// HookPassed: every hook of the kind succeeded.
	HookPassed = "passed"
	// HookFailed: a hook failed; the release holds until resume retries.
	HookFailed = "failed"
)

// HookState is the outcome of one kind of release hook for one release
// identity.
type HookState struct {
	State   string `json:"state,omitempty"`
	Message string `json:"message,omitempty"`
}

// HookGate is what the release-hook runner reports about the release
// being rolled out (the desired release identity): the planner holds the
// release at a hook until it passed, and asks in Decision.StartHooks for
// the hooks it waits on.
//
//   - preRelease: no instance of Identity is started until it passed (the
//     version being rolled out, or a first release). Failed: the release
//     holds (Paused) with the hook's message, nothing started; resume
//     retries.
//   - confirmPromotion: the release does not enter its last step until it
//     passed — canary: the last step when it sets weight 100, else the
//     final promotion; blue-green: the switch; rolling (which has no
//     steps): the start. Failed: the release holds where it is (Paused);
//     resume retries.
//
// A nil gate, or a kind that is absent from it, gates nothing.
type HookGate struct {
	// Identity is the release identity the hooks belong to.
	Identity string `json:"identity"`
	// Hooks maps the kinds the release has hooks of to their state.
	Hooks map[string]HookState `json:"hooks,omitempty"`
}

// has reports whether the gate has hooks of kind for v.
func (g *HookGate) has(kind, v string) bool {
	if g == nil || v == "" || v != g.Identity {
		return false
	}
	_, ok := g.Hooks[kind]
	return ok
}

// passed reports whether v may pass the gate of kind.
func (g *HookGate) passed(kind, v string) bool {
	return !g.has(kind, v) || g.Hooks[kind].State == HookPassed
}

// hookWait holds the release at the gate of kind for v: it asks for the
// hook when it has not started, and says what the release waits for (a
// failure holds it Paused until resume).
func (p *planner) hookWait(kind, v string) {
	st := p.in.Hooks.Hooks[kind]
	if st.State == HookFailed && p.retrying(kind) {
		st.State = HookIdle
	}
	name := map[string]string{HookPreRelease: "pre-release", HookConfirmPromotion: "confirm-promotion"}[kind]
	p.waiting = true
	switch st.State {
	case HookIdle:
		p.startHook(kind)
		p.hold(fmt.Sprintf("%s hook of %s starting", name, v), false)
	case HookRunning:
		p.hold(fmt.Sprintf("waiting for the %s hook of %s: %s", name, v, st.Message), false)
	default:
		p.hold(fmt.Sprintf("%s hook of %s failed: %s; resume to retry", name, v, st.Message), true)
	}
}

// failedHooks lists the kinds of the desired release's hooks that failed.
func (p *planner) failedHooks() []string {
	g := p.in.Hooks
	if g == nil || g.Identity != p.in.Spec.Version {
		return nil
	}
	var out []string
	for _, k := range []string{HookPreRelease, HookConfirmPromotion} {
		if st, ok := g.Hooks[k]; ok && st.State == HookFailed {
			out = append(out, k)
		}
	}
	return out
}

func (p *planner) retrying(kind string) bool {
	for _, k := range p.decision.RetryHooks {
		if k == kind {
			return true
		}
	}
	return false
}

func (p *planner) startHook(kind string) {
	for _, k := range p.decision.StartHooks {
		if k == kind {
			return
		}
	}
	p.decision.StartHooks = append(p.decision.StartHooks, kind)
}

// hold says why the release is held: Paused (a human must act) or, for a
// hook still running, Progressing with the message.
func (p *planner) hold(msg string, human bool) {
	if human {
		p.holdMsg = msg
		return
	}
	if p.msg == "" {
		p.msg = msg
	} else {
		p.msg += "; " + msg
	}
	p.wake(pollWhileConverging)
}

// preReleaseGate keeps instances of a version whose pre-release hook has
// not passed from being started (running ones are kept, none added).
func (p *planner) preReleaseGate() {
	for _, v := range []string{p.next.CanaryVersion, p.next.StableVersion} {
		if p.in.Hooks.passed(HookPreRelease, v) {
			continue
		}
		if have := p.in.Observed.Versions[v].Total; p.want[v] > have {
			p.want[v] = have
		}
		if v == p.next.CanaryVersion || p.in.Observed.Versions[v].Total < p.replicas {
			p.hookWait(HookPreRelease, v)
		}
		return
	}
}

// confirmAt is the canary step index the confirm-promotion hook guards:
// the last step when it sets weight 100, else len(steps) (the final
// promotion).
func (p *planner) confirmAt() int {
	n := len(p.strategy.Steps)
	if n > 0 && p.strategy.Steps[n-1].SetWeight != nil && *p.strategy.Steps[n-1].SetWeight == 100 {
		return n - 1
	}
	return n
}

// confirmHeld reports whether the rollout of v must not enter the guarded
// step yet, and holds it there.
func (p *planner) confirmHeld(v string) bool {
	if p.next.Rollback || p.in.Hooks.passed(HookConfirmPromotion, v) {
		return false
	}
	p.hookWait(HookConfirmPromotion, v)
	return true
}

// frozenHold holds a new release while the environment is frozen: the
// release in progress (if any) carries on, none starts; rollbacks and a
// return to the stable version are not releases and proceed.
func (p *planner) frozenHold(v string) {
	p.frozenMsg = fmt.Sprintf("environment frozen (%s): %s waits until it is unfrozen", p.in.Frozen, v)
	if p.in.Status.Message != p.frozenMsg {
		p.event(Normal, "Frozen", "%s not started: environment frozen (%s)", v, p.in.Frozen)
	}
}

// holdBeforeConfirm keeps a canary where its step before the guarded
// one (confirmAt) left it, while the confirm-promotion hook has not
// passed.
func (p *planner) holdBeforeConfirm() {
	d, s := p.next.CanaryVersion, p.next.StableVersion
	c := p.obs(d)
	want, w := 0, 0
	if g := p.confirmAt(); g > 0 {
		want, w = p.canaryReplicas(g-1), p.weightAt(g-1)
	}
	if c.Ready == 0 || c.Ready < want {
		w = min(w, p.in.Status.Weights[d])
		if c.Ready == 0 {
			w = 0
		}
	}
	p.want[d] = want
	p.want[s] = p.stableBeside(want, c.Ready)
	p.split = splitOf(weight(d, w), weight(s, 100-w))
	p.progressMark = fmt.Sprintf("canary/%s/confirm", d)
}

// atConfirm reports whether a canary at step i (this pass started it at
// the persisted step, or 0 for a new rollout) has reached the step the
// confirm-promotion hook guards without having passed it in an earlier
// pass.
func (p *planner) atConfirm(i int) bool {
	g := p.confirmAt()
	was := p.in.Status.Step
	if p.in.Status.CanaryVersion != p.next.CanaryVersion {
		was = 0
	}
	return i >= g && was <= g
}
