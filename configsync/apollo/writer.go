package apollo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo/openapi"
	"github.com/graylane/graylane/spec"
)

// maxTitle is Apollo's release name column width.
const maxTitle = 64

// current is the namespace as the Open API shows it before a write.
type current struct {
	released map[string]string       // latest release (empty if none)
	items    map[string]openapi.Item // items being edited
}

// read loads the latest release and the items.
func (s *Source) read(ctx context.Context, step string) (current, error) {
	cur := current{released: map[string]string{}, items: map[string]openapi.Item{}}
	rel, ok, err := s.api.LatestRelease(ctx, s.ns)
	if err != nil {
		return cur, s.apiErr(step, "read the latest release", err)
	}
	if ok {
		for k, v := range rel.Configurations {
			cur.released[k] = v
		}
	}
	items, err := s.api.Items(ctx, s.ns)
	if err != nil {
		return cur, s.apiErr(step, "read the items", err)
	}
	for _, it := range items {
		cur.items[it.Key] = it
	}
	return cur, nil
}

// othersPending lists the keys other than app whose item differs from the
// release: publishing would release someone's unfinished edit.
func (c current) othersPending(app string) []string {
	var keys []string
	for k, v := range c.released {
		if it, ok := c.items[k]; k != app && (!ok || it.Value != v) {
			keys = append(keys, k)
		}
	}
	for k := range c.items {
		if _, ok := c.released[k]; k != app && !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// checkExpect applies Writer's expect rule to the released document.
func checkExpect(expect, released string, exists bool) error {
	switch {
	case expect == "":
		return nil
	case expect == configsync.Absent && exists:
		return fmt.Errorf("expected no document, found version %s: %w", versionOf(released), configsync.ErrConflict)
	case expect == configsync.Absent:
		return nil
	case !exists:
		return fmt.Errorf("expected version %s, found no document: %w", expect, configsync.ErrConflict)
	case versionOf(released) != expect:
		return fmt.Errorf("expected version %s, found version %s: %w", expect, versionOf(released), configsync.ErrConflict)
	}
	return nil
}

// checkDrafts refuses to publish over unfinished portal edits: other keys'
// (the release would include them) and, for a conditional write, app's own.
func (s *Source) checkDrafts(cur current, app, expect string) error {
	if keys := cur.othersPending(app); len(keys) > 0 {
		shown := keys
		if len(shown) > 5 {
			shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(keys)-5))
		}
		return fmt.Errorf("namespace %s has unpublished changes to %s: Apollo releases a whole namespace, so graylane will not publish them; release or revert them in the portal first: %w",
			s.cfg.Namespace, strings.Join(shown, ", "), configsync.ErrConflict)
	}
	released, exists := cur.released[app]
	if it, ok := cur.items[app]; expect != "" && ok && (!exists || it.Value != released) {
		return fmt.Errorf("item %s has unpublished edits in the portal: %w", app, configsync.ErrConflict)
	}
	return nil
}

// Put stores data as app's document: it sets the item (creating it if
// needed) and publishes the namespace through the Open API, with a release
// titled "graylane: <app> <version>" released by the operator.
//
// The Open API has no compare-and-swap, so expect is checked by reading the
// latest release first (Version is the MD5 of the released value); writes
// of this Source are serialised, but a portal user publishing between the
// read and the write is not detected: best effort, last write wins. Put
// refuses (ErrConflict) when other items have unpublished edits, since the
// release would publish them too. If the release fails after the item was
// written, the item is restored, so no modified-but-unreleased item is left
// behind. Writing the released content again is a no-op.
func (s *Source) Put(ctx context.Context, app string, data []byte, expect string) (configsync.Entry, error) {
	step := fmt.Sprintf("put app %q (item %q of namespace %s, app %s, cluster %s, env %s)", app, app, s.cfg.Namespace, s.cfg.AppID, s.cfg.Cluster, s.cfg.Env)
	if s.api == nil {
		return configsync.Entry{}, fmt.Errorf("apollo: %s: no portal configured, the source is read-only: %w", step, configsync.ErrUnsupported)
	}
	if err := spec.CheckApp(app); err != nil {
		return configsync.Entry{}, fmt.Errorf("apollo: %s: app name %w", step, err)
	}
	value := string(data)
	if n := javaLen(value); n > MaxValueLength {
		return configsync.Entry{}, fmt.Errorf("apollo: %s: the document is %d characters, over Apollo's item value limit of %d: %w", step, n, MaxValueLength, spec.ErrInvalid)
	}
	entry := configsync.Entry{App: app, Data: append([]byte{}, data...), Version: versionOf(value)}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur, err := s.read(ctx, step)
	if err != nil {
		return configsync.Entry{}, err
	}
	released, exists := cur.released[app]
	if err := checkExpect(expect, released, exists); err != nil {
		return configsync.Entry{}, fmt.Errorf("apollo: %s: %w", step, err)
	}
	if exists && released == value {
		s.log.Debug("put of the released document: nothing to publish", "app", app)
		s.expectVisible(app, entry.Version)
		return entry, nil
	}
	if err := s.checkDrafts(cur, app, expect); err != nil {
		return configsync.Entry{}, fmt.Errorf("apollo: %s: %w", step, err)
	}

	old, hadItem := cur.items[app]
	item := openapi.Item{Key: app, Value: value, Comment: old.Comment}
	if !hadItem {
		item.Comment = "graylane release spec of " + app
	}
	if err := s.api.UpdateItem(ctx, s.ns, item, true); err != nil {
		return configsync.Entry{}, s.apiErr(step, "write the item", err)
	}
	title := releaseTitle(app, data)
	restore := func(ctx context.Context) error {
		if hadItem {
			return s.api.UpdateItem(ctx, s.ns, openapi.Item{Key: app, Value: old.Value, Comment: old.Comment}, true)
		}
		if err := s.api.DeleteItem(ctx, s.ns, app); err != nil && !errors.Is(err, openapi.ErrNotFound) {
			return err
		}
		return nil
	}
	if err := s.publish(ctx, step, app, &value, title, restore); err != nil {
		return configsync.Entry{}, err
	}
	s.expectVisible(app, entry.Version)
	return entry, nil
}

// Delete removes app's item and publishes the namespace (release title
// "graylane: delete <app>"), with the same expect rules, checks and
// restore-on-failure as Put. Deleting a document that is not released is
// not an error.
func (s *Source) Delete(ctx context.Context, app string, expect string) error {
	step := fmt.Sprintf("delete app %q (item %q of namespace %s, app %s, cluster %s, env %s)", app, app, s.cfg.Namespace, s.cfg.AppID, s.cfg.Cluster, s.cfg.Env)
	if s.api == nil {
		return fmt.Errorf("apollo: %s: no portal configured, the source is read-only: %w", step, configsync.ErrUnsupported)
	}
	if !spec.AppPattern.MatchString(app) {
		return nil // no such document can exist
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur, err := s.read(ctx, step)
	if err != nil {
		return err
	}
	released, exists := cur.released[app]
	if !exists {
		return nil
	}
	if err := checkExpect(expect, released, exists); err != nil {
		return fmt.Errorf("apollo: %s: %w", step, err)
	}
	if err := s.checkDrafts(cur, app, expect); err != nil {
		return fmt.Errorf("apollo: %s: %w", step, err)
	}
	old, hadItem := cur.items[app]
	if hadItem {
		if err := s.api.DeleteItem(ctx, s.ns, app); err != nil && !errors.Is(err, openapi.ErrNotFound) {
			return s.apiErr(step, "delete the item", err)
		}
	}
	restore := func(ctx context.Context) error {
		if !hadItem {
			return nil
		}
		return s.api.UpdateItem(ctx, s.ns, openapi.Item{Key: app, Value: old.Value, Comment: old.Comment}, true)
	}
	if err := s.publish(ctx, step, app, nil, "graylane: delete "+app, restore); err != nil {
		return err
	}
	s.expectVisible(app, "")
	return nil
}

// publish releases the namespace after app's item was written (want is the
// value, nil for a delete). When the release fails it checks whether it
// happened anyway (a lost answer) and otherwise restores the item, retrying
// transient failures, so nothing is left half-written.
func (s *Source) publish(ctx context.Context, step, app string, want *string, title string, restore func(context.Context) error) error {
	if s.beforePublish != nil {
		s.beforePublish()
	}
	rel, err := s.api.Publish(ctx, s.ns, openapi.ReleaseRequest{Title: title, Comment: "published by graylane through the Open API"})
	if err == nil {
		s.log.Info("release document published to apollo", "app", app, "releaseId", rel.ID, "title", title, "operator", s.cfg.Operator)
		return nil
	}
	pubErr := s.apiErr(step, "publish the release", err)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*s.cfg.RequestTimeout)
	defer cancel()
	if latest, ok, lerr := s.api.LatestRelease(rctx, s.ns); lerr == nil && ok {
		v, has := latest.Configurations[app]
		if (want != nil && has && v == *want) || (want == nil && !has) {
			s.log.Warn("the release answer was lost but the release happened", "app", app, "releaseId", latest.ID, "err", err)
			return nil
		}
	}
	backoff := 200 * time.Millisecond
	for {
		rerr := restore(rctx)
		if rerr == nil {
			s.log.Warn("release failed; the item was restored", "app", app, "err", err)
			return fmt.Errorf("%w (item %s was restored: nothing changed in apollo)", pubErr, app)
		}
		transient := errors.Is(rerr, openapi.ErrRateLimited) || errors.Is(rerr, openapi.ErrUnavailable) || errors.Is(rerr, openapi.ErrServer)
		if !transient || rctx.Err() != nil {
			s.log.Error("release failed and the item could not be restored", "app", app, "err", err, "restoreErr", rerr)
			return fmt.Errorf("%w; restoring the item also failed (%v): item %s of namespace %s is modified but unreleased, revert it in the portal", pubErr, rerr, app, s.cfg.Namespace)
		}
		select {
		case <-rctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// expectVisible makes Get and List wait (briefly) for this write to come
// back through agollo.
func (s *Source) expectVisible(app, version string) {
	s.mu.Lock()
	s.pending[app] = pendingWrite{version: version, until: time.Now().Add(pendingWindow)}
	s.mu.Unlock()
}

// apiErr names the step and explains the Open API errors an operator can
// fix; unreachable portals and rate limits wrap configsync.ErrUnavailable.
func (s *Source) apiErr(step, what string, err error) error {
	var hint string
	switch {
	case errors.Is(err, openapi.ErrUnauthorized):
		hint = "the Open API token (apollo.token) is missing, unknown or expired"
	case errors.Is(err, openapi.ErrForbidden):
		hint = fmt.Sprintf("the Open API token is not granted modify and release on namespace %s of app %s (env %s): grant it in the portal's Open Platform", s.cfg.Namespace, s.cfg.AppID, s.cfg.Env)
	case errors.Is(err, openapi.ErrNotFound):
		hint = fmt.Sprintf("app %s, cluster %s or namespace %s does not exist in env %s: create it in the portal", s.cfg.AppID, s.cfg.Cluster, s.cfg.Namespace, s.cfg.Env)
	case errors.Is(err, openapi.ErrRateLimited):
		return fmt.Errorf("apollo: %s: %s: the Open API token's rate limit was exceeded, retry later: %w: %w", step, what, err, configsync.ErrUnavailable)
	case errors.Is(err, openapi.ErrUnavailable):
		return fmt.Errorf("apollo: %s: %s: %w: %w", step, what, err, configsync.ErrUnavailable)
	default:
		return fmt.Errorf("apollo: %s: %s: %w", step, what, err)
	}
	return fmt.Errorf("apollo: %s: %s: %s: %w", step, what, hint, err)
}

// releaseTitle is "graylane: <app> <version>", the version read leniently
// (the document need not be valid to be published).
func releaseTitle(app string, data []byte) string {
	title := "graylane: " + app
	var doc struct {
		Version any `json:"version"`
	}
	if yaml.Unmarshal(data, &doc) == nil && doc.Version != nil {
		if v := strings.TrimSpace(fmt.Sprint(doc.Version)); v != "" && !strings.ContainsAny(v, "\n\r") {
			title += " " + v
		}
	}
	if len(title) > maxTitle {
		title = title[:maxTitle]
		for !utf8.ValidString(title) {
			title = title[:len(title)-1]
		}
	}
	return title
}

// javaLen is the length of s in UTF-16 code units, as Apollo counts.
func javaLen(s string) int {
	n := 0
	for _, r := range s {
		if r > 0xFFFF {
			n += 2
		} else {
			n++
		}
	}
	return n
}
