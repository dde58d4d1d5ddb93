package docker

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/graylane/graylane/adapters"
)

// buildViewLocked renders what Observe reports: one instance per
// container, and one not-ready instance per wanted slot without one.
func (a *app) buildViewLocked() []adapters.Instance {
	h := a.healthLocked()
	var out []adapters.Instance
	active := false
	kept := map[slotKey]bool{}
	for _, st := range a.ctrs {
		c := st.c
		in := adapters.Instance{
			ID:      c.InstanceID,
			Version: c.Key.version,
			Addr:    c.Addr,
			Ready:   st.ready && st.stopping == "",
			Meta: map[string]string{
				MetaContainer: shortID(c.ID),
				MetaHost:      c.Host,
				MetaImage:     c.Image,
				MetaSlot:      strconv.Itoa(c.Key.n),
				MetaState:     c.State,
				MetaRestarts:  strconv.Itoa(c.Restarts + st.restarts),
				MetaHealth:    h.mode,
				MetaAdopted:   strconv.FormatBool(c.Created.Before(a.b.started)),
			},
		}
		if !in.Ready {
			in.Message = a.messageLocked(st)
			active = true
		}
		if why := a.stalledLocked(st); why != "" {
			in.Meta[adapters.MetaStalled] = why
		}
		if a.healthPendingLocked(st, h) {
			in.Meta[adapters.MetaHealthPending] = "adopted after a restart; health not judged yet"
		}
		if st.stopping == "" {
			kept[c.Key] = true
		}
		out = append(out, in)
	}
	for _, k := range a.lastPlan.Missing {
		if kept[k] {
			continue
		}
		active = true
		in := adapters.Instance{
			ID:      instanceID(a.name, k),
			Version: k.version,
			Meta:    map[string]string{MetaSlot: strconv.Itoa(k.n), MetaState: "missing"},
		}
		s := a.slots[k]
		switch {
		case s != nil && s.busy != "":
			in.Message = s.busy
		case s != nil && s.lastErr != "":
			in.Message = s.lastErr
		case a.lastPlan.Waiting[k] != "":
			in.Message = a.lastPlan.Waiting[k]
		default:
			in.Message = "creating"
		}
		if s != nil && s.stalled != "" {
			in.Meta[adapters.MetaStalled] = s.stalled
		}
		out = append(out, in)
	}
	a.active = active
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

// messageLocked says why a container is not ready.
func (a *app) messageLocked(st *ctrState) string {
	c := st.c
	if st.stopping != "" {
		return st.stopping
	}
	msg := ""
	switch c.State {
	case "created":
		msg = "created, not started"
	case "running":
		msg = st.probeMsg
		if msg == "" {
			msg = "starting"
		}
		if c.Restarts > 0 && !st.everReady {
			msg = fmt.Sprintf("%s (restarted %d times", msg, c.Restarts)
			if st.lastExit >= 0 {
				msg += fmt.Sprintf(", last exited with code %d", st.lastExit)
			}
			msg += ")"
		}
	case "restarting", "exited", "dead":
		msg = fmt.Sprintf("%s: exited with code %d", c.State, c.ExitCode)
		if c.OOMKilled {
			msg += " (out of memory)"
		}
		if n := c.Restarts + st.restarts; n > 0 {
			msg += fmt.Sprintf(" (restarted %d times)", n)
		}
	default:
		msg = c.State
	}
	if c.Error != "" {
		msg += ": " + c.Error
	}
	if st.logLine != "" && a.failingLocked(st) {
		msg += ": " + st.logLine
	}
	if s := a.slots[c.Key]; s != nil && s.lastErr != "" {
		msg = s.lastErr + "; " + msg
	}
	return msg
}

// stalledLocked says why a container's slot gave up: it failed
// StallAfter times in a row without ever being ready, or its slot's
// attempts did.
func (a *app) stalledLocked(st *ctrState) string {
	if st.everReady || st.stopping != "" {
		return ""
	}
	if s := a.slots[st.c.Key]; s != nil && s.stalled != "" {
		return s.stalled
	}
	if st.c.Restarts+st.restarts >= a.b.cfg.StallAfter && a.failingLocked(st) {
		return fmt.Sprintf("container %s on %s keeps failing: %s", st.c.Name, st.c.Host, a.messageLocked(st))
	}
	return ""
}
