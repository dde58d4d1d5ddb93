package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// StateSchema identifies version 1 of the routes file a Local keeps.
const StateSchema = "graylane.proxy-routes/v1"

// RoutesKind is the schema of the routes file: its "schema" member is
// StateSchema, "graylane.proxy-routes/v<n>". A file of a newer graylane is
// refused (NewLocal fails naming it) rather than served wrongly; a file
// without the member is not a routes file.
func RoutesKind() schema.Kind {
	return schema.Kind{Name: "proxy-routes", What: "proxy routes file", Current: 1, Unversioned: schema.Missing,
		Tag: "graylane.proxy-routes"}
}

// LocalConfig configures a Local.
type LocalConfig struct {
	// Proxy is the template of every app's Config; App and the sticky
	// names are filled per app.
	Proxy Config
	// Logger receives the proxies' logs (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
	// StateFile, if set, keeps every app's routes (settings, split,
	// endpoints): written on every change, read back by NewLocal, so a
	// restarted data plane serves the last routes at once.
	StateFile string
}

// Local is the DataPlane of app proxies running in this process.
type Local struct {
	cfg LocalConfig
	log *slog.Logger

	mu     sync.Mutex
	apps   map[string]*localApp
	closed bool

	smu   sync.Mutex // serialises state file writes
	saved []byte
}

type localApp struct {
	mu        sync.Mutex // serialises updates of this app
	p         *Proxy
	settings  Settings
	listenErr string
}

var _ DataPlane = (*Local)(nil)

// stateFile is the routes file.
type stateFile struct {
	Schema string            `json:"schema"`
	Apps   map[string]Routes `json:"apps"`
}

// NewLocal returns a Local, restoring the routes of cfg.StateFile (if
// set and present): every app's proxy is created, listens and serves its
// last split and endpoints before NewLocal returns. A proxy that cannot
// listen is kept and logged.
func NewLocal(cfg LocalConfig) (*Local, error) {
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	l := &Local{cfg: cfg, log: cfg.Logger.With("component", "proxy"), apps: map[string]*localApp{}}
	if cfg.StateFile == "" {
		return l, nil
	}
	b, err := os.ReadFile(cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("proxy routes: %w", err)
	}
	cur, _, err := RoutesKind().Decode(b)
	if err != nil {
		return nil, fmt.Errorf("proxy routes %s: %w", cfg.StateFile, err)
	}
	var st stateFile
	if err := json.Unmarshal(cur, &st); err != nil {
		return nil, fmt.Errorf("proxy routes %s: %w", cfg.StateFile, err)
	}
	for _, app := range sortedKeys(st.Apps) {
		r := st.Apps[app]
		if err := spec.CheckApp(app); err != nil {
			l.log.Error("routes file names an invalid app; skipped", "app", app, "err", err)
			continue
		}
		eps := r.Endpoints
		if eps == nil {
			eps = Endpoints{}
		}
		_, err := l.Update(context.Background(), app, Update{Settings: &r.Settings, Split: &r.Split, Endpoints: &eps})
		if err != nil {
			l.log.Error("restore proxy", "app", app, "err", err)
			continue
		}
		l.log.Info("proxy restored with its last routes", "app", app, "split", r.Split.Weights, "endpoints", r.Endpoints)
	}
	l.smu.Lock()
	l.saved = b
	l.smu.Unlock()
	return l, nil
}

func (l *Local) app(name string, create bool) (*localApp, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("proxy data plane: closed")
	}
	a := l.apps[name]
	if a == nil && create {
		cfg := l.cfg.Proxy
		cfg.App = name
		if cfg.Logger == nil {
			cfg.Logger = l.cfg.Logger
		}
		a = &localApp{p: New(cfg)}
		l.apps[name] = a
	}
	if a == nil {
		return nil, fmt.Errorf("app %s: %w", name, ErrUnknownApp)
	}
	return a, nil
}

// Update applies u to app's proxy (see DataPlane).
func (l *Local) Update(ctx context.Context, app string, u Update) (Routes, error) {
	if err := ctx.Err(); err != nil {
		return Routes{}, err
	}
	if err := spec.CheckApp(app); err != nil {
		return Routes{}, fmt.Errorf("proxy update: app %w: %w", err, spec.ErrInvalid)
	}
	if u.Split != nil {
		if err := traffic.ValidateSplit(*u.Split); err != nil {
			return Routes{}, fmt.Errorf("proxy update of app %s: %w: %w", app, err, spec.ErrInvalid)
		}
	}
	a, err := l.app(app, true)
	if err != nil {
		return Routes{}, err
	}
	a.mu.Lock()
	var listenErr error
	if u.Settings != nil {
		if err := a.p.Configure(*u.Settings); err != nil {
			a.mu.Unlock()
			return Routes{}, fmt.Errorf("proxy update of app %s: %w: %w", app, err, spec.ErrInvalid)
		}
		a.settings = *u.Settings
		if listenErr = a.p.Listen(a.settings.Listen); listenErr != nil {
			a.listenErr = listenErr.Error()
		} else {
			a.listenErr = ""
		}
	}
	if u.Split != nil {
		if err := a.p.SetSplit(*u.Split); err != nil {
			a.mu.Unlock()
			return Routes{}, err
		}
	}
	if u.Endpoints != nil {
		a.p.ReplaceEndpoints(*u.Endpoints)
	}
	for _, addr := range u.Remove {
		a.p.RemoveEndpoint(addr)
	}
	r := a.routesLocked(app)
	a.mu.Unlock()
	if err := l.persist(); err != nil {
		return r, fmt.Errorf("proxy update of app %s: record routes: %w", app, err)
	}
	return r, listenErr
}

func (a *localApp) routesLocked(app string) Routes {
	return Routes{App: app, Settings: a.settings, Split: a.p.Split(), Endpoints: a.p.AllEndpoints(), Addr: a.p.Addr(), ListenError: a.listenErr}
}

// Routes returns app's routes (see DataPlane).
func (l *Local) Routes(ctx context.Context, app string) (Routes, error) {
	if err := ctx.Err(); err != nil {
		return Routes{}, err
	}
	a, err := l.app(app, false)
	if err != nil {
		return Routes{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.routesLocked(app), nil
}

// Apps lists the apps that have a proxy, sorted.
func (l *Local) Apps(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return sortedKeys(l.apps), nil
}

// InFlight returns the requests in flight on addr for app.
func (l *Local) InFlight(ctx context.Context, app, addr string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	a, err := l.app(app, false)
	if errors.Is(err, ErrUnknownApp) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return a.p.InFlight(addr), nil
}

// Forget closes app's proxy and forgets its routes.
func (l *Local) Forget(ctx context.Context, app string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	a := l.apps[app]
	delete(l.apps, app)
	l.mu.Unlock()
	if a != nil {
		a.p.Close()
	}
	return l.persist()
}

// Proxy returns app's proxy, or nil (for tests and the benchmarks).
func (l *Local) Proxy(app string) *Proxy {
	a, _ := l.app(app, false)
	if a == nil {
		return nil
	}
	return a.p
}

// Close stops every proxy (requests in flight get a few seconds). The
// routes file stays: a new Local on it serves the same routes.
func (l *Local) Close() error {
	l.mu.Lock()
	apps := l.apps
	l.apps = map[string]*localApp{}
	l.closed = true
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.p.Close()
		}()
	}
	wg.Wait()
	return nil
}

// persist writes the routes file if it changed.
func (l *Local) persist() error {
	if l.cfg.StateFile == "" {
		return nil
	}
	l.smu.Lock()
	defer l.smu.Unlock()
	st := stateFile{Schema: StateSchema, Apps: map[string]Routes{}}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	apps := make(map[string]*localApp, len(l.apps))
	for k, v := range l.apps {
		apps[k] = v
	}
	l.mu.Unlock()
	for name, a := range apps {
		a.mu.Lock()
		r := a.routesLocked(name)
		a.mu.Unlock()
		r.Addr, r.ListenError = "", ""
		st.Apps[name] = r
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if bytes.Equal(b, l.saved) {
		return nil
	}
	if err := writeFileAtomic(l.cfg.StateFile, b); err != nil {
		return err
	}
	l.saved = b
	return nil
}

// writeFileAtomic writes data to path durably: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
