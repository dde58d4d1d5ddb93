package docker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// app is one app's desired state and the loop that converges its
// containers to it. The loop is level-triggered: every pass lists the
// app's containers on its engines (by label), probes them, plans from
// what it observed (plan) and starts the actions; long actions (pulls,
// creates, stops) run in their own goroutines and kick the loop when done.
type app struct {
	b         *Backend
	name      string
	kick      chan struct{}
	firstPass chan struct{} // closed after the first pass
	done      chan struct{} // closed when the loop returned
	ctx       context.Context
	cancel    context.CancelFunc
	firstOnce sync.Once

	mu sync.Mutex
	// desired state, from Apply; want is nil until the first Apply
	rel      *spec.Release
	eff      *effective
	want     traffic.Replicas
	gen      int
	oldHosts map[string]spec.DockerHost // engines of earlier releases, still scanned
	// hosts found through Config.Releases before the first Apply
	lookedUp   []spec.DockerHost
	lookedUpAt time.Time
	// observed state
	ctrs     map[string]*ctrState // by container ID
	slots    map[slotKey]*slotState
	pulls    map[string]*pullState // host|image
	view     []adapters.Instance
	viewErr  error
	active   bool // something is starting, stopping or failing: poll fast
	scanned  map[string]bool
	lastPlan planOutput
}

// ctrState is what graylane knows about one container beyond the engine.
type ctrState struct {
	c         ctr
	ready     bool
	everReady bool
	streak    healthprobe.Streak // graylane's probes of its current process
	probeMsg  string             // why the last probe failed
	nextProbe time.Time          // graylane probes only
	stopping  string             // why it is being stopped ("" when not)
	busy      bool               // a worker is starting, stopping or removing it
	restarts  int                // starts by graylane after it exited
	lastExit  int                // exit code of its last exit seen (-1: none seen)
	logKey    string             // container state the log line was read for
	logLine   string             // last lines of its output, once it failed
}

// slotState is what graylane knows about one wanted slot's attempts.
type slotState struct {
	failures int
	lastErr  string
	retryAt  time.Time
	busy     string // "pulling ...", "creating" while a worker runs
	stalled  string
}

type pullState struct {
	gen  int
	done chan struct{}
	err  error
}

func newApp(b *Backend, name string) *app {
	ctx, cancel := context.WithCancel(b.ctx)
	return &app{
		b: b, name: name, ctx: ctx, cancel: cancel,
		kick:      make(chan struct{}, 1),
		firstPass: make(chan struct{}),
		done:      make(chan struct{}),
		oldHosts:  map[string]spec.DockerHost{},
		ctrs:      map[string]*ctrState{},
		slots:     map[slotKey]*slotState{},
		pulls:     map[string]*pullState{},
	}
}

func (a *app) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *app) close() {
	a.cancel()
	<-a.done
}

// setDesired records what Apply asked for and kicks the loop.
func (a *app) setDesired(rel *spec.Release, eff *effective, want traffic.Replicas) {
	a.mu.Lock()
	if a.eff != nil {
		for _, h := range a.eff.hosts {
			a.oldHosts[hostKey(h)] = h
		}
	}
	changed := a.want == nil || !reflect.DeepEqual(a.want, want) || a.rel == nil || a.rel.Hash() != rel.Hash()
	a.rel, a.eff, a.want = rel, eff, want
	for _, h := range eff.hosts {
		delete(a.oldHosts, hostKey(h))
	}
	if changed {
		a.gen++
	}
	a.mu.Unlock()
	a.poke()
}

// observed returns the last view.
func (a *app) observed() ([]adapters.Instance, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.viewErr != nil {
		return nil, a.viewErr
	}
	out := make([]adapters.Instance, len(a.view))
	for i, in := range a.view {
		in.Meta = cloneMeta(in.Meta)
		out[i] = in
	}
	return out, nil
}

func cloneMeta(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (a *app) run() {
	defer a.b.wg.Done()
	defer close(a.done)
	for {
		a.pass()
		a.firstOnce.Do(func() { close(a.firstPass) })
		t := time.NewTimer(a.interval())
		select {
		case <-a.ctx.Done():
			t.Stop()
			return
		case <-a.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// interval is the time to the next pass: the health interval, shorter
// while something is in progress, longer for an app nobody applied.
func (a *app) interval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := spec.DefaultHealthInterval
	if a.rel != nil {
		h = healthprobe.SpecOf(a.rel.Health).Interval
	}
	switch {
	case a.active:
		return min(h, 100*time.Millisecond)
	case a.want == nil && len(a.ctrs) == 0:
		return 5 * time.Second
	}
	return h
}

// hosts returns the engines to scan and the placement order.
func (a *app) hosts() (scan []spec.DockerHost, place []string) {
	a.mu.Lock()
	eff := a.eff
	var old []spec.DockerHost
	for _, h := range a.oldHosts {
		old = append(old, h)
	}
	sort.Slice(old, func(i, j int) bool { return hostKey(old[i]) < hostKey(old[j]) })
	looked, lookedAt := a.lookedUp, a.lookedUpAt
	a.mu.Unlock()
	if eff != nil {
		for _, h := range eff.hosts {
			place = append(place, h.HostName())
		}
		return append(append([]spec.DockerHost(nil), eff.hosts...), old...), place
	}
	// Not applied yet (graylane restarted): find the app's engines from
	// its release in force, looked up at most every 10s.
	if looked == nil || time.Since(lookedAt) > 10*time.Second {
		looked = []spec.DockerHost{a.b.cfg.DefaultHost}
		if a.b.cfg.Releases != nil {
			ctx, cancel := context.WithTimeout(a.ctx, a.b.cfg.CallTimeout)
			rel, err := a.b.cfg.Releases(ctx, a.name)
			cancel()
			if err == nil && rel != nil && rel.Backend.Docker != nil {
				if len(rel.Backend.Docker.Hosts) > 0 {
					looked = rel.Backend.Docker.Hosts
				}
			}
		}
		a.mu.Lock()
		a.lookedUp, a.lookedUpAt = looked, time.Now()
		a.mu.Unlock()
	}
	a.mu.Lock()
	wanted := a.want != nil // Forget before any Apply: stop what runs there
	a.mu.Unlock()
	if wanted {
		for _, h := range looked {
			place = append(place, h.HostName())
		}
	}
	return looked, place
}

// pass is one reconcile pass: observe every engine, probe, plan, act,
// publish the view.
func (a *app) pass() {
	scan, place := a.hosts()
	now := time.Now()
	seen := map[string]ctr{}
	scanned := map[string]bool{}
	var errs []error
	for _, h := range scan {
		cs, err := a.list(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		scanned[h.HostName()] = true
		for _, c := range cs {
			seen[c.ID] = c
		}
	}

	a.mu.Lock()
	for id, c := range seen {
		st := a.ctrs[id]
		if st == nil {
			st = &ctrState{lastExit: -1}
			a.ctrs[id] = st
		}
		if c.State == "exited" || c.State == "restarting" || c.State == "dead" {
			st.lastExit = c.ExitCode // a restart clears the engine's own
		}
		if !st.c.StartedAt.Equal(c.StartedAt) && st.c.ID != "" {
			// it restarted: judge the new process afresh
			st.ready, st.streak, st.nextProbe = false, healthprobe.Streak{}, time.Time{}
		}
		st.c = c
	}
	for id, st := range a.ctrs {
		if _, ok := seen[id]; !ok && scanned[st.c.Host] && !st.busy {
			delete(a.ctrs, id)
		}
	}
	a.scanned = scanned
	if a.ctx.Err() != nil {
		a.mu.Unlock()
		return // closing
	}
	if len(errs) > 0 {
		// An engine that cannot be reached holds the app: acting on a
		// partial view could start a slot twice or stop the wrong one.
		err := errors.Join(errs...)
		changed := a.viewErr == nil || a.viewErr.Error() != err.Error()
		a.viewErr = err
		a.active = true
		a.mu.Unlock()
		if changed {
			a.b.log.Warn("engine unreachable: holding the app", "app", a.name, "err", err)
			a.b.notify(a.name)
		}
		return
	}
	a.viewErr = nil
	a.mu.Unlock()

	a.checkHealth(now)
	a.readLogs()

	a.mu.Lock()
	out := plan(a.planInputLocked(place, now))
	a.lastPlan = out
	acts := a.claimLocked(out.Actions)
	a.mu.Unlock()
	for _, act := range acts {
		a.startWorker(act)
	}

	a.mu.Lock()
	view := a.buildViewLocked()
	changed := !reflect.DeepEqual(view, a.view)
	a.view = view
	a.mu.Unlock()
	if changed {
		a.b.notify(a.name)
	}
}

// list returns the app's containers on engine h, inspecting those whose
// state changed since the last pass.
func (a *app) list(h spec.DockerHost) ([]ctr, error) {
	e, err := a.b.engines.get(h)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.b.cfg.CallTimeout)
	defer cancel()
	sums, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelApp+"="+a.name))})
	if err != nil {
		return nil, e.err("list containers", err)
	}
	var out []ctr
	for _, s := range sums {
		a.mu.Lock()
		prev := a.ctrs[s.ID]
		a.mu.Unlock()
		if prev != nil && prev.c.Host == h.HostName() && prev.c.State == s.State && s.State == "running" && healthOf(s.Status) == prev.c.Health {
			out = append(out, prev.c) // unchanged: no need to inspect
			continue
		}
		in, err := e.cli.ContainerInspect(ctx, s.ID)
		if err != nil {
			if isNotFound(err) {
				continue // removed meanwhile
			}
			return nil, e.err("inspect container "+shortID(s.ID), err)
		}
		if c, ok := fromInspect(a.name, h, in); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// healthOf extracts the health part of a container summary's Status
// ("Up 3 seconds (healthy)" -> "healthy").
func healthOf(status string) string {
	switch {
	case strings.Contains(status, "(healthy)"):
		return "healthy"
	case strings.Contains(status, "(unhealthy)"):
		return "unhealthy"
	case strings.Contains(status, "(health: starting)"):
		return "starting"
	}
	return ""
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// planInputLocked gathers the planner's input.
func (a *app) planInputLocked(place []string, now time.Time) planInput {
	in := planInput{
		Want:         a.want,
		Hosts:        place,
		Order:        spec.DockerStartFirst,
		SlotFailing:  map[slotKey]bool{},
		RetryAt:      map[slotKey]time.Time{},
		StartTimeout: spec.DefaultProgressDeadline,
		Now:          now,
	}
	if a.eff != nil {
		in.Order = a.eff.d.EffectiveOrder()
	}
	if a.rel != nil {
		in.StartTimeout = a.rel.Strategy.EffectiveProgressDeadline()
	}
	for _, st := range a.ctrs {
		c := st.c
		in.Containers = append(in.Containers, cview{
			ID: c.ID, Host: c.Host, Key: c.Key, State: c.State, Created: c.Created,
			Ready: st.ready, Stopping: st.stopping != "", Failing: a.failingLocked(st),
		})
	}
	sort.Slice(in.Containers, func(i, j int) bool { return in.Containers[i].ID < in.Containers[j].ID })
	for k, s := range a.slots {
		if s.failures > 0 {
			in.SlotFailing[k] = true
		}
		if !s.retryAt.IsZero() {
			in.RetryAt[k] = s.retryAt
		}
	}
	return in
}

// failingLocked: the container crashed or failed to start and was not
// ready since.
func (a *app) failingLocked(st *ctrState) bool {
	if st.ready {
		return false
	}
	c := st.c
	switch c.State {
	case "restarting", "dead":
		return true
	case "exited", "created":
		return c.ExitCode != 0 || c.Error != "" || st.restarts > 0
	}
	return c.Restarts > 0 && !st.everReady
}

// claimLocked drops actions whose slot or container has a worker, and
// marks the rest busy.
func (a *app) claimLocked(acts []action) []action {
	var out []action
	for _, act := range acts {
		if act.Kind == actCreate {
			s := a.slot(act.Key)
			if s.busy != "" {
				continue
			}
			s.busy = "creating"
			out = append(out, act)
			continue
		}
		st := a.ctrs[act.ID]
		if st == nil || st.busy {
			continue
		}
		st.busy = true
		if act.Kind == actStop {
			st.stopping = "stopping: draining"
			st.ready = false
		}
		out = append(out, act)
	}
	return out
}

func (a *app) slot(k slotKey) *slotState {
	s := a.slots[k]
	if s == nil {
		s = &slotState{}
		a.slots[k] = s
	}
	return s
}

// stopAll wants zero of everything and waits until no container is left.
func (a *app) stopAll(ctx context.Context) error {
	a.mu.Lock()
	a.want = traffic.Replicas{}
	a.gen++
	a.mu.Unlock()
	a.poke()
	for {
		a.mu.Lock()
		n, err := len(a.ctrs), a.viewErr
		a.mu.Unlock()
		if n == 0 && err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("containers left: %w (%v)", ctx.Err(), err)
			}
			return fmt.Errorf("%d container(s) left: %w", n, ctx.Err())
		case <-a.ctx.Done():
			return ErrClosed
		case <-time.After(50 * time.Millisecond):
		}
	}
}
