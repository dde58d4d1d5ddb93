package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/healthprobe"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Defaults of Config.
const (
	DefaultRestartDelay     = 500 * time.Millisecond
	DefaultMaxRestartDelay  = 30 * time.Second
	DefaultDrainTimeout     = 30 * time.Second
	DefaultFailureThreshold = 3
	DefaultHost             = "127.0.0.1"
)

// ErrClosed is returned by calls on a closed Backend.
var ErrClosed = errors.New("process backend is closed")

// Config configures a Backend.
type Config struct {
	// StateDir holds the instance records, app states and instance logs
	// (required). Keep it across graylane restarts: it is how running
	// instances are adopted instead of started twice.
	StateDir string
	// Logger receives the backend's logs (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
	// RestartDelay is the back-off before restarting a crashed instance; it
	// doubles with each crash that did not reach ready, up to MaxRestartDelay
	// (defaults 500ms and 30s).
	RestartDelay    time.Duration
	MaxRestartDelay time.Duration
	// DrainTimeout bounds the wait for an instance's in-flight requests
	// before it is sent SIGTERM (default 30s).
	DrainTimeout time.Duration
	// FailureThreshold is the number of consecutive failed health checks
	// that make a ready instance unready (default 3). One passing check
	// makes an instance ready.
	FailureThreshold int
	// Drainer, if set, takes an instance out of traffic and waits for its
	// requests before the instance is stopped (graylane wires the built-in
	// proxy's Router here). The Drainer must see the instance as not ready
	// in Observe from then on; the backend reports it so.
	Drainer adapters.Drainer
}

// Backend is the process backend: it runs each app's instances as local
// processes. Their traffic goes through whatever router the release names
// (the built-in proxy by default), which reads the ready instances from
// Observe.
type Backend struct {
	cfg    Config
	log    *slog.Logger
	dirs   layout
	prober *healthprobe.Prober

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // slot supervisors and watchers

	mu     sync.Mutex
	apps   map[string]*app
	ports  map[int]bool // ports of live instances
	closed bool

	listeners adapters.Listeners

	lock      *os.File // flock on StateDir/lock while the Backend lives
	closeOnce sync.Once
}

var (
	_ adapters.Backend        = (*Backend)(nil)
	_ adapters.Notifier       = (*Backend)(nil)
	_ adapters.ChangeNotifier = (*Backend)(nil)
	_ adapters.Forgetter      = (*Backend)(nil)
)

// app is one app's desired state and slots.
type app struct {
	name string

	mu    sync.Mutex
	rel   *spec.Release // release in force (from Apply)
	want  traffic.Replicas
	saved string // digest of the last app file written
	slots map[slotKey]*slot
}

type slotKey struct {
	version string
	n       int
}

// New returns a Backend keeping its state in cfg.StateDir. It adopts every
// instance an earlier Backend (an earlier graylane process) recorded there
// whose process still runs the recorded command, cleans up the records of
// dead ones, health-checks the adopted ones once (so that Observe reports
// them ready at once and a router syncing from it keeps them in traffic),
// and resumes converging each app to its last desired replicas: dead
// wanted instances are restarted, live unwanted ones stopped.
func New(cfg Config) (*Backend, error) {
	if !procfsSupported {
		return nil, fmt.Errorf("process backend: %w", errors.New("needs /proc (Linux)"))
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("process backend: Config.StateDir is required")
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.RestartDelay <= 0 {
		cfg.RestartDelay = DefaultRestartDelay
	}
	if cfg.MaxRestartDelay < cfg.RestartDelay {
		cfg.MaxRestartDelay = max(DefaultMaxRestartDelay, cfg.RestartDelay)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.FailureThreshold <= 0 {
		cfg.FailureThreshold = DefaultFailureThreshold
	}
	b := &Backend{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "process-backend"),
		dirs:   layout{root: cfg.StateDir},
		apps:   map[string]*app{},
		ports:  map[int]bool{},
		prober: healthprobe.New(nil),
	}
	if err := os.MkdirAll(b.dirs.appsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("process backend: state dir: %w", err)
	}
	lock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	b.lock = lock
	b.ctx, b.cancel = context.WithCancel(context.Background())
	entries, err := os.ReadDir(b.dirs.appsDir())
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("process backend: state dir: %w", err)
	}
	var start []*slot
	for _, e := range entries {
		if !e.IsDir() || spec.CheckApp(e.Name()) != nil {
			continue
		}
		slots, err := b.load(e.Name())
		if err != nil {
			b.cancel()
			b.wg.Wait()
			lock.Close()
			return nil, err
		}
		start = append(start, slots...)
	}
	b.checkAdopted(start)
	for _, s := range start {
		b.wg.Add(1)
		go s.run()
	}
	return b, nil
}

// load restores one app from the state dir and returns its slots, not yet
// running.
func (b *Backend) load(name string) ([]*slot, error) {
	log := b.log.With("app", name)
	a := &app{name: name, slots: map[slotKey]*slot{}}
	var f appFile
	from, err := readVersioned(b.dirs.appFile(name), AppFileKind(), &f)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("process backend: load app %s: %w", name, err)
	case from < AppFileKind().Current:
		// written by an earlier release: migrate it once, now
		if err := writeJSON(b.dirs.appFile(name), AppFileKind(), f); err != nil {
			return nil, fmt.Errorf("process backend: app %s: migrate %s: %w", name, b.dirs.appFile(name), err)
		}
	}
	a.rel, a.want = f.Release, f.Replicas
	a.saved = digest(f)

	recs, bad, err := b.dirs.readRecords(name)
	if err != nil { // a newer graylane's record
		return nil, fmt.Errorf("process backend: load app %s: %w", name, err)
	}
	for _, msg := range bad {
		log.Error("unreadable instance record left in place", "err", msg)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].StartedAt.Before(recs[j].StartedAt) })
	for _, rec := range recs {
		ilog := log.With("instance", rec.ID)
		file := b.dirs.recordFile(name, rec.ID)
		if rec.PID == 0 {
			// graylane died while starting it: is it running anyway?
			if pid, ok := findByEnv(rec.marker()); ok {
				rec.PID = pid
				if st, err := readProcStat(pid); err == nil {
					rec.StartTicks = st.startTicks
				}
			}
		}
		if rec.PID == 0 {
			ilog.Info("instance was never started; forgetting its record")
			removeFile(file)
			continue
		}
		if _, err := identify(rec); err != nil {
			ilog.Info("recorded instance is gone; cleaning up", "reason", err.Error())
			removeFile(file)
			continue
		}
		key := slotKey{rec.Version, rec.Slot}
		p := &proc{rec: rec, adopted: true, exited: make(chan struct{})}
		if _, dup := a.slots[key]; dup {
			// Two live processes for one slot cannot come from this
			// backend; stop the later one rather than keep both.
			ilog.Error("a second live instance claims this slot; stopping it", "pid", rec.PID)
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.killStray(p, file)
			}()
			continue
		}
		if err := writeJSON(file, InstanceKind(), rec); err != nil {
			return nil, fmt.Errorf("process backend: app %s: instance %s: %w", name, rec.ID, err)
		}
		s := a.newSlot(b, rec.Version, rec.Slot)
		s.want = rec.Slot < a.want[rec.Version]
		s.proc, s.adopted, s.restarts = p, true, rec.Restarts
		s.msg = "adopted; awaiting health check"
		b.ports[rec.Port] = true
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			p.watchAdopted(b.ctx, 100*time.Millisecond)
		}()
		ilog.Info("adopted running instance", "pid", rec.PID, "addr", rec.Addr, "wanted", s.want)
	}
	for v, n := range a.want {
		for i := 0; i < n; i++ {
			if a.slots[slotKey{v, i}] == nil {
				a.newSlot(b, v, i).want = true
			}
		}
	}
	b.apps[name] = a
	out := make([]*slot, 0, len(a.slots))
	for _, s := range a.slots {
		out = append(out, s)
	}
	return out, nil
}

// checkAdopted health-checks every adopted instance that is still wanted
// once, all at once, before the slots start: a router that syncs its
// endpoints from Observe right after a graylane restart then keeps them
// in traffic instead of dropping them until the first periodic check.
func (b *Backend) checkAdopted(slots []*slot) {
	var wg sync.WaitGroup
	for _, s := range slots {
		s.a.mu.Lock()
		p, want := s.proc, s.want
		s.a.mu.Unlock()
		if p == nil || !s.adopted || !want {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.prober.Check(b.ctx, p.rec.Addr, s.health()); err == nil {
				s.a.mu.Lock()
				s.ready, s.judged, s.msg = true, true, ""
				s.a.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// killStray stops a duplicate adopted process without draining.
func (b *Backend) killStray(p *proc, file string) {
	p.signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for p.alive() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if p.alive() {
		p.signal(syscall.SIGKILL)
	}
	removeFile(file)
}

func (a *app) newSlot(b *Backend, version string, n int) *slot {
	s := &slot{
		b:    b,
		a:    a,
		key:  slotKey{version, n},
		id:   a.name + "-" + version + "-" + strconv.Itoa(n),
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
		msg:  "starting",
	}
	a.slots[s.key] = s
	return s
}

// Notify registers fn, called with the app's name whenever one of its
// instances starts, becomes ready or unready, exits or is removed. fn must
// not block.
//
// fn is also called at once for every app the backend already runs (its
// adopted instances, checked before New returned, included), so a router
// wired after New catches up without waiting for the next change.
func (b *Backend) Notify(fn func(app string)) {
	b.listeners.Add(fn)
	b.mu.Lock()
	apps := make([]string, 0, len(b.apps))
	for name := range b.apps {
		apps = append(apps, name)
	}
	b.mu.Unlock()
	for _, name := range apps {
		fn(name)
	}
}

func (b *Backend) notify(app string) { b.listeners.Fire(app) }

func (b *Backend) getApp(name string, create bool) (*app, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	a := b.apps[name]
	if a == nil && create {
		a = &app{name: name, slots: map[slotKey]*slot{}}
		b.apps[name] = a
	}
	return a, nil
}

// Apply records the desired replicas of rel.App and starts converging:
// missing slots 0..n-1 of each version are started, surplus ones (and every
// instance of a version absent from want) are reported not ready, drained
// (Config.Drainer) and stopped. Running instances are otherwise left alone,
// even when rel's command changed (the new command applies to instances
// started later). Apply returns once the desired state is recorded
// durably; Observe tells when it is reached.
func (b *Backend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, _ adapters.Step) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkRelease(rel); err != nil {
		return err
	}
	wantCopy, err := adapters.CheckReplicas(rel.App, want)
	if err != nil {
		return err
	}
	a, err := b.getApp(rel.App, true)
	if err != nil {
		return fmt.Errorf("apply app %s: %w", rel.App, err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	next := appFile{Release: rel.Clone(), Replicas: wantCopy}
	if err := b.saveLocked(a, next); err != nil {
		return fmt.Errorf("apply app %s: record desired state: %w", rel.App, err)
	}
	a.rel, a.want = next.Release, wantCopy
	var started []*slot
	for v, n := range wantCopy {
		for i := 0; i < n; i++ {
			s := a.slots[slotKey{v, i}]
			if s == nil {
				s = a.newSlot(b, v, i)
				s.want = true
				started = append(started, s)
			} else if !s.want {
				s.want = true
				s.poke()
			}
		}
	}
	for k, s := range a.slots {
		if s.want && k.n >= wantCopy[k.version] {
			s.want = false
			s.poke()
		}
	}
	b.mu.Lock()
	closed := b.closed
	if !closed {
		b.wg.Add(len(started))
	}
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("apply app %s: %w", rel.App, ErrClosed)
	}
	for _, s := range started {
		go s.run()
	}
	return nil
}

func checkRelease(rel *spec.Release) error {
	if rel == nil {
		return fmt.Errorf("process backend: nil release: %w", spec.ErrInvalid)
	}
	if err := spec.CheckApp(rel.App); err != nil {
		return fmt.Errorf("process backend: app %v: %w", err, spec.ErrInvalid)
	}
	if rel.Backend.Process == nil {
		return fmt.Errorf("apply app %s: backend.type is %q, not process: %w", rel.App, rel.Backend.Type, adapters.ErrUnsupported)
	}
	if len(rel.Backend.Process.Command) == 0 {
		return fmt.Errorf("apply app %s: backend.process.command is empty: %w", rel.App, spec.ErrInvalid)
	}
	return nil
}

// saveLocked writes the app file if it changed.
func (b *Backend) saveLocked(a *app, f appFile) error {
	d := digest(f)
	if d == a.saved {
		return nil
	}
	if err := writeJSON(b.dirs.appFile(a.name), AppFileKind(), f); err != nil {
		return err
	}
	a.saved = d
	return nil
}

func digest(f appFile) string {
	h := ""
	if f.Release != nil {
		h = f.Release.Hash()
	}
	keys := make([]string, 0, len(f.Replicas))
	for k := range f.Replicas {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h += "|" + k + "=" + strconv.Itoa(f.Replicas[k])
	}
	return h
}

// Observe returns the app's instances, sorted by version and slot: running,
// starting, restarting and stopping ones (adopted ones included). Not-ready
// instances say why in Message. Meta holds pid, port, restarts, adopted,
// startedAt and log (the instance's log file). No side effects.
func (b *Backend) Observe(ctx context.Context, appName string) ([]adapters.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := b.getApp(appName, false)
	if err != nil {
		return nil, fmt.Errorf("observe app %s: %w", appName, err)
	}
	if a == nil {
		return []adapters.Instance{}, nil
	}
	a.mu.Lock()
	slots := make([]*slot, 0, len(a.slots))
	for _, s := range a.slots {
		slots = append(slots, s)
	}
	sort.Slice(slots, func(i, j int) bool {
		if slots[i].key.version != slots[j].key.version {
			return slots[i].key.version < slots[j].key.version
		}
		return slots[i].key.n < slots[j].key.n
	})
	out := make([]adapters.Instance, 0, len(slots))
	for _, s := range slots {
		out = append(out, s.instanceLocked())
	}
	a.mu.Unlock()
	return out, nil
}

// Forget stops whatever instances of the app remain (draining them), waits
// for them to exit or for ctx to end, and removes the app's state (its
// instance logs stay under StateDir).
func (b *Backend) Forget(ctx context.Context, appName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a, err := b.getApp(appName, false)
	if err != nil {
		return fmt.Errorf("forget app %s: %w", appName, err)
	}
	if a != nil {
		if err := b.stopApp(ctx, a); err != nil {
			return fmt.Errorf("forget app %s: %w", appName, err)
		}
	}
	b.mu.Lock()
	if b.apps[appName] == a {
		delete(b.apps, appName)
	}
	b.mu.Unlock()
	if err := removeFile(b.dirs.appFile(appName)); err != nil {
		return fmt.Errorf("forget app %s: %w", appName, err)
	}
	os.Remove(b.dirs.instancesDir(appName))
	return nil
}

// stopApp wants every slot of a at zero and waits until they are gone.
func (b *Backend) stopApp(ctx context.Context, a *app) error {
	a.mu.Lock()
	next := appFile{Release: a.rel}
	if err := b.saveLocked(a, next); err != nil {
		a.mu.Unlock()
		return fmt.Errorf("record desired state: %w", err)
	}
	a.want = nil
	var dones []chan struct{}
	for _, s := range a.slots {
		if s.want {
			s.want = false
			s.poke()
		}
		dones = append(dones, s.done)
	}
	a.mu.Unlock()
	for _, d := range dones {
		select {
		case <-d:
		case <-ctx.Done():
			return fmt.Errorf("waiting for instances of %s to stop: %w", a.name, ctx.Err())
		case <-b.ctx.Done():
			return ErrClosed
		}
	}
	return nil
}

// StopAll stops every instance of every app (draining them) and waits for
// them to exit or for ctx to end. The desired replicas become zero, also for
// a later Backend on the same StateDir.
func (b *Backend) StopAll(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	apps := make([]*app, 0, len(b.apps))
	for _, a := range b.apps {
		apps = append(apps, a)
	}
	b.mu.Unlock()
	var errs []error
	for _, a := range apps {
		if err := b.stopApp(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("stop app %s: %w", a.name, err))
		}
	}
	return errors.Join(errs...)
}

// Close is graylane's shutdown: it stops supervising, but leaves the
// instances running and recorded, so a new Backend on the same StateDir
// adopts them. It waits for the supervisors to return (at most one
// health-check timeout).
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel()
		b.wg.Wait()
		b.lock.Close() // releases the flock
	})
	return nil
}

// ErrStateDirInUse is returned by New when another live Backend (in this
// or another graylane process) holds the StateDir: two would start every
// slot twice.
var ErrStateDirInUse = errors.New("state dir is in use by another process backend")

// lockStateDir takes an exclusive flock on StateDir/lock. The kernel drops
// it when graylane dies, however it dies; the file is close-on-exec, so
// instances never hold it.
func lockStateDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("process backend: lock state dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("process backend: %s (held by pid %s): %w", dir, strings.TrimSpace(string(holder)), ErrStateDirInUse)
		}
		return nil, fmt.Errorf("process backend: lock state dir: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

func (b *Backend) reservePort(port int, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if on {
		b.ports[port] = true
	} else {
		delete(b.ports, port)
	}
}

func (b *Backend) portReserved(port int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ports[port]
}

// NotifiesEveryChange implements adapters.ChangeNotifier: every instance start, exit, readiness change and health-check flip is notified.
func (b *Backend) NotifiesEveryChange() bool { return true }
