package rollout

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

var update = flag.Bool("update", false, "rewrite golden decision traces in testdata/")

// world is a deterministic stand-in for a backend and a router, used only to
// drive the pure planner through whole releases. Instances it starts become
// ready at the next settle unless their version hangs.
type world struct {
	t              *testing.T
	spec           *spec.Release
	status         Status
	router         bool
	now            time.Time
	counts         map[string]Count
	split          traffic.Split
	hang           map[string]bool
	stalled        map[string]string
	checks         map[string]CheckResult
	last           Decision
	trace          []string
	maxUnavailable int        // invariant bound for rolling, -1 = unchecked
	config         *configSim // config gate (config_test.go); nil: none
	intent         bool       // the desired version was written by a rollback to a revision
	hooks          *hookSim   // release hooks (hooks_test.go); nil: none
	frozen         string     // the environment's freeze reason
	applyErr       string     // the last apply failed with this
}

func newWorld(t *testing.T, yaml string) *world {
	t.Helper()
	rel, err := spec.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	return &world{t: t, spec: rel, router: true, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		counts: map[string]Count{}, hang: map[string]bool{}, stalled: map[string]string{}, checks: map[string]CheckResult{}, maxUnavailable: -1}
}

func (w *world) input(cmd Command) Input {
	vs := map[string]Count{}
	for k, v := range w.counts {
		if v.Total > 0 {
			vs[k] = v
		}
	}
	in := Input{Spec: w.spec, Status: w.status, Command: cmd, Now: w.now, Checks: w.checks,
		Observed: Observed{Versions: vs, Router: w.router, Split: w.split, Stalled: w.stalled, ApplyError: w.applyErr}, RollbackIntent: w.intent}
	if w.config != nil {
		in.Config = w.config.gate(w)
	}
	if w.hooks != nil {
		in.Hooks = w.hooks.gate(w)
	}
	in.Frozen = w.frozen
	return in
}

// plan runs one pass and applies its decision: replicas first, then split.
func (w *world) plan(cmd Command) Decision {
	w.t.Helper()
	in := w.input(cmd)
	d := Plan(in)
	again := Plan(in)
	if !reflect.DeepEqual(again, d) {
		w.t.Fatalf("Plan is not deterministic:\n%v\n%v", d, again)
	}
	w.checkInvariants(in, d)
	for v, n := range d.Replicas {
		c := w.counts[v]
		c.Total = n
		c.Ready = min(c.Ready, n)
		w.counts[v] = c
	}
	if d.Split != nil {
		w.split = *d.Split
	}
	w.status = d.Status
	w.last = d
	if w.hooks != nil {
		w.hooks.apply(w, d)
	}
	w.trace = append(w.trace, w.line(cmd, d))
	return d
}

func (w *world) settle() {
	for v, c := range w.counts {
		if !w.hang[v] {
			c.Ready = c.Total
			w.counts[v] = c
		}
	}
}

// run plans and settles until nothing changes.
func (w *world) run() {
	w.t.Helper()
	for i := 0; i < 60; i++ {
		before := w.state()
		w.plan(CmdNone)
		w.settle()
		if w.state() == before {
			return
		}
	}
	w.t.Fatalf("no fixed point after 60 passes; last: %s", w.trace[len(w.trace)-1])
}

func (w *world) state() string {
	b, _ := jsonish(w.status)
	return b + fmt.Sprint(sortedCounts(w.counts)) + fmt.Sprint(w.split)
}

func jsonish(s Status) (string, error) { return fmt.Sprintf("%+v", s), nil }

func sortedCounts(m map[string]Count) []string {
	var out []string
	for k, v := range m {
		if v.Total > 0 {
			out = append(out, fmt.Sprintf("%s:%d/%d", k, v.Ready, v.Total))
		}
	}
	sort.Strings(out)
	return out
}

func fmtSplit(s *traffic.Split) string {
	if s == nil {
		return "-"
	}
	var parts []string
	for _, x := range s.Weights {
		parts = append(parts, fmt.Sprintf("%s:%d", x.Version, x.Weight))
	}
	out := strings.Join(parts, ",")
	if s.Preview != "" {
		out += " preview=" + s.Preview
	}
	return out
}

func fmtReplicas(r traffic.Replicas) string {
	var parts []string
	for k, v := range r {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (w *world) line(cmd Command, d Decision) string {
	var ev []string
	for _, e := range d.Events {
		ev = append(ev, e.Reason)
	}
	c := ""
	if cmd != "" {
		c = " cmd=" + string(cmd)
	}
	out := fmt.Sprintf("t=%s%s phase=%s stable=%s canary=%s step=%d want=%s split=%s events=%v",
		w.now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), c, d.Status.Phase, d.Status.StableVersion,
		d.Status.CanaryVersion, d.Status.Step, fmtReplicas(d.Replicas), fmtSplit(d.Split), ev)
	if w.config != nil {
		out += " config=" + w.config.last.String()
	}
	if w.hooks != nil {
		out += " hooks=" + w.hooks.String() + fmt.Sprintf(" start=%v", d.StartHooks)
	}
	if (w.hooks != nil || w.frozen != "") && d.Status.Phase == Paused {
		out += " msg=" + d.Status.Message
	}
	return out
}

// checkInvariants holds for every decision, whatever the scenario.
func (w *world) checkInvariants(in Input, d Decision) {
	t := w.t
	t.Helper()
	if d.Split != nil {
		if err := traffic.ValidateSplit(*d.Split); err != nil && len(d.Split.Weights) > 0 {
			t.Fatalf("invalid split %s: %v", fmtSplit(d.Split), err)
		}
		for _, x := range d.Split.Weights {
			// weight may only go to a version with ready instances now
			// (or one that already had that weight: the router falls back)
			if x.Weight > 0 && in.Observed.Versions[x.Version].Ready == 0 && in.Observed.Split.Map()[x.Version] < x.Weight {
				t.Fatalf("split %s gives %s weight but it has no ready instance (observed %v)", fmtSplit(d.Split), x.Version, in.Observed.Versions)
			}
		}
	}
	if in.Observed.Router {
		cur := in.Observed.Split.Map()
		for v, n := range d.Replicas {
			if n == 0 && cur[v] > 0 && in.Observed.Versions[v].Total > 0 {
				t.Fatalf("%s scaled to zero while the router still gives it %d%%", v, cur[v])
			}
		}
	}
	for v, n := range d.Replicas {
		if n < 0 {
			t.Fatalf("negative replicas for %s", v)
		}
	}
	if !in.Observed.Router {
		// Traffic follows instance counts: a version that is neither the
		// stable one nor the one being rolled out (the old version after a
		// promotion, a superseded canary) must never grow, or users go
		// back to it.
		for v, n := range d.Replicas {
			if v != d.Status.StableVersion && v != d.Status.CanaryVersion && n > in.Observed.Versions[v].Total {
				t.Fatalf("no router: %s is neither stable (%s) nor rolled out (%s) but grows from %d to %d instances (want %s)",
					v, d.Status.StableVersion, d.Status.CanaryVersion, in.Observed.Versions[v].Total, n, fmtReplicas(d.Replicas))
			}
		}
	}
	if w.maxUnavailable >= 0 && in.Status.CanaryVersion != "" {
		ready := 0
		for v, n := range d.Replicas {
			ready += min(n, in.Observed.Versions[v].Ready)
		}
		if floor := w.spec.ReplicaCount() - w.maxUnavailable; ready < floor {
			t.Fatalf("rolling: only %d ready instances kept, below replicas-maxUnavailable=%d (want %s, observed %v)", ready, floor, fmtReplicas(d.Replicas), in.Observed.Versions)
		}
	}
}

// do runs one script line.
func (w *world) do(line string) {
	w.t.Helper()
	f := strings.Fields(line)
	switch f[0] {
	case "run":
		w.run()
	case "plan":
		w.plan(CmdNone)
	case "settle":
		w.settle()
	case "wait":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			w.t.Fatal(err)
		}
		w.now = w.now.Add(d)
		w.run()
	case "cmd":
		w.plan(Command(f[1]))
		if len(f) > 2 && f[2] == "!rejected" {
			if w.last.CommandErr == "" {
				w.t.Fatalf("%s: command was accepted, want rejected", line)
			}
		} else if w.last.CommandErr != "" {
			w.t.Fatalf("%s: rejected: %s", line, w.last.CommandErr)
		}
		w.settle()
		w.run()
	case "version":
		w.spec.Version, w.intent = f[1], false
		w.run()
	case "rollback-to":
		// rollback-to VERSION [steps]: the desired version written by a
		// rollback to an earlier revision (with rollback.mode steps)
		w.spec.Version, w.intent = f[1], true
		if len(f) > 2 && f[2] == "steps" {
			w.spec.Rollback = &spec.RollbackPolicy{Mode: spec.RollbackSteps}
		}
		w.run()
	case "check":
		// check NAME ok|fail: one run of an analysis check against the
		// version being rolled out, now
		r := w.checks[f[1]]
		if r.Version != w.status.CanaryVersion {
			r = CheckResult{Version: w.status.CanaryVersion}
		}
		r.Runs = append(r.Runs, CheckRun{At: w.now, OK: f[2] == "ok", Message: "run " + f[2]})
		w.checks[f[1]] = r
		w.run()
	case "hang":
		w.hang[f[1]] = true
	case "unhang":
		delete(w.hang, f[1])
	case "stall":
		// stall VERSION: the backend reports the version cannot progress
		w.stalled[f[1]] = "ProgressDeadlineExceeded: ReplicaSet has timed out progressing"
		w.run()
	case "unstall":
		delete(w.stalled, f[1])
		w.run()
	case "applyfail":
		// applyfail MESSAGE...: the backend's last Apply failed (what
		// runs is unchanged)
		w.applyErr = strings.Join(f[1:], " ")
		w.run()
	case "applyok":
		w.applyErr = ""
		w.run()
	case "norouter":
		w.router = false
	case "config":
		w.configLine(line, f[1:])
	case "hooks", "hook", "freeze", "unfreeze":
		w.hookLine(f) // hooks_test.go
	case "expect":
		w.expect(line, f[1:])
	default:
		w.t.Fatalf("unknown script line %q", line)
	}
}

func (w *world) expect(line string, kv []string) {
	w.t.Helper()
	st := w.status
	for _, item := range kv {
		k, v, _ := strings.Cut(item, "=")
		var got string
		switch k {
		case "phase":
			got = string(st.Phase)
		case "stable":
			got = st.StableVersion
		case "canary":
			got = st.CanaryVersion
		case "step":
			got = fmt.Sprint(st.Step)
		case "split":
			got = fmtSplit(&traffic.Split{Weights: w.split.Weights})
		case "preview":
			got = w.split.Preview
		case "want":
			got = fmtReplicas(w.last.Replicas)
		case "running":
			got = strings.Join(sortedCounts(w.counts), ",")
		case "rejected":
			got = st.RejectedVersion
		case "previous":
			got = st.PreviousVersion
		case "requeue":
			got = w.last.RequeueAfter.String()
		case "message":
			// message=WORDS: the status message is WORDS (spaces written
			// as _), or contains WORDS
			msg := strings.ReplaceAll(st.Message, " ", "_")
			got = v
			if !strings.Contains(msg, v) && !strings.Contains(st.Message, v) {
				got = msg
			}
		case "events":
			var ev []string
			for _, e := range w.last.Events {
				ev = append(ev, e.Reason)
			}
			got = strings.Join(ev, ",")
		default:
			w.t.Fatalf("unknown expectation %q", k)
		}
		if got != v {
			w.t.Fatalf("%s\n  %s = %q, want %q\ntrace:\n%s", line, k, got, v, strings.Join(w.trace, "\n"))
		}
	}
}

func runScenario(t *testing.T, name, yaml string, script string) {
	t.Run(name, func(t *testing.T) {
		w := newWorld(t, yaml)
		if strings.Contains(script, "maxUnavailableCheck") {
			w.maxUnavailable = w.spec.Strategy.MaxUnavailable.Scaled(w.spec.ReplicaCount(), false, 0)
		}
		for _, line := range strings.Split(script, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") || line == "maxUnavailableCheck" {
				continue
			}
			w.do(line)
		}
		golden := filepath.Join("testdata", strings.ReplaceAll(t.Name(), "/", "_")+".trace")
		got := strings.Join(w.trace, "\n") + "\n"
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("missing golden trace (run go test ./rollout -update): %v", err)
		}
		if string(want) != got {
			t.Fatalf("decision trace differs from %s (run with -update if the change is intended)\n--- got\n%s--- want\n%s", golden, got, want)
		}
	})
}
