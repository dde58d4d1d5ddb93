package nacos

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/graylane/graylane/configsync"
)

// DefaultConfigGroup is Nacos' default group, used for locations that name
// none.
const DefaultConfigGroup = "DEFAULT_GROUP"

// Documents reads and writes documents at arbitrary Nacos locations
// (namespace, group, dataId): configsync.Documents, for config files bound
// to a code version (configrelease) and read by services with
// spring-cloud-starter-alibaba-nacos-config or nacos-sdk-go.
//
// It keeps one connection per namespace and group (nacos-sdk-go binds a
// client to one namespace), opened on first use with the connection
// handling of Source: every failure wraps configsync.ErrUnavailable, a
// broken connection is replaced rather than left to the SDK's racy
// reconnect. Versions are the content's MD5; compare-and-swap is Nacos'
// casMd5 where the server honours it, emulated (read, compare, write; not
// atomic) where it does not (Polaris v1.18.1), see Source.Put. Read sees
// this process's own writes at once (read-your-writes for 3 s while the
// server's read cache lags, as Source does); ReadBack asks the server only,
// so a write is trusted only once Nacos serves it. Nacos cannot store an
// empty document (a missing dataId reads as ""), so Write refuses one.
type Documents struct {
	cfg Config

	mu      sync.Mutex
	sources map[string]*Source
	closed  bool
}

// Interface guard.
var _ configsync.Documents = (*Documents)(nil)

// NewDocuments returns Documents for the Nacos cluster in cfg (Servers,
// credentials, Timeout; Namespace and Group come from each location).
func NewDocuments(cfg Config) (*Documents, error) {
	if _, _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return &Documents{cfg: cfg, sources: map[string]*Source{}}, nil
}

// Centre returns "nacos".
func (d *Documents) Centre() string { return "nacos" }

// Close closes every connection. It is idempotent.
func (d *Documents) Close() error {
	d.mu.Lock()
	srcs := d.sources
	d.sources, d.closed = map[string]*Source{}, true
	d.mu.Unlock()
	var errs []error
	for _, s := range srcs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// source returns the connection for loc's namespace and group.
func (d *Documents) source(ctx context.Context, loc configsync.Location) (*Source, string, error) {
	if err := configsync.CheckLocation("nacos", loc); err != nil {
		return nil, "", err
	}
	group := loc.Group
	if group == "" {
		group = DefaultConfigGroup
	}
	key := loc.Namespace + "\x00" + group
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, "", fmt.Errorf("nacos documents: closed")
	}
	if s := d.sources[key]; s != nil {
		return s, loc.DataID, nil
	}
	cfg := d.cfg
	cfg.Namespace, cfg.Group = loc.Namespace, group
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	d.sources[key] = s
	return s, loc.DataID, nil
}

func docOf(data string) configsync.Doc {
	return configsync.Doc{Data: []byte(data), Version: md5Hex(data)}
}

// Read implements configsync.Documents.
func (d *Documents) Read(ctx context.Context, loc configsync.Location) (configsync.Doc, error) {
	s, dataID, err := d.source(ctx, loc)
	if err != nil {
		return configsync.Doc{}, err
	}
	data, err := s.readRYW(ctx, dataID)
	return d.result(loc, data, err)
}

// ReadBack reads loc from the server, ignoring this process's recent
// writes (configsync.ReadBacker).
func (d *Documents) ReadBack(ctx context.Context, loc configsync.Location) (configsync.Doc, error) {
	s, dataID, err := d.source(ctx, loc)
	if err != nil {
		return configsync.Doc{}, err
	}
	data, err := s.read(ctx, dataID)
	return d.result(loc, data, err)
}

func (d *Documents) result(loc configsync.Location, data string, err error) (configsync.Doc, error) {
	if err != nil {
		return configsync.Doc{}, fmt.Errorf("nacos %s: %w", loc, err)
	}
	if data == "" {
		return configsync.Doc{}, fmt.Errorf("nacos %s: %w", loc, configsync.ErrNotFound)
	}
	return docOf(data), nil
}

// Write implements configsync.Documents.
func (d *Documents) Write(ctx context.Context, loc configsync.Location, data []byte, expect string) (configsync.Doc, error) {
	if len(data) == 0 {
		return configsync.Doc{}, fmt.Errorf("nacos %s: an empty document cannot be told from a missing one", loc)
	}
	s, dataID, err := d.source(ctx, loc)
	if err != nil {
		return configsync.Doc{}, err
	}
	if err := s.write(ctx, dataID, string(data), expect); err != nil {
		return configsync.Doc{}, fmt.Errorf("nacos %s: %w", loc, err)
	}
	return docOf(string(data)), nil
}

// Delete implements configsync.Documents.
func (d *Documents) Delete(ctx context.Context, loc configsync.Location, expect string) error {
	s, dataID, err := d.source(ctx, loc)
	if err != nil {
		return err
	}
	if err := s.remove(ctx, dataID, expect); err != nil {
		return fmt.Errorf("nacos %s: %w", loc, err)
	}
	return nil
}
