package nacos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/internal/randid"
)

// Compare-and-swap support of the server, found out on first need.
const (
	casUnknown = iota
	casNative  // the server honours casMd5 on updates (Nacos)
	casAbsent  // the server ignores casMd5 on updates (Polaris v1.18.1)
)

// ryWindow is how long after its own write a Source treats a read that
// still shows an older content as lagging (read-your-writes). Polaris
// serves reads from a cache refreshed every second; a Nacos cluster
// replicates asynchronously, usually within milliseconds.
const ryWindow = 3 * time.Second

// writes is the Source's write-side state.
type writes struct {
	mu     sync.Mutex
	recent map[string]recentWrite // dataId -> this Source's last write

	casMu   sync.Mutex
	casMode int

	indexMu sync.Mutex // serialises this Source's index updates
}

// recentWrite is this Source's last write of one dataId.
type recentWrite struct {
	md5     string          // what was written; "" = deleted
	content string          // "" = deleted
	stale   map[string]bool // MD5s ("" = absent) that, read back soon, mean the read lags
	at      time.Time
}

// remember records a successful write of dataID (content "" = deleted)
// made over base, the content this Source believed was current.
func (w *writes) remember(dataID, base, content string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.recent == nil {
		w.recent = map[string]recentWrite{}
	}
	stale := map[string]bool{}
	if r, ok := w.recent[dataID]; ok && time.Since(r.at) < ryWindow {
		for k := range r.stale {
			stale[k] = true
		}
		stale[r.md5] = true
	}
	stale[contentMD5(base)] = true
	cur := contentMD5(content)
	delete(stale, cur)
	w.recent[dataID] = recentWrite{md5: cur, content: content, stale: stale, at: time.Now()}
}

// overlay returns what a read of dataID should show: the read itself, or
// this Source's own recent write if the read still shows what came before.
func (w *writes) overlay(dataID, read string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.recent[dataID]
	if !ok || time.Since(r.at) >= ryWindow {
		return read
	}
	if m := contentMD5(read); m != r.md5 && r.stale[m] {
		return r.content
	}
	return read
}

// contentMD5 is the MD5 of content, "" for no content.
func contentMD5(content string) string {
	if content == "" {
		return ""
	}
	return md5Hex(content)
}

// readRYW reads dataID with read-your-writes: right after this Source
// wrote it, a lagging read shows the write instead of the older content.
func (s *Source) readRYW(ctx context.Context, dataID string) (string, error) {
	data, err := s.read(ctx, dataID)
	if err != nil {
		return "", err
	}
	return s.w.overlay(dataID, data), nil
}

// casSupport finds out once whether the server honours casMd5 on updates,
// by writing a private probe dataId twice and deleting it. Nacos does;
// Polaris v1.18.1 ignores casMd5 (its Nacos adapter never passes it on),
// so every conditional update would fail there.
func (s *Source) casSupport(ctx context.Context) (int, error) {
	s.w.casMu.Lock()
	defer s.w.casMu.Unlock()
	if s.w.casMode != casUnknown {
		return s.w.casMode, nil
	}
	probe := "graylane.cas-probe." + randid.Hex(6)
	first := "graylane compare-and-swap probe 1 (safe to delete)"
	if err := s.publishOnce(ctx, probe, first, ""); err != nil {
		return casUnknown, fmt.Errorf("probe compare-and-swap support: %w", err)
	}
	defer func() {
		if err := s.deleteOnce(context.WithoutCancel(ctx), probe); err != nil {
			s.log.Warn("nacos: delete compare-and-swap probe", "dataId", probe, "err", err)
		}
	}()
	err := s.publishOnce(ctx, probe, "graylane compare-and-swap probe 2 (safe to delete)", md5Hex(first))
	switch {
	case err == nil:
		s.w.casMode = casNative
	case errors.Is(err, configsync.ErrConflict):
		s.w.casMode = casAbsent
		s.log.Warn("nacos: the server ignores casMd5 on updates; conditional writes are emulated (read, compare, write) and not atomic")
	default:
		return casUnknown, fmt.Errorf("probe compare-and-swap support: %w", err)
	}
	return s.w.casMode, nil
}

// publishAttempts bounds publishOnce's retries after a request timed out.
const publishAttempts = 3

// publishOnce publishes content to dataID: cas "" is unconditional; a lost
// compare-and-swap returns an error wrapping ErrConflict. A request that
// timed out (nacos-sdk-go allows 3 s) is retried; if a retry then loses its
// compare-and-swap because the earlier attempt did land, that is success.
func (s *Source) publishOnce(ctx context.Context, dataID, content, cas string) error {
	var err error
	for attempt := 1; attempt <= publishAttempts; attempt++ {
		err = s.publishRequest(ctx, dataID, content, cas)
		switch {
		case err == nil:
			return nil
		case attempt > 1 && errors.Is(err, configsync.ErrConflict):
			if s.landed(ctx, dataID, content) {
				return nil
			}
			return err
		case !isTimeoutErr(err) || ctx.Err() != nil:
			return err
		}
		s.log.Warn("nacos: publish timed out; retrying", "dataId", dataID, "attempt", attempt, "err", err)
	}
	return err
}

// landed reports whether dataID holds content, polling for a read cache to
// catch up (Polaris: ~1 s).
func (s *Source) landed(ctx context.Context, dataID, content string) bool {
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, err := s.read(ctx, dataID)
		if err == nil && got == content {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(limitedRetry)
	}
}

// publishRequest sends one publish request.
func (s *Source) publishRequest(ctx context.Context, dataID, content, cas string) error {
	c, gen, err := s.sess.client(ctx)
	if err != nil {
		return err
	}
	ok, err := exec(ctx, s.sess, gen, func() (bool, error) {
		return c.PublishConfig(vo.ConfigParam{DataId: dataID, Group: s.cfg.Group, Content: content, Type: contentType, CasMd5: cas})
	})
	if err == nil && ok {
		return nil
	}
	if cas != "" && err != nil && isConflictErr(err) {
		return fmt.Errorf("publish %s: %w: %w", dataID, configsync.ErrConflict, err)
	}
	return fmt.Errorf("publish %s: %w", dataID, s.requestErr(gen, err))
}

func (s *Source) deleteOnce(ctx context.Context, dataID string) error {
	var err error
	for attempt := 1; attempt <= publishAttempts; attempt++ {
		if err = s.deleteRequest(ctx, dataID); err == nil || !isTimeoutErr(err) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("nacos: delete timed out; retrying", "dataId", dataID, "attempt", attempt, "err", err)
	}
	return err
}

func (s *Source) deleteRequest(ctx context.Context, dataID string) error {
	c, gen, err := s.sess.client(ctx)
	if err != nil {
		return err
	}
	ok, err := exec(ctx, s.sess, gen, func() (bool, error) {
		return c.DeleteConfig(vo.ConfigParam{DataId: dataID, Group: s.cfg.Group})
	})
	if err != nil || !ok {
		return fmt.Errorf("delete %s: %w", dataID, s.requestErr(gen, err))
	}
	return nil
}

// write publishes content to dataID. expect is "" (unconditional), Absent
// (create only) or the MD5 the stored content must have. With a server
// that ignores casMd5, a version check is emulated: read (with
// read-your-writes), compare, write.
func (s *Source) write(ctx context.Context, dataID, content, expect string) error {
	base, err := s.readRYW(ctx, dataID)
	if err != nil {
		return fmt.Errorf("read %s: %w", dataID, err)
	}
	switch expect {
	case "":
		err = s.publishOnce(ctx, dataID, content, "")
	case configsync.Absent:
		// Nacos and Polaris both create a missing dataId whatever casMd5
		// says and compare it for an existing one: atomic create-only.
		err = s.publishOnce(ctx, dataID, content, absentCAS)
	default:
		mode, merr := s.casSupport(ctx)
		if merr != nil {
			return merr
		}
		if mode == casNative {
			err = s.publishOnce(ctx, dataID, content, expect)
			if errors.Is(err, configsync.ErrConflict) && base != "" && md5Hex(base) != expect {
				err = fmt.Errorf("%w (stored version %s, expected %s)", err, md5Hex(base), expect)
			}
		} else if cur := contentMD5(base); cur != expect {
			err = fmt.Errorf("publish %s: stored version %q, expected %s: %w", dataID, cur, expect, configsync.ErrConflict)
		} else {
			err = s.publishOnce(ctx, dataID, content, "")
		}
	}
	if err != nil {
		return err
	}
	s.w.remember(dataID, base, content)
	return nil
}

// remove deletes dataID. expect is "" (unconditional), Absent (succeed only
// if there is nothing to delete) or the MD5 the stored content must have.
// Nacos has no conditional delete: with a native compare-and-swap server the
// version is checked by re-publishing the stored content with casMd5 =
// expect (atomic, changes nothing), then the dataId is deleted; a write
// between the two is lost. A missing dataId is never an error.
func (s *Source) remove(ctx context.Context, dataID, expect string) error {
	base, err := s.readRYW(ctx, dataID)
	if err != nil {
		return fmt.Errorf("read %s: %w", dataID, err)
	}
	if expect != "" {
		switch {
		case base == "":
			return nil
		case expect == configsync.Absent:
			return fmt.Errorf("delete %s: expected no document, found version %s: %w", dataID, md5Hex(base), configsync.ErrConflict)
		case md5Hex(base) != expect:
			return fmt.Errorf("delete %s: expected version %s, found %s: %w", dataID, expect, md5Hex(base), configsync.ErrConflict)
		}
		mode, err := s.casSupport(ctx)
		if err != nil {
			return err
		}
		if mode == casNative {
			if err := s.publishOnce(ctx, dataID, base, expect); err != nil {
				return fmt.Errorf("verify version of %s: %w", dataID, err)
			}
		}
	}
	if err := s.deleteOnce(ctx, dataID); err != nil {
		return err
	}
	s.w.remember(dataID, base, "")
	return nil
}

// updateIndex makes the index list app (present) or not. Writers are
// reconciled with compare-and-swap on the index's MD5 and retried on
// conflict. With a server that ignores casMd5 the update is written
// unconditionally and then read back until the server shows it; if another
// writer's update replaced it, it is redone. That narrows, but cannot
// close, the window in which two graylane instances lose each other's
// index entries on such a server.
func (s *Source) updateIndex(ctx context.Context, app string, present bool) error {
	s.w.indexMu.Lock()
	defer s.w.indexMu.Unlock()
	if s.indexLock != nil {
		if err := s.indexLock.Lock(ctx); err != nil {
			return fmt.Errorf("lock the index: %w", err)
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.indexLock.Unlock(uctx); err != nil {
				s.log.Warn("unlock the index", "err", err)
			}
		}()
	}
	id := s.cfg.IndexDataID
	delay := 50 * time.Millisecond
	var lastErr error
	for attempt := 1; attempt <= 30; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (%w)", lastErr, ctx.Err())
			case <-time.After(delay):
			}
			delay = min(delay*2, 500*time.Millisecond)
		}
		base, err := s.readRYW(ctx, id)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		apps, err := parseIndex(base)
		if err != nil {
			return err
		}
		if slices.Contains(apps, app) == present {
			return nil
		}
		next := slices.DeleteFunc(slices.Clone(apps), func(a string) bool { return a == app })
		if present {
			next = append(next, app)
		}
		content := renderIndex(next)
		mode := casNative
		switch {
		case base == "":
			err = s.publishOnce(ctx, id, content, absentCAS)
		default:
			if mode, err = s.casSupport(ctx); err != nil {
				return err
			}
			if mode == casNative {
				err = s.publishOnce(ctx, id, content, md5Hex(base))
			} else {
				err = s.publishOnce(ctx, id, content, "")
			}
		}
		if errors.Is(err, configsync.ErrConflict) {
			lastErr = err
			continue
		}
		if err != nil {
			return err
		}
		s.w.remember(id, base, content)
		if mode == casNative {
			return nil
		}
		// Emulated: wait until the server shows a newer index than base,
		// then check our change survived.
		ok, err := s.confirmIndex(ctx, base, app, present)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		lastErr = fmt.Errorf("index update for %s was overwritten by another writer", app)
	}
	return fmt.Errorf("gave up: %w", lastErr)
}

// confirmIndex polls the index (without read-your-writes) until it differs
// from base, and reports whether it then has app as wanted.
func (s *Source) confirmIndex(ctx context.Context, base, app string, present bool) (bool, error) {
	deadline := time.Now().Add(ryWindow)
	for {
		raw, err := s.read(ctx, s.cfg.IndexDataID)
		if err != nil {
			return false, err
		}
		if raw != base {
			apps, err := parseIndex(raw)
			if err != nil {
				return false, err
			}
			return slices.Contains(apps, app) == present, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(limitedRetry):
		}
	}
}
