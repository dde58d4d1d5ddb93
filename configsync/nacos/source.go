package nacos

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
)

// Interface guards.
var (
	_ configsync.Source        = (*Source)(nil)
	_ configsync.Writer        = (*Source)(nil)
	_ configsync.HealthChecker = (*Source)(nil)
)

// absentCAS is sent as casMd5 to publish only if no document exists. Nacos
// (and Polaris) answer a compare-and-swap publish of a missing dataId by
// creating it, and of an existing one by comparing its MD5 with casMd5; no
// MD5 is "absent", so an existing document always makes it fail.
const absentCAS = "graylane-absent"

// contentType is the type release documents are published with; the Nacos
// console shows and highlights it. JSON documents are valid YAML.
const contentType = "yaml"

// Source reads, watches and writes graylane release documents in Nacos:
// one dataId per app (the app name) in a dedicated group, plus an index
// document listing the apps. See the package documentation for the layout.
// It is safe for concurrent use.
type Source struct {
	cfg      Config
	log      *slog.Logger
	sess     *session[config_client.IConfigClient]
	cacheDir string
	ownCache bool
	revs     revisions
	w        writes
	// indexLock, if set, is held around index updates (Config.IndexLock).
	indexLock IndexLocker

	idxMu  sync.Mutex // Get's cached index read
	idxRaw string
	idxAt  time.Time

	hubMu sync.Mutex
	hub   *hub

	closeOnce sync.Once
	closed    chan struct{}
}

// New connects to Nacos. It waits (up to ctx or Config.Timeout) for a
// first connection but does not fail when the cluster is unreachable: the
// Source then reports ErrUnavailable from its calls and its watches until
// the cluster answers. It fails only on an invalid Config.
func New(ctx context.Context, cfg Config) (*Source, error) {
	cfg, servers, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, own, err := cfg.cacheDir("config")
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, log: logx.OrDiscard(cfg.Logger).With("centre", "nacos", "group", cfg.Group), cacheDir: dir, ownCache: own, closed: make(chan struct{}), indexLock: cfg.IndexLock}
	s.revs.init()
	dial := func() (config_client.IConfigClient, error) {
		c, err := clients.NewConfigClient(cfg.sdkParam(servers, dir, false))
		if err != nil {
			return nil, err
		}
		cfg.bridgeSDKLog(s.log)
		return c, nil
	}
	warm := func(c config_client.IConfigClient) error {
		_, err := c.GetConfig(vo.ConfigParam{DataId: cfg.IndexDataID, Group: cfg.Group})
		return err
	}
	creds, err := cfg.transportCredentials()
	if err != nil {
		return nil, err
	}
	s.sess, err = newSession("config", servers, creds, cfg.Timeout, s.log, dial, warm)
	if err != nil {
		s.removeCache()
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, _, err := s.sess.client(wctx); err != nil {
		s.log.Warn("nacos: not connected yet; continuing", "servers", cfg.Servers, "err", err)
	}
	return s, nil
}

// Name implements configsync.Source.
func (s *Source) Name() string { return "nacos" }

// Group is the Nacos group the source uses.
func (s *Source) Group() string { return s.cfg.Group }

// IndexDataID is the dataId of the index document.
func (s *Source) IndexDataID() string { return s.cfg.IndexDataID }

// Get implements configsync.Source. Like List and Watch it shows only apps
// the index names: an app missing from the index is ErrNotFound even if
// its dataId has content.
func (s *Source) Get(ctx context.Context, app string) (configsync.Entry, error) {
	if err := spec.CheckApp(app); err != nil {
		return configsync.Entry{}, fmt.Errorf("nacos: get app %q: %w", app, err)
	}
	apps, err := s.indexApps(ctx)
	if err != nil {
		return configsync.Entry{}, fmt.Errorf("nacos: get app %q: %w", app, err)
	}
	if !slices.Contains(apps, app) {
		return configsync.Entry{}, fmt.Errorf("nacos: get app %q: not in index %s: %w", app, s.cfg.IndexDataID, configsync.ErrNotFound)
	}
	data, err := s.readRYW(ctx, app)
	if err != nil {
		return configsync.Entry{}, fmt.Errorf("nacos: get app %q: %w", app, err)
	}
	if data == "" {
		return configsync.Entry{}, fmt.Errorf("nacos: get app %q: %w", app, configsync.ErrNotFound)
	}
	return s.entry(app, data, false), nil
}

// indexTTL is how long Get reuses an index read: nacos-sdk-go allows only
// 5 reads per second of one dataId in a process, and Polaris' reads lag a
// second anyway.
const indexTTL = time.Second

// indexApps returns the apps the index lists, reading it at most once per
// indexTTL (with read-your-writes).
func (s *Source) indexApps(ctx context.Context) ([]string, error) {
	s.idxMu.Lock()
	raw, at := s.idxRaw, s.idxAt
	s.idxMu.Unlock()
	if at.IsZero() || time.Since(at) >= indexTTL {
		var err error
		if raw, err = s.read(ctx, s.cfg.IndexDataID); err != nil {
			return nil, fmt.Errorf("read index %s: %w", s.cfg.IndexDataID, err)
		}
		s.idxMu.Lock()
		s.idxRaw, s.idxAt = raw, time.Now()
		s.idxMu.Unlock()
	}
	apps, err := parseIndex(s.w.overlay(s.cfg.IndexDataID, raw))
	if err != nil {
		return nil, fmt.Errorf("%w: index %s: %w", configsync.ErrUnavailable, s.cfg.IndexDataID, err)
	}
	return apps, nil
}

// List implements configsync.Source: the apps named in the index that have
// a document. The revision is the source's local counter after the reads.
func (s *Source) List(ctx context.Context) ([]configsync.Entry, int64, error) {
	raw, err := s.readRYW(ctx, s.cfg.IndexDataID)
	if err != nil {
		return nil, 0, fmt.Errorf("nacos: list: read index %s: %w", s.cfg.IndexDataID, err)
	}
	apps, err := parseIndex(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("nacos: list: %w: index %s: %w", configsync.ErrUnavailable, s.cfg.IndexDataID, err)
	}
	var out []configsync.Entry
	for _, app := range apps {
		data, err := s.readRYW(ctx, app)
		if err != nil {
			return nil, 0, fmt.Errorf("nacos: list: get app %q: %w", app, err)
		}
		if data == "" {
			continue
		}
		out = append(out, s.entry(app, data, false))
	}
	return out, s.revs.current(), nil
}

// Healthy implements configsync.HealthChecker: the index can be read.
func (s *Source) Healthy(ctx context.Context) error {
	if _, err := s.read(ctx, s.cfg.IndexDataID); err != nil {
		return fmt.Errorf("nacos: health: %w", err)
	}
	return nil
}

// Put implements configsync.Writer.
//
// The document is published with type yaml. expect is honoured with Nacos'
// compare-and-swap publish (casMd5), which the server checks atomically
// against the stored content:
//   - "": unconditional publish;
//   - a Version (the MD5 Get returned): casMd5 = expect. A server that
//     ignores casMd5 on updates (Polaris v1.18.1; detected once with a
//     private probe dataId) gets an emulation instead: read, compare,
//     publish, which is not atomic;
//   - configsync.Absent: casMd5 = a value no MD5 can equal. Nacos (and
//     Polaris) create a missing dataId regardless of casMd5 and compare it
//     for an existing one, so this is an atomic create-if-absent.
//
// Before publishing, Put makes sure the index lists app, so that a nil
// error means List and Watch will show the document. If the publish then
// fails, the index may list an app without a document, which is harmless.
func (s *Source) Put(ctx context.Context, app string, data []byte, expect string) (configsync.Entry, error) {
	if err := spec.CheckApp(app); err != nil {
		return configsync.Entry{}, fmt.Errorf("nacos: put app %q: %w", app, err)
	}
	if len(data) == 0 {
		return configsync.Entry{}, fmt.Errorf("nacos: put app %q: empty document (Nacos cannot store empty content; use Delete)", app)
	}
	if err := s.updateIndex(ctx, app, true); err != nil {
		return configsync.Entry{}, fmt.Errorf("nacos: put app %q: add to index %s: %w", app, s.cfg.IndexDataID, err)
	}
	if err := s.write(ctx, app, string(data), expect); err != nil {
		return configsync.Entry{}, fmt.Errorf("nacos: put app %q: %w", app, err)
	}
	return s.entry(app, string(data), true), nil
}

// Delete implements configsync.Writer. Nacos has no conditional delete, so
// with expect set to a Version, Delete compares it with the stored MD5 and,
// on a server that honours casMd5, re-publishes the content it read with
// casMd5 = expect (an atomic check that changes nothing) before deleting: a
// write that lands between those two requests is lost. With expect Absent,
// Delete succeeds only if there is no document. Deleting a missing document
// is not an error, whatever expect says. The app is then removed from the
// index.
func (s *Source) Delete(ctx context.Context, app string, expect string) error {
	if err := spec.CheckApp(app); err != nil {
		return fmt.Errorf("nacos: delete app %q: %w", app, err)
	}
	if err := s.remove(ctx, app, expect); err != nil {
		return fmt.Errorf("nacos: delete app %q: %w", app, err)
	}
	if err := s.updateIndex(ctx, app, false); err != nil {
		return fmt.Errorf("nacos: delete app %q: remove from index %s: %w", app, s.cfg.IndexDataID, err)
	}
	return nil
}

// Close implements configsync.Source: it ends every watch (their channels
// close), disconnects, and removes the private cache directory.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.hubMu.Lock()
		h := s.hub
		s.hubMu.Unlock()
		if h != nil {
			h.stop()
		}
		s.sess.close()
		s.removeCache()
	})
	return nil
}

func (s *Source) removeCache() {
	if s.ownCache {
		_ = os.RemoveAll(s.cacheDir)
	}
}

// entry builds the Entry for content read (changed == false) or known to
// be a change (changed == true: written by Put, or a transition the watch
// hub saw).
func (s *Source) entry(app, data string, changed bool) configsync.Entry {
	sum := md5Hex(data)
	rev := s.revs.lookup
	if changed {
		rev = s.revs.mint
	}
	return configsync.Entry{App: app, Data: []byte(data), Version: sum, Revision: rev(app, sum)}
}

// read returns a dataId's content, "" when it does not exist. A request
// that timed out or found the connection broken is tried once more on a
// fresh client (see requestErr).
func (s *Source) read(ctx context.Context, dataID string) (string, error) {
	for attempt := 1; ; attempt++ {
		c, gen, err := s.sess.client(ctx)
		if err != nil {
			return "", err
		}
		data, err := exec(ctx, s.sess, gen, func() (string, error) {
			return c.GetConfig(vo.ConfigParam{DataId: dataID, Group: s.cfg.Group})
		})
		switch {
		case err == nil:
			return data, nil
		case isLimitedErr(err):
			// nacos-sdk-go allows 5 reads per second per dataId in the
			// whole process; wait for the next token.
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("%w: %w (%w)", configsync.ErrUnavailable, err, ctx.Err())
			case <-time.After(limitedRetry):
			}
			continue
		}
		err = s.requestErr(gen, err)
		if attempt < 2 && ctx.Err() == nil && !errors.Is(err, errReplaced) && (isTransportErr(err) || isTimeoutErr(err)) {
			continue
		}
		return "", err
	}
}

// requestErr classifies a failed SDK request; every failure wraps
// ErrUnavailable (worth retrying). A broken connection or a timeout makes
// the session replace the client: nacos-sdk-go marks a client that timed
// out unhealthy and starts reconnecting by itself, and while it is
// unhealthy its request path races with its own background requests
// (upstream issue #908), so such a client is not used again.
func (s *Source) requestErr(gen uint64, err error) error {
	if err == nil {
		return fmt.Errorf("%w: server refused the request", configsync.ErrUnavailable)
	}
	if errors.Is(err, configsync.ErrUnavailable) {
		return err // ctx ended while waiting, or the client was replaced
	}
	if isTransportErr(err) || isTimeoutErr(err) {
		s.sess.fail(gen, err)
	}
	return fmt.Errorf("%w: %w", configsync.ErrUnavailable, err)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// isConflictErr recognises a lost compare-and-swap by the server's message:
// Nacos says "Cas publish fail, server md5 may have changed", Polaris "data
// is conflict, please try again".
func isConflictErr(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "cas publish fail") || strings.Contains(m, "md5 may have changed") || strings.Contains(m, "conflict")
}

// limitedRetry is how long read waits when the SDK's client-side rate
// limiter (5 reads per second per dataId, process-wide) refuses a read.
const limitedRetry = 200 * time.Millisecond

func isLimitedErr(err error) bool {
	return strings.Contains(err.Error(), "is limited")
}

// isTransportErr recognises nacos-sdk-go errors that mean the connection is
// broken (as opposed to a slow server or a refused request): the session
// then replaces its client.
func isTransportErr(err error) bool {
	m := strings.ToLower(err.Error())
	for _, s := range []string{"not connected", "code = unavailable", "connection refused", "connection reset", "transport is closing", "eof"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// isTimeoutErr recognises a request that ran out of time: nacos-sdk-go
// gives every publish and delete a fixed 3 s, which a loaded server can
// miss.
func isTimeoutErr(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "deadlineexceeded") || strings.Contains(m, "deadline exceeded") || strings.Contains(m, "timeout")
}
