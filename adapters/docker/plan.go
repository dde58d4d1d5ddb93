package docker

import (
	"fmt"
	"sort"
	"time"

	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// slotKey names one instance position: version and slot number.
type slotKey struct {
	version string
	n       int
}

func (k slotKey) String() string { return fmt.Sprintf("%s/%d", k.version, k.n) }

// cview is what the planner needs to know about one container.
type cview struct {
	ID      string
	Host    string // engine name
	Key     slotKey
	State   string // the engine's: created running restarting exited paused dead removing
	Created time.Time
	// Ready: running and passing its health check. Stopping: graylane is
	// draining or stopping it. Failing: it crashed or failed to start
	// since it was last ready.
	Ready, Stopping, Failing bool
}

// planInput is one app's desired and observed state.
type planInput struct {
	// Want is the desired replicas; nil means unknown (after a restart,
	// before the first Apply): the planner then does nothing.
	Want traffic.Replicas
	// Hosts are the engines in placement order: slot n goes on
	// Hosts[n mod len(Hosts)].
	Hosts []string
	// Order is spec.DockerStartFirst or spec.DockerStopFirst.
	Order      string
	Containers []cview
	// SlotFailing marks wanted slots whose last create or start failed;
	// RetryAt holds back their next attempt.
	SlotFailing map[slotKey]bool
	RetryAt     map[slotKey]time.Time
	// StartTimeout bounds how long a starting container holds surplus
	// containers back under start-first.
	StartTimeout time.Duration
	Now          time.Time
}

type actKind int

const (
	actCreate actKind = iota // create and start a container for Key on Host
	actStart                 // start the existing container ID (created or exited)
	actStop                  // drain, stop and remove container ID
	actRemove                // remove container ID at once (not running: serves nothing)
)

func (k actKind) String() string {
	return [...]string{"create", "start", "stop", "remove"}[k]
}

// action is one thing the reconciler does.
type action struct {
	Kind actKind
	Host string
	Key  slotKey
	ID   string
}

func (a action) String() string {
	if a.Kind == actCreate {
		return fmt.Sprintf("%s %s on %s", a.Kind, a.Key, a.Host)
	}
	return fmt.Sprintf("%s %s (%s) on %s", a.Kind, a.Key, a.ID, a.Host)
}

// planOutput is what to do now, and why wanted slots without a container
// are waiting.
type planOutput struct {
	Actions []action
	// Waiting says why a missing slot is not created yet.
	Waiting map[slotKey]string
	// Missing lists the wanted slots without a container.
	Missing []slotKey
}

// plan decides one reconcile pass. It is pure: state in, actions out.
//
// Each wanted slot (v, n < Want[v]) keeps one container: the first of its
// containers on a current host ordered by not stopping, ready, newest.
// Every other container is surplus. Then:
//
//   - a kept container that is created or exited is started (again), a
//     dead or removing one is removed (its slot is then missing);
//   - a missing slot is created on Hosts[n mod len(Hosts)], after its
//     RetryAt, and under stop-first only once that host has no surplus
//     container left;
//   - a surplus container that is not running is removed at once; a
//     running one is drained and stopped: at once under stop-first, and
//     under start-first only once no wanted slot is starting (a kept
//     container not ready, not failing and younger than StartTimeout, or
//     a missing slot that is not failing).
//
// Example (start-first): want {v2: 1}, containers v1/0 ready and nothing
// for v2/0: create v2/0; v1/0 waits. Next pass, v2/0 exists and is not
// ready: nothing. Once v2/0 is ready: stop v1/0.
func plan(in planInput) planOutput {
	out := planOutput{Waiting: map[slotKey]string{}}
	if in.Want == nil || len(in.Hosts) == 0 {
		return out
	}
	current := map[string]bool{}
	for _, h := range in.Hosts {
		current[h] = true
	}
	bySlot := map[slotKey][]cview{}
	for _, c := range in.Containers {
		bySlot[c.Key] = append(bySlot[c.Key], c)
	}
	wanted := func(k slotKey) bool { return k.n >= 0 && k.n < in.Want[k.version] }

	var kept []cview
	var surplus []cview
	keys := make([]slotKey, 0, len(bySlot))
	for k := range bySlot {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		cs := bySlot[k]
		sort.SliceStable(cs, func(i, j int) bool { return better(cs[i], cs[j], current) })
		start := 0
		if wanted(k) && current[cs[0].Host] && !cs[0].Stopping && cs[0].State != "dead" && cs[0].State != "removing" {
			kept = append(kept, cs[0])
			start = 1
		}
		surplus = append(surplus, cs[start:]...)
	}
	keptBy := map[slotKey]cview{}
	for _, c := range kept {
		keptBy[c.Key] = c
	}

	// wanted slots without a container
	var versions []string
	for v := range in.Want {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		for n := 0; n < in.Want[v]; n++ {
			if _, ok := keptBy[slotKey{v, n}]; !ok {
				out.Missing = append(out.Missing, slotKey{v, n})
			}
		}
	}

	starting := false
	for _, c := range kept {
		if !c.Ready && !c.Failing && in.Now.Sub(c.Created) < in.StartTimeout {
			starting = true
		}
		switch c.State {
		case "created", "exited":
			if !in.Now.Before(in.RetryAt[c.Key]) {
				out.Actions = append(out.Actions, action{Kind: actStart, Host: c.Host, Key: c.Key, ID: c.ID})
			}
		}
	}
	surplusOn := map[string]int{}
	sameName := map[string]bool{} // host|slot: a surplus container holds the slot's name there
	for _, c := range surplus {
		surplusOn[c.Host]++
		sameName[c.Host+"|"+c.Key.String()] = true
	}
	for _, k := range out.Missing {
		if !in.SlotFailing[k] {
			starting = true
		}
		host := in.Hosts[k.n%len(in.Hosts)]
		switch {
		case in.Now.Before(in.RetryAt[k]):
			out.Waiting[k] = "retrying at " + in.RetryAt[k].Format(time.RFC3339)
		case sameName[host+"|"+k.String()]:
			out.Waiting[k] = "waiting for the slot's previous container on " + host + " to be removed"
		case in.Order == spec.DockerStopFirst && surplusOn[host] > 0:
			out.Waiting[k] = fmt.Sprintf("stop-first: waiting for %d surplus container(s) on %s to stop", surplusOn[host], host)
		default:
			out.Actions = append(out.Actions, action{Kind: actCreate, Host: host, Key: k})
		}
	}
	for _, c := range surplus {
		if c.Stopping {
			continue
		}
		switch {
		case c.State != "running" && c.State != "restarting" && c.State != "paused":
			out.Actions = append(out.Actions, action{Kind: actRemove, Host: c.Host, Key: c.Key, ID: c.ID})
		case in.Order == spec.DockerStopFirst || !starting:
			out.Actions = append(out.Actions, action{Kind: actStop, Host: c.Host, Key: c.Key, ID: c.ID})
		}
	}
	return out
}

// better orders a slot's containers: the one to keep first.
func better(a, b cview, current map[string]bool) bool {
	if current[a.Host] != current[b.Host] {
		return current[a.Host]
	}
	if a.Stopping != b.Stopping {
		return !a.Stopping
	}
	if a.Ready != b.Ready {
		return a.Ready
	}
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.ID < b.ID
}

func sortKeys(keys []slotKey) {
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].version != keys[j].version {
			return keys[i].version < keys[j].version
		}
		return keys[i].n < keys[j].n
	})
}
