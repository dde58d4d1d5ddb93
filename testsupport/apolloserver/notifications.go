// Config service long polls: /notifications/v2 (NotificationControllerV2),
// the watchers a release message wakes, and WaitingPolls for tests.

package apolloserver

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type wakeMsg struct {
	content string
	id      int64
}

type watcher struct {
	ch chan wakeMsg
	// held is set once the poll found nothing newer and waits; woken once
	// a release message reached it (both under watchMu).
	held, woken bool
}

func (s *Server) register(w *watcher, keys []string) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for _, k := range keys {
		lk := strings.ToLower(k)
		set := s.watchers[lk]
		if set == nil {
			set = map[*watcher]struct{}{}
			s.watchers[lk] = set
		}
		set[w] = struct{}{}
	}
}

func (s *Server) unregister(w *watcher, keys []string) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for _, k := range keys {
		lk := strings.ToLower(k)
		if set := s.watchers[lk]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(s.watchers, lk)
			}
		}
	}
}

// wake is NotificationControllerV2.handleMessage: every poll watching the
// key (case-insensitively) is answered with that one namespace.
func (s *Server) wake(content string, id int64) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for w := range s.watchers[strings.ToLower(content)] {
		w.woken = true
		select {
		case w.ch <- wakeMsg{content, id}:
		default: // already answered (DeferredResult.setResult keeps the first)
		}
	}
}

// watchKeys is WatchKeysUtil.assembleAllWatchKeys.
func (st *state) watchKeys(appID, cluster string, namespaces []string, dc string) map[string][]string {
	own := func(app, ns string) []string {
		if strings.EqualFold(app, noAppIDPlaceholder) {
			return nil
		}
		var keys []string
		if cluster != clusterDefault {
			keys = append(keys, messageKey(app, cluster, ns))
		}
		if dc != "" && dc != cluster {
			keys = append(keys, messageKey(app, dc, ns))
		}
		return append(keys, messageKey(app, clusterDefault, ns))
	}
	out := map[string][]string{}
	for _, ns := range namespaces {
		out[ns] = own(appID, ns)
	}
	if len(namespaces) == 1 && namespaces[0] == namespaceApplication {
		return out
	}
	for _, ns := range namespaces {
		if !strings.EqualFold(appID, noAppIDPlaceholder) && st.appNamespaceOf(appID, ns) != nil {
			continue
		}
		if an := st.publicAppNamespace(ns); an != nil && an.appID != appID {
			out[an.name] = append(out[an.name], own(an.appID, an.name)...)
		}
	}
	return out
}

func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, p := range []string{"appId", "cluster", "notifications"} {
		if _, ok := q[p]; !ok {
			s.writeAPIError(w, missingParam(p))
			return
		}
	}
	appID, cluster, raw := q.Get("appId"), q.Get("cluster"), q.Get("notifications")
	dc := s.dataCenterOf(r)

	var parsed []clientNotification
	if err := json.Unmarshal([]byte(raw), &parsed); err != nil || len(parsed) == 0 {
		s.writeAPIError(w, badRequest("invalid notifications format:%s", raw))
		return
	}

	type entry struct {
		name string // as sent, minus a .properties suffix
		id   int64
	}
	filtered := map[string]entry{}
	var order []string
	var watched map[string][]string
	s.read(func(st *state) {
		for _, n := range parsed {
			if n.NamespaceName == nil || *n.NamespaceName == "" {
				continue
			}
			id := parseNotificationID(n.NotificationID)
			orig := filterNamespaceName(*n.NamespaceName)
			norm := st.normalizeNamespace(appID, orig)
			if prev, ok := filtered[norm]; ok && prev.id < id {
				continue
			}
			if _, ok := filtered[norm]; !ok {
				order = append(order, norm)
			}
			filtered[norm] = entry{orig, id}
		}
		if len(filtered) > 0 {
			watched = st.watchKeys(appID, cluster, order, dc)
		}
	})
	if len(filtered) == 0 {
		s.writeAPIError(w, badRequest("invalid notifications format:%s", raw))
		return
	}
	rename := map[string]string{}
	for norm, e := range filtered {
		if e.name != norm {
			rename[norm] = e.name
		}
	}
	var allKeys []string
	seen := map[string]bool{}
	for _, ns := range order {
		for _, k := range watched[ns] {
			if !seen[k] {
				seen[k] = true
				allKeys = append(allKeys, k)
			}
		}
	}

	wt := &watcher{ch: make(chan wakeMsg, 1)}
	s.register(wt, allKeys)
	defer s.unregister(wt, allKeys)

	var fresh []notificationDTO
	s.read(func(st *state) {
		for _, ns := range order {
			latest := int64(-1)
			details := map[string]int64{}
			for _, k := range watched[ns] {
				if id, ok := st.msgLatest[k]; ok {
					details[k] = id
					if id > latest {
						latest = id
					}
				}
			}
			if latest > filtered[ns].id {
				fresh = append(fresh, notificationDTO{NamespaceName: ns, NotificationID: latest, Messages: &notificationMsg{details}})
			}
		}
	})
	if len(fresh) > 0 {
		for i := range fresh {
			if o, ok := rename[fresh[i].NamespaceName]; ok {
				fresh[i].NamespaceName = o
			}
		}
		writeJSON(w, http.StatusOK, fresh)
		return
	}

	s.watchMu.Lock()
	wt.held = true
	s.watchMu.Unlock()
	timer := time.NewTimer(s.opts.LongPollTimeout)
	defer timer.Stop()
	select {
	case m := <-wt.ch:
		parts := strings.Split(m.content, "+")
		ns := parts[len(parts)-1]
		if len(parts) >= 3 {
			ns = parts[2]
		}
		if o, ok := rename[ns]; ok {
			ns = o
		}
		writeJSON(w, http.StatusOK, []notificationDTO{{
			NamespaceName: ns, NotificationID: m.id,
			Messages: &notificationMsg{map[string]int64{m.content: m.id}},
		}})
	case <-timer.C:
		w.WriteHeader(http.StatusNotModified)
	case <-r.Context().Done():
		// Server stopping (or client gone): cut the connection without an
		// answer, as a dying Apollo would; net/http would otherwise send an
		// empty 200.
		panic(http.ErrAbortHandler)
	}
}

// parseNotificationID reads a long the way Gson does (number or numeric
// string; absent means the primitive default 0).
func parseNotificationID(raw json.RawMessage) int64 {
	if len(raw) == 0 || string(raw) == "null" {
		return 0
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if v, err := n.Int64(); err == nil {
			return v
		}
		if f, err := n.Float64(); err == nil {
			return int64(f)
		}
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		if v, err := strconv.ParseInt(str, 10, 64); err == nil {
			return v
		}
	}
	return 0
}

// WaitingPolls counts the long polls (/notifications/v2) the config
// service holds right now because nothing newer exists for them, and that
// no release has woken yet. Each is a client that has read every release
// it watches and waits for the next one: agollo sends its next long poll
// only after it has fetched the configs the previous one announced and
// handed them to its listeners. So a test that must show that nothing
// more arrives waits until each of its clients has a waiting poll (and its
// consumer has processed what it got), then asserts — instead of sleeping.
// It only observes: what clients see does not change.
func (s *Server) WaitingPolls() int {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	seen := map[*watcher]bool{}
	for _, set := range s.watchers {
		for w := range set {
			if w.held && !w.woken {
				seen[w] = true
			}
		}
	}
	return len(seen)
}
