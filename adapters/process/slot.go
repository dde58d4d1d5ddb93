package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/spec"
)

// slot is one instance position (version, n) of an app, supervised by one
// goroutine (run) that owns its process: it starts it, health-checks it
// (reporting it ready once healthy), restarts it when it exits, and drains
// and stops it once it is no longer wanted.
type slot struct {
	b    *Backend
	a    *app
	key  slotKey
	id   string
	kick chan struct{} // want changed
	done chan struct{} // closed when the slot is retired

	// Guarded by a.mu.
	want     bool
	proc     *proc
	adopted  bool
	judged   bool // the adopted process's health was judged (healthPendingLocked)
	ready    bool
	stopping bool
	msg      string
	restarts int
}

func (s *slot) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *slot) wanted() bool {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	return s.want
}

func (s *slot) setMsg(msg string) {
	s.a.mu.Lock()
	s.msg = msg
	s.a.mu.Unlock()
}

func (s *slot) instanceLocked() adapters.Instance {
	in := adapters.Instance{
		ID:      s.id,
		Version: s.key.version,
		Ready:   s.ready,
		Meta: map[string]string{
			"slot":     strconv.Itoa(s.key.n),
			"restarts": strconv.Itoa(s.restarts),
		},
	}
	if !s.ready {
		in.Message = s.msg
	}
	if s.healthPendingLocked() {
		in.Meta[adapters.MetaHealthPending] = "adopted after a restart; health not judged yet"
	}
	if p := s.proc; p != nil {
		in.Addr = p.rec.Addr
		in.Meta["pid"] = strconv.Itoa(p.rec.PID)
		in.Meta["port"] = strconv.Itoa(p.rec.Port)
		in.Meta["adopted"] = strconv.FormatBool(s.adopted)
		in.Meta["startedAt"] = p.rec.StartedAt.Format(time.RFC3339Nano)
		in.Meta["log"] = p.rec.Log
	}
	return in
}

// healthPendingLocked reports whether the instance is an adopted process
// (running before this Backend started) whose health is not judged yet:
// no check has passed and fewer than FailureThreshold have failed in a
// row. It may well be serving; Observe says so (adapters.MetaHealthPending)
// so that the engine does not move its traffic meanwhile.
func (s *slot) healthPendingLocked() bool {
	return s.adopted && !s.judged && !s.ready && s.proc != nil && s.want && !s.stopping
}

type monitorOutcome int

const (
	monitorExited monitorOutcome = iota
	monitorUnwanted
	monitorClosed
)

type stopOutcome int

const (
	stopDone    stopOutcome = iota // the process is gone
	stopAborted                    // wanted again, or not dead yet: loop
	stopClosed                     // the Backend is closing
)

func (s *slot) run() {
	defer s.b.wg.Done()
	log := s.b.log.With("app", s.a.name, "instance", s.id)
	failures := 0 // exits and start failures since the instance was last ready
	var retryAt time.Time
	for {
		if s.b.ctx.Err() != nil {
			return // Close: leave the process running and recorded
		}
		s.a.mu.Lock()
		want, p := s.want, s.proc
		s.a.mu.Unlock()

		if !want {
			if p != nil {
				switch s.stop(p, log) {
				case stopClosed:
					return
				case stopAborted:
					continue
				}
			}
			if s.retire() {
				return
			}
			continue
		}

		if p == nil {
			if d := time.Until(retryAt); d > 0 {
				if !s.sleep(d) {
					return
				}
				continue
			}
			np, err := s.start()
			if err != nil {
				failures++
				delay := s.b.backoff(failures)
				retryAt = time.Now().Add(delay)
				s.setMsg(fmt.Sprintf("start failed: %v; retrying in %s", err, delay))
				log.Error("start instance", "err", err, "retryIn", delay)
				s.b.notify(s.a.name)
				continue
			}
			p = np
			log.Info("started instance", "pid", p.rec.PID, "addr", p.rec.Addr)
		}

		out, wasReady := s.monitor(p, log)
		switch out {
		case monitorClosed:
			return
		case monitorUnwanted:
			continue
		case monitorExited:
			if wasReady {
				failures = 0
			}
			failures++
			delay := s.b.backoff(failures)
			retryAt = time.Now().Add(delay)
			s.forget(p)
			s.a.mu.Lock()
			s.restarts++
			s.msg = fmt.Sprintf("%s; restarting in %s", p.exitMsg, delay)
			s.a.mu.Unlock()
			log.Warn("instance exited", "pid", p.rec.PID, "status", p.exitMsg, "restartIn", delay)
			s.b.notify(s.a.name)
		}
	}
}

// sleep waits d, returning early (true) when want changes, and false when
// the Backend closes.
func (s *slot) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.kick:
	case <-s.b.ctx.Done():
		return false
	}
	return true
}

// retire removes the slot when it is still unwanted.
func (s *slot) retire() bool {
	s.a.mu.Lock()
	if s.want {
		s.a.mu.Unlock()
		return false
	}
	if s.a.slots[s.key] == s {
		delete(s.a.slots, s.key)
	}
	close(s.done)
	s.a.mu.Unlock()
	s.b.notify(s.a.name)
	return true
}

func (s *slot) start() (*proc, error) {
	s.a.mu.Lock()
	rel, restarts := s.a.rel, s.restarts
	s.a.mu.Unlock()
	if rel == nil || rel.Backend.Process == nil {
		return nil, errors.New("no process release applied")
	}
	pb := rel.Backend.Process
	host := pb.Host
	if host == "" {
		host = DefaultHost
	}
	logs := s.b.dirs.logsDir(s.a.name)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	p, err := startProcess(startSpec{
		rec: record{
			ID: s.id, App: s.a.name, Version: s.key.version, Slot: s.key.n,
			Restarts: restarts, Log: s.b.dirs.logFile(s.a.name, s.id),
		},
		pb:       pb,
		host:     host,
		recFile:  s.b.dirs.recordFile(s.a.name, s.id),
		reserved: s.b.portReserved,
	})
	if err != nil {
		return nil, err
	}
	s.b.reservePort(p.rec.Port, true)
	s.a.mu.Lock()
	s.proc, s.adopted, s.judged, s.ready, s.msg = p, false, false, false, "starting"
	s.a.mu.Unlock()
	s.b.notify(s.a.name)
	return p, nil
}

// forget clears a process that is gone: record removed, port freed.
func (s *slot) forget(p *proc) {
	if err := removeFile(s.b.dirs.recordFile(s.a.name, s.id)); err != nil {
		s.b.log.Error("remove instance record", "app", s.a.name, "instance", s.id, "err", err)
	}
	s.b.reservePort(p.rec.Port, false)
	s.a.mu.Lock()
	if s.proc == p {
		s.proc, s.ready, s.stopping = nil, false, false
	}
	s.a.mu.Unlock()
}

func (s *slot) health() healthprobe.Spec {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	if s.a.rel == nil {
		return healthprobe.SpecOf(spec.Health{})
	}
	return healthprobe.SpecOf(s.a.rel.Health)
}

// monitor health-checks p until it exits, stops being wanted, or the
// Backend closes. One passing check makes the instance ready;
// FailureThreshold failing ones in a row make it unready. Either change is
// notified, so routers following Observe add or remove the instance. Until it is first ready it is checked more often: 50ms,
// doubling up to the interval. It reports whether p was ever ready.
func (s *slot) monitor(p *proc, log *slog.Logger) (monitorOutcome, bool) {
	var streak healthprobe.Streak
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.exited:
			return monitorExited, streak.Passed()
		case <-s.b.ctx.Done():
			return monitorClosed, streak.Passed()
		case <-s.kick:
			if !s.wanted() {
				return monitorUnwanted, streak.Passed()
			}
			continue
		case <-timer.C:
		}
		h := s.health()
		err := s.b.prober.Check(s.b.ctx, p.rec.Addr, h)
		select {
		case <-p.exited:
			return monitorExited, streak.Passed()
		default:
		}
		s.a.mu.Lock()
		wasReady, wasPending := s.ready, s.healthPendingLocked()
		// a pending instance's first failures count as a ready one's would
		ok := streak.Record(wasReady || wasPending, err, s.b.cfg.FailureThreshold)
		s.ready = ok && (wasReady || err == nil)
		s.judged = s.judged || streak.Judged(s.b.cfg.FailureThreshold)
		switch {
		case err == nil:
			s.msg = ""
		case !s.ready:
			s.msg = "health check failed: " + err.Error()
		}
		nowReady, nowPending := s.ready, s.healthPendingLocked()
		s.a.mu.Unlock()

		if nowReady != wasReady || nowPending != wasPending {
			if nowReady {
				log.Info("instance ready", "addr", p.rec.Addr)
			} else {
				log.Warn("instance unready", "addr", p.rec.Addr, "err", err)
			}
			s.b.notify(s.a.name)
		}
		timer.Reset(streak.Next(h.Interval))
	}
}

// stop reports the instance not ready, drains it (Config.Drainer: out of
// traffic, then at most DrainTimeout for its in-flight requests), sends
// SIGTERM to its process group, and SIGKILL after the release's
// stopGracePeriod.
func (s *slot) stop(p *proc, log *slog.Logger) stopOutcome {
	s.a.mu.Lock()
	s.ready, s.stopping, s.msg = false, true, "stopping: draining in-flight requests"
	grace := spec.DefaultStopGracePeriod
	if s.a.rel != nil && s.a.rel.Backend.Process != nil && s.a.rel.Backend.Process.StopGracePeriod != nil {
		grace = s.a.rel.Backend.Process.StopGracePeriod.Duration
	}
	s.a.mu.Unlock()
	s.b.notify(s.a.name)

	if d := s.b.cfg.Drainer; d != nil {
		ctx, cancel := context.WithTimeout(s.b.ctx, s.b.cfg.DrainTimeout)
		drained := make(chan error, 1)
		go func() { drained <- d.Drain(ctx, s.a.name, p.rec.Addr) }()
	drain:
		for {
			select {
			case err := <-drained:
				if err != nil && s.b.ctx.Err() == nil {
					log.Warn("drain did not finish; stopping anyway", "err", err)
				}
				break drain
			case <-s.b.ctx.Done():
				cancel()
				return stopClosed
			case <-p.exited:
				break drain
			case <-s.kick:
				if s.wanted() {
					cancel()
					<-drained
					s.a.mu.Lock()
					s.stopping, s.msg = false, "starting"
					s.a.mu.Unlock()
					log.Info("wanted again while draining; keeping it")
					return stopAborted
				}
			}
		}
		cancel()
	}

	s.setMsg("stopping: SIGTERM sent")
	if err := p.signal(syscall.SIGTERM); err != nil {
		log.Error("stop instance", "err", err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-s.b.ctx.Done():
		return stopClosed
	case <-t.C:
		log.Warn("instance did not exit within its grace period; sending SIGKILL", "grace", grace)
		s.setMsg("stopping: SIGKILL sent")
		if err := p.signal(syscall.SIGKILL); err != nil {
			log.Error("kill instance", "err", err)
		}
		killed := time.NewTimer(10 * time.Second)
		defer killed.Stop()
		select {
		case <-p.exited:
		case <-s.b.ctx.Done():
			return stopClosed
		case <-killed.C:
			log.Error("instance still running 10s after SIGKILL", "pid", p.rec.PID)
			return stopAborted
		}
	}
	s.forget(p)
	s.setMsg("stopped")
	log.Info("stopped instance", "pid", p.rec.PID)
	return stopDone
}

// backoff is the delay before the n-th consecutive restart.
func (b *Backend) backoff(n int) time.Duration {
	d := b.cfg.RestartDelay
	for i := 1; i < n && d < b.cfg.MaxRestartDelay; i++ {
		d *= 2
	}
	return min(d, b.cfg.MaxRestartDelay)
}
