package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/graylane/graylane/spec"
)

// startWorker runs one action in its own goroutine; the loop is kicked
// when it is done.
func (a *app) startWorker(act action) {
	a.b.wg.Add(1)
	go func() {
		defer a.b.wg.Done()
		defer a.poke()
		switch act.Kind {
		case actCreate:
			a.create(act)
		case actStart:
			a.start(act)
		case actStop:
			a.stop(act)
		case actRemove:
			a.remove(act)
		}
	}()
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// slotFailed records a failed attempt at slot k and when to retry. A
// permanent failure (an image that is not there with pull never) stalls
// the slot at once; others after Config.StallAfter in a row.
func (a *app) slotFailed(k slotKey, err error, permanent bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.slot(k)
	s.busy = ""
	s.failures++
	s.lastErr = err.Error()
	delay := a.b.cfg.backoff(s.failures)
	s.retryAt = time.Now().Add(delay)
	if permanent || s.failures >= a.b.cfg.StallAfter {
		s.stalled = err.Error()
	}
	a.b.log.Error("instance failed", "app", a.name, "slot", k.String(), "err", err, "failures", s.failures, "retryIn", delay)
}

func (a *app) snapshot() (*spec.Release, *effective, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rel, a.eff, a.gen
}

func (a *app) hostNamed(name string) (spec.DockerHost, *engine, error) {
	a.mu.Lock()
	h, ok := a.hostsByNameLocked()[name]
	a.mu.Unlock()
	if !ok {
		return h, nil, fmt.Errorf("engine %s is not among the app's hosts", name)
	}
	e, err := a.b.engines.get(h)
	return h, e, err
}

// create makes sure the image is there, then creates and starts the
// container of act.Key on act.Host. The container's name is the
// instance ID, so the engine refuses a second container for the slot:
// when graylane died between create and start, the next graylane finds
// the created container (by its labels) and starts it instead.
func (a *app) create(act action) {
	rel, eff, gen := a.snapshot()
	if rel == nil || eff == nil {
		a.slotDone(act.Key)
		return
	}
	h, e, err := a.hostNamed(act.Host)
	if err != nil {
		a.slotFailed(act.Key, err, false)
		return
	}
	img, err := eff.image(rel.App, act.Key.version)
	if err != nil {
		a.slotFailed(act.Key, err, true)
		return
	}
	a.setSlotBusy(act.Key, "pulling image "+img+" on "+h.HostName())
	if err := a.ensureImage(e, img, eff.d.EffectivePull(), gen); err != nil {
		a.slotFailed(act.Key, err, errors.Is(err, errImageAbsent))
		return
	}
	a.setSlotBusy(act.Key, "creating container on "+h.HostName())
	port := eff.d.Port
	if eff.usesPickedPort() {
		port = a.pickPort(h)
	}
	cs, err := eff.containerSpec(rel, act.Key, h, port)
	if err != nil {
		a.slotFailed(act.Key, err, true)
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.b.cfg.CallTimeout)
	defer cancel()
	resp, err := e.cli.ContainerCreate(ctx, cs.config, cs.host, cs.net, nil, cs.name)
	if err != nil {
		if cerrdefs.IsConflict(err) {
			// the name is taken: by this slot's container (created by an
			// earlier graylane, listed next pass), or by a stranger
			if in, ierr := e.cli.ContainerInspect(ctx, cs.name); ierr == nil && in.Config != nil {
				if k, ok := parseLabels(rel.App, in.Config.Labels); ok && k == act.Key {
					a.slotDone(act.Key)
					return
				}
			}
			a.slotFailed(act.Key, e.err("create container "+cs.name, fmt.Errorf("the name is taken by a container graylane does not manage: %w", err)), true)
			return
		}
		a.slotFailed(act.Key, e.err("create container "+cs.name, err), cerrdefs.IsInvalidArgument(err) || isNotFound(err))
		return
	}
	for _, w := range resp.Warnings {
		a.b.log.Warn("engine warning creating container", "app", a.name, "container", cs.name, "warning", w)
	}
	if err := e.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		if portTaken(err) {
			// the engine picked a port someone else holds: a new
			// container gets a new one
			_ = e.cli.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true})
		}
		a.slotFailed(act.Key, e.err("start container "+cs.name, err), false)
		return
	}
	a.b.log.Info("started container", "app", a.name, "instance", cs.name, "container", shortID(resp.ID), "image", img, "host", h.HostName())
	a.slotDone(act.Key)
}

func (a *app) setSlotBusy(k slotKey, msg string) {
	a.mu.Lock()
	a.slot(k).busy = msg
	a.mu.Unlock()
}

func (a *app) slotDone(k slotKey) {
	a.mu.Lock()
	if s := a.slots[k]; s != nil {
		s.busy = ""
	}
	a.mu.Unlock()
}

// portTaken reports whether a start failed because a host port is held.
func portTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "address already in use") || strings.Contains(s, "port is already allocated")
}

var errImageAbsent = errors.New("image not on the engine")

// ensureImage makes sure img is on engine e as pull says: never (it must
// be there), missing (pulled when absent), always (pulled once per
// desired-state change). Concurrent callers share one pull.
func (a *app) ensureImage(e *engine, img, pull string, gen int) error {
	ctx, cancel := context.WithTimeout(a.ctx, a.b.cfg.CallTimeout)
	_, ierr := e.cli.ImageInspect(ctx, img)
	cancel()
	present := ierr == nil
	if ierr != nil && !isNotFound(ierr) {
		return e.err("inspect image "+img, ierr)
	}
	switch {
	case pull == spec.DockerPullNever && !present:
		return e.err("image "+img, fmt.Errorf("%w (backend.docker.pull is never): %v", errImageAbsent, ierr))
	case pull == spec.DockerPullNever, pull == spec.DockerPullMissing && present:
		return nil
	}
	key := e.host.HostName() + "|" + img
	a.mu.Lock()
	p := a.pulls[key]
	if p != nil && p.gen == gen {
		a.mu.Unlock()
		select {
		case <-p.done:
		case <-a.ctx.Done():
			return a.ctx.Err()
		}
		if p.err != nil && !present {
			return p.err
		}
		return nil
	}
	p = &pullState{gen: gen, done: make(chan struct{})}
	a.pulls[key] = p
	a.mu.Unlock()
	a.b.log.Info("pulling image", "app", a.name, "image", img, "host", e.host.HostName())
	p.err = a.pull(e, img)
	close(p.done)
	if p.err != nil {
		a.mu.Lock()
		if a.pulls[key] == p {
			delete(a.pulls, key) // retry with the next attempt
		}
		a.mu.Unlock()
		if present && pull == spec.DockerPullAlways {
			a.b.log.Warn("pull failed; using the image the engine has", "app", a.name, "image", img, "err", p.err)
			return nil
		}
		return p.err
	}
	return nil
}

func (a *app) pull(e *engine, img string) error {
	ctx, cancel := context.WithTimeout(a.ctx, a.b.cfg.PullTimeout)
	defer cancel()
	rc, err := e.cli.ImagePull(ctx, img, image.PullOptions{})
	if err != nil {
		return e.err("pull image "+img, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return e.err("pull image "+img, err)
		}
		if m.Error != "" {
			return e.err("pull image "+img, errors.New(m.Error))
		}
	}
}

// pickPort picks the port of a new network-host instance: a free port of
// this machine for an engine on it, else a random one in 20000..29999;
// never one another container of the app on that engine has.
func (a *app) pickPort(h spec.DockerHost) int {
	used := map[int]bool{}
	a.mu.Lock()
	for _, st := range a.ctrs {
		if st.c.Host == h.HostName() {
			if p, err := strconv.Atoi(st.c.Labels[LabelPort]); err == nil {
				used[p] = true
			}
		}
	}
	a.mu.Unlock()
	for i := 0; i < 100; i++ {
		p := 20000 + rand.IntN(10000)
		if h.Local() {
			l, err := net.Listen("tcp", ":0")
			if err != nil {
				continue
			}
			p = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if !used[p] {
			return p
		}
	}
	return 20000 + rand.IntN(10000)
}

// start starts an existing container of a wanted slot (created by a
// graylane that died before starting it, or stopped from outside).
func (a *app) start(act action) {
	defer a.release(act.ID)
	_, e, err := a.hostNamed(act.Host)
	if err != nil {
		a.slotFailed(act.Key, err, false)
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.b.cfg.CallTimeout)
	defer cancel()
	if err := e.cli.ContainerStart(ctx, act.ID, container.StartOptions{}); err != nil {
		if ctx.Err() == nil {
			a.slotFailed(act.Key, e.err("start container "+shortID(act.ID), err), false)
		}
		return
	}
	a.mu.Lock()
	if st := a.ctrs[act.ID]; st != nil {
		if st.c.State == "exited" {
			st.restarts++
		}
		a.b.log.Info("started existing container", "app", a.name, "instance", st.c.InstanceID, "container", shortID(act.ID), "state", st.c.State)
	}
	a.mu.Unlock()
}

func (a *app) release(id string) {
	a.mu.Lock()
	if st := a.ctrs[id]; st != nil {
		st.busy = false
	}
	a.mu.Unlock()
}

// stop drains a surplus container (Config.Drainer, then DrainDelay for
// the other routers to drop it), stops it (SIGTERM, SIGKILL after the release's
// stopGracePeriod) and removes it. A failure leaves it for the next pass.
func (a *app) stop(act action) {
	_, eff, _ := a.snapshot()
	grace := spec.DefaultStopGracePeriod
	if eff != nil {
		grace = eff.d.EffectiveStopGracePeriod()
	}
	a.mu.Lock()
	st := a.ctrs[act.ID]
	addr, id := "", act.ID
	if st != nil {
		addr = st.c.Addr
		id = st.c.InstanceID
	}
	a.mu.Unlock()
	a.b.notify(a.name)
	fail := func(err error) {
		a.b.log.Error("stop container", "app", a.name, "instance", id, "err", err)
		a.mu.Lock()
		if st := a.ctrs[act.ID]; st != nil {
			st.busy, st.stopping = false, ""
		}
		a.mu.Unlock()
	}
	if addr != "" {
		if d := a.b.cfg.Drainer; d != nil {
			if err := d.Drain(a.ctx, a.name, addr); err != nil && a.ctx.Err() == nil {
				a.b.log.Warn("drain", "app", a.name, "instance", id, "err", err)
			}
		}
		t := time.NewTimer(a.b.cfg.DrainDelay)
		select {
		case <-t.C:
		case <-a.ctx.Done():
		}
		t.Stop()
	}
	if a.ctx.Err() != nil {
		return // graylane is shutting down: the next one stops it
	}
	_, e, err := a.hostNamed(act.Host)
	if err != nil {
		fail(err)
		return
	}
	a.setStopping(act.ID, "stopping: SIGTERM sent")
	secs := int((grace + time.Second - 1) / time.Second)
	ctx, cancel := context.WithTimeout(a.ctx, grace+a.b.cfg.CallTimeout)
	defer cancel()
	if err := e.cli.ContainerStop(ctx, act.ID, container.StopOptions{Timeout: &secs}); err != nil && !isNotFound(err) {
		fail(e.err("stop container "+id, err))
		return
	}
	if err := e.cli.ContainerRemove(ctx, act.ID, container.RemoveOptions{Force: true}); err != nil && !isNotFound(err) {
		fail(e.err("remove container "+id, err))
		return
	}
	a.b.log.Info("stopped and removed container", "app", a.name, "instance", id, "container", shortID(act.ID), "host", act.Host)
	a.mu.Lock()
	delete(a.ctrs, act.ID)
	a.mu.Unlock()
}

func (a *app) setStopping(id, msg string) {
	a.mu.Lock()
	if st := a.ctrs[id]; st != nil {
		st.stopping = msg
	}
	a.mu.Unlock()
}

// remove removes a container that is not running (surplus, or dead).
func (a *app) remove(act action) {
	_, e, err := a.hostNamed(act.Host)
	if err == nil {
		ctx, cancel := context.WithTimeout(a.ctx, a.b.cfg.CallTimeout)
		err = e.cli.ContainerRemove(ctx, act.ID, container.RemoveOptions{Force: true})
		cancel()
		if isNotFound(err) {
			err = nil
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.b.log.Error("remove container", "app", a.name, "container", shortID(act.ID), "err", err)
		if st := a.ctrs[act.ID]; st != nil {
			st.busy = false
		}
		return
	}
	a.b.log.Info("removed container", "app", a.name, "container", shortID(act.ID), "host", act.Host)
	delete(a.ctrs, act.ID)
}
