package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/spec"
)

// healthSpec is how graylane judges an instance: by its own probe
// (healthprobe) or by the image's HEALTHCHECK.
type healthSpec struct {
	mode string // spec.DockerHealthGraylane or spec.DockerHealthImage
	healthprobe.Spec
}

func (a *app) healthLocked() healthSpec {
	h := healthSpec{mode: spec.DockerHealthGraylane, Spec: healthprobe.SpecOf(spec.Health{})}
	if a.eff != nil {
		h.mode = a.eff.healthMode()
	}
	if a.rel != nil {
		h.Spec = healthprobe.SpecOf(a.rel.Health)
	}
	return h
}

// checkHealth judges every container's readiness. With healthcheck
// graylane, running containers are probed (GET health.path on their
// address, 2xx is healthy): one pass makes a container ready,
// FailureThreshold failures in a row make it unready; until it is first
// ready it is probed more often (50ms, doubling up to the interval). With
// healthcheck image, the engine's health status decides.
func (a *app) checkHealth(now time.Time) {
	type target struct {
		st   *ctrState
		addr string
	}
	a.mu.Lock()
	h := a.healthLocked()
	var targets []target
	for _, st := range a.ctrs {
		c := st.c
		switch {
		case st.stopping != "" || c.State != "running":
			st.ready = false
		case h.mode == spec.DockerHealthImage:
			switch c.Health {
			case "healthy":
				st.probeMsg = ""
				a.becameReadyLocked(st)
			case "":
				st.ready, st.probeMsg = false, "the container has no HEALTHCHECK (backend.docker.healthcheck is image)"
			default:
				st.ready, st.probeMsg = false, "health: "+c.Health
				if c.HealthLog != "" {
					st.probeMsg += ": " + c.HealthLog
				}
			}
		case c.Addr == "":
			st.ready, st.probeMsg = false, "no published address yet"
		case !now.Before(st.nextProbe):
			targets = append(targets, target{st, c.Addr})
		}
	}
	a.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.b.prober.Check(a.ctx, t.addr, h.Spec)
		}()
	}
	wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, t := range targets {
		st, err := t.st, errs[i]
		if st.stopping != "" {
			continue
		}
		wasReady, pending := st.ready, a.healthPendingLocked(st, h)
		// a pending container's first failures count as a ready one's would
		switch ok := st.streak.Record(wasReady || pending, err, a.b.cfg.FailureThreshold); {
		case ok && err == nil:
			st.probeMsg = ""
			a.becameReadyLocked(st)
		case ok && !wasReady: // still pending: not ready, not judged unready
			st.probeMsg = "health check failed: " + err.Error()
		case !ok:
			if wasReady {
				a.b.log.Warn("instance unready", "app", a.name, "instance", st.c.InstanceID, "err", err)
			}
			st.ready, st.probeMsg = false, "health check failed: "+err.Error()
		}
		st.nextProbe = now.Add(st.streak.Next(h.Interval))
	}
}

// healthPendingLocked reports whether the container's process was running
// before this Backend started (adopted after a graylane restart) and its
// health, probed by graylane, is not judged yet: no probe has passed and
// fewer than FailureThreshold have failed in a row. It may well be
// serving; Observe says so (adapters.MetaHealthPending) so that the engine
// does not move its traffic meanwhile.
func (a *app) healthPendingLocked(st *ctrState, h healthSpec) bool {
	c := st.c
	return h.mode == spec.DockerHealthGraylane && c.State == "running" && c.Addr != "" && st.stopping == "" && !st.ready &&
		c.StartedAt.Before(a.b.started) && !st.streak.Judged(a.b.cfg.FailureThreshold)
}

func (a *app) becameReadyLocked(st *ctrState) {
	if !st.ready {
		a.b.log.Info("instance ready", "app", a.name, "instance", st.c.InstanceID, "addr", st.c.Addr, "host", st.c.Host)
	}
	st.ready, st.everReady = true, true
	delete(a.slots, st.c.Key) // the slot works: forget its failures
}

// readLogs reads the last lines of output of containers that failed (once
// per failure), so their message says what the app said before it died.
func (a *app) readLogs() {
	type target struct {
		st  *ctrState
		key string
		id  string
		h   string
	}
	a.mu.Lock()
	var targets []target
	for _, st := range a.ctrs {
		c := st.c
		if st.ready || st.stopping != "" || !a.failingLocked(st) {
			continue
		}
		key := fmt.Sprintf("%s/%d/%s/%d", c.ID, c.Restarts, c.State, c.ExitCode)
		if key != st.logKey {
			targets = append(targets, target{st, key, c.ID, c.Host})
		}
	}
	hosts := a.hostsByNameLocked()
	a.mu.Unlock()
	for _, t := range targets {
		hst, ok := hosts[t.h]
		if !ok {
			continue
		}
		e, err := a.b.engines.get(hst)
		if err != nil {
			continue
		}
		line := lastLines(a.ctx, e, t.id, a.b.cfg.CallTimeout)
		a.mu.Lock()
		t.st.logKey, t.st.logLine = t.key, line
		a.mu.Unlock()
	}
}

// hostsByNameLocked maps engine names to their definitions.
func (a *app) hostsByNameLocked() map[string]spec.DockerHost {
	out := map[string]spec.DockerHost{}
	for _, h := range a.oldHosts {
		out[h.HostName()] = h
	}
	for _, h := range a.lookedUp {
		out[h.HostName()] = h
	}
	if a.eff != nil {
		for _, h := range a.eff.hosts {
			out[h.HostName()] = h
		}
	}
	return out
}

// lastLines returns the last non-empty line (at most 300 bytes) of a
// container's output: usually what the app said before it exited.
func lastLines(ctx context.Context, e *engine, id string, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "3"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 64<<10)); err != nil && out.Len() == 0 {
		return ""
	}
	s := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			s = l
		}
	}
	if len(s) > 300 {
		s = "…" + s[len(s)-300:]
	}
	return s
}
