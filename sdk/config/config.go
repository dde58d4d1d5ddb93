package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
)

// DefaultInterval is how often a Loader re-reads its sources.
const DefaultInterval = time.Second

// File is one config file the service loads.
type File struct {
	// Name as in the release's config.files (e.g. application.yaml).
	Name string
	// Format is yaml, json or properties (default: from the extension).
	Format string
}

func (f File) format() string {
	if f.Format != "" {
		return f.Format
	}
	return spec.FormatOfName(f.Name)
}

// Source is one config centre the service reads its files from.
type Source interface {
	// Centre names the centre ("etcd", "nacos", "apollo").
	Centre() string
	// Fetch returns file as an instance of release identity id reads it:
	// the copy bound to id when there is one (gray true), else the stable
	// file. A missing file is an error wrapping configsync.ErrNotFound.
	Fetch(ctx context.Context, app string, file File, id string) (data []byte, gray bool, err error)
}

// Config configures a Loader.
type Config struct {
	// App is the app name of the release (templates' {{.App}}).
	App string
	// Identity is the release identity the instance runs as: the version
	// graylane started it with ({{.Version}} in backend templates).
	Identity string
	// Files are the files to load (at least one).
	Files []File
	// Sources are the centres to read (at least one). The first one's
	// content is what Files returns; all must agree for Checksum to be set.
	Sources []Source
	// Interval between reads (DefaultInterval).
	Interval time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Snapshot is the config an instance loaded.
type Snapshot struct {
	Identity string
	// Files maps each file name to its content (from the first source that
	// has them all).
	Files map[string][]byte
	// Checksum is the config digest of Files (configwire.BundleDigest),
	// "" when a file is missing or the sources disagree.
	Checksum string
	// Digests maps each file to the SHA-256 of its canonical content.
	Digests  map[string]string
	Sources  []configwire.SourceReport
	LoadedAt time.Time
	// Err says why Checksum is empty.
	Err error
}

// Loader loads the service's config files from its centres, reloads them
// when they change, and reports the checksum of what it loaded.
type Loader struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	cur       Snapshot
	listeners []func(Snapshot)
	loaded    chan struct{}
	once      sync.Once
	stop      context.CancelFunc
	done      chan struct{}
}

// New validates cfg, reads the files once (waiting at most until ctx
// ends) and keeps re-reading them every Interval until Close. A first read
// that fails is not an error: the Loader keeps trying and Snapshot says
// what is missing.
func New(ctx context.Context, cfg Config) (*Loader, error) {
	if cfg.Identity == "" {
		return nil, errors.New("sdk/config: Identity (the version the instance runs as) is required")
	}
	if len(cfg.Files) == 0 || len(cfg.Sources) == 0 {
		return nil, errors.New("sdk/config: at least one file and one source are required")
	}
	for _, f := range cfg.Files {
		if !spec.ConfigFileNamePattern.MatchString(f.Name) {
			return nil, fmt.Errorf("sdk/config: %q is not a config file name", f.Name)
		}
		switch f.format() {
		case spec.FormatYAML, spec.FormatJSON, spec.FormatProperties:
		default:
			return nil, fmt.Errorf("sdk/config: file %s: format %q is not yaml, json or properties", f.Name, f.format())
		}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	rctx, cancel := context.WithCancel(context.Background())
	l := &Loader{cfg: cfg, log: cfg.Logger, loaded: make(chan struct{}), stop: cancel, done: make(chan struct{})}
	go l.run(rctx)
	select {
	case <-l.loaded:
	case <-ctx.Done():
	}
	return l, nil
}

// Close stops reloading.
func (l *Loader) Close() {
	l.stop()
	<-l.done
}

// Snapshot returns what is loaded now.
func (l *Loader) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// File returns the named file's content as loaded (nil if missing).
func (l *Loader) File(name string) []byte { return l.Snapshot().Files[name] }

// OnChange registers fn, called (in the Loader's goroutine) with every new
// snapshot: a reload. fn is called once at once with the current one.
func (l *Loader) OnChange(fn func(Snapshot)) {
	l.mu.Lock()
	l.listeners = append(l.listeners, fn)
	cur := l.cur
	l.mu.Unlock()
	if !cur.LoadedAt.IsZero() {
		fn(cur)
	}
}

func (l *Loader) run(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		l.load(ctx)
		l.once.Do(func() { close(l.loaded) })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// load reads every file from every source and publishes a new snapshot
// when anything changed.
func (l *Loader) load(ctx context.Context) {
	type sourceRead struct {
		files  map[string][]byte
		gray   []string
		digest string
		err    error
	}
	reads := make([]sourceRead, len(l.cfg.Sources))
	var wg sync.WaitGroup
	for i, src := range l.cfg.Sources {
		wg.Add(1)
		go func(i int, src Source) {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, max(5*time.Second, l.cfg.Interval))
			defer cancel()
			r := sourceRead{files: map[string][]byte{}}
			var files []configwire.File
			for _, f := range l.cfg.Files {
				data, gray, err := src.Fetch(rctx, l.cfg.App, f, l.cfg.Identity)
				if err != nil {
					r.err = fmt.Errorf("%s: %s: %w", src.Centre(), f.Name, err)
					break
				}
				sum, err := configwire.FileDigest(f.format(), data)
				if err != nil {
					r.err = fmt.Errorf("%s: %s does not parse as %s: %w", src.Centre(), f.Name, f.format(), err)
					break
				}
				r.files[f.Name] = data
				if gray {
					r.gray = append(r.gray, f.Name)
				}
				files = append(files, configwire.File{Name: f.Name, Format: f.format(), SHA256: sum})
			}
			if r.err == nil {
				r.digest = configwire.BundleDigest(files)
			}
			reads[i] = r
		}(i, src)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	next := Snapshot{Identity: l.cfg.Identity, LoadedAt: time.Now()}
	var errs []error
	for i, r := range reads {
		sr := configwire.SourceReport{Centre: l.cfg.Sources[i].Centre(), Checksum: r.digest, Gray: r.gray}
		if r.err != nil {
			sr.Error = r.err.Error()
			errs = append(errs, r.err)
		}
		next.Sources = append(next.Sources, sr)
		if next.Files == nil && r.err == nil {
			next.Files = r.files
		}
	}
	digests := map[string]bool{}
	for _, r := range reads {
		if r.err == nil {
			digests[r.digest] = true
		}
	}
	switch {
	case len(errs) > 0:
		next.Err = errors.Join(errs...)
	case len(digests) > 1:
		next.Err = errors.New("the sources disagree: " + fmt.Sprint(sortedKeys(digests)))
	default:
		next.Checksum = reads[0].digest
	}
	if next.Files != nil {
		next.Digests = map[string]string{}
		for _, f := range l.cfg.Files {
			next.Digests[f.Name], _ = configwire.FileDigest(f.format(), next.Files[f.Name])
		}
	}
	l.mu.Lock()
	prev := l.cur
	if next.Files == nil && prev.Files != nil {
		// keep serving the last config loaded while the centre is away
		next.Files, next.Digests = prev.Files, prev.Digests
	}
	changed := prev.LoadedAt.IsZero() || prev.Checksum != next.Checksum || fmt.Sprint(prev.Sources) != fmt.Sprint(next.Sources) || !sameFiles(prev.Files, next.Files)
	if !changed {
		l.cur.LoadedAt = next.LoadedAt
		l.mu.Unlock()
		return
	}
	l.cur = next
	listeners := append([]func(Snapshot){}, l.listeners...)
	l.mu.Unlock()
	if next.Err != nil {
		l.log.Warn("config loaded incompletely", "identity", next.Identity, "err", next.Err)
	} else {
		l.log.Info("config loaded", "identity", next.Identity, "checksum", configwire.Short(next.Checksum))
	}
	for _, fn := range listeners {
		fn(next)
	}
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, configwire.Short(k))
	}
	sort.Strings(out)
	return out
}

// Report is what graylane reads at config.reportPath: the config this
// instance actually loaded.
func (l *Loader) Report() configwire.Report {
	s := l.Snapshot()
	r := configwire.Report{App: l.cfg.App, Identity: s.Identity, Checksum: s.Checksum, Files: s.Digests, Sources: s.Sources, LoadedAt: s.LoadedAt}
	if s.Err != nil {
		r.Error = s.Err.Error()
	}
	return r
}

// Handler serves Report as JSON; mount it at spec.DefaultConfigReportPath
// (/graylane/config) or the release's config.reportPath.
func (l *Loader) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l.Report())
	})
}

// ErrNotFound is configsync.ErrNotFound, for Source implementations.
var ErrNotFound = configsync.ErrNotFound
