package apolloserver

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This file is the config service: ConfigController, ConfigFileController,
// NotificationControllerV2, the meta server's ServiceController and the
// access-key ClientAuthenticationFilter.

func (s *Server) serveConfigService(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.HasPrefix(path, "/configs/") || strings.HasPrefix(path, "/configfiles/") ||
		path == "/notifications/v2" || strings.HasPrefix(path, "/notifications/v2/") {
		if !s.clientAuthenticated(w, r) {
			return
		}
	}
	segs := splitPath(r)
	switch {
	case len(segs) == 4 && segs[0] == "configs":
		if !allowGET(s, w, r) {
			return
		}
		s.handleConfigs(w, r, segs[1], segs[2], segs[3])
	case len(segs) == 4 && segs[0] == "configfiles":
		if !allowGET(s, w, r) {
			return
		}
		s.handleConfigFile(w, r, "properties", segs[1], segs[2], segs[3])
	case len(segs) == 5 && segs[0] == "configfiles" && (segs[1] == "json" || segs[1] == "raw"):
		if !allowGET(s, w, r) {
			return
		}
		s.handleConfigFile(w, r, segs[1], segs[2], segs[3], segs[4])
	case len(segs) == 2 && segs[0] == "notifications" && segs[1] == "v2":
		if !allowGET(s, w, r) {
			return
		}
		s.handleNotifications(w, r)
	case len(segs) == 2 && segs[0] == "services" && (segs[1] == "config" || segs[1] == "admin"):
		if !allowGET(s, w, r) {
			return
		}
		s.handleServices(w, segs[1])
	default:
		s.writeSendError(w, r, http.StatusNotFound, "")
	}
}

// splitPath splits the escaped path into decoded segments (Spring decodes
// path variables).
func splitPath(r *http.Request) []string {
	raw := strings.Trim(r.URL.EscapedPath(), "/")
	if raw == "" {
		return nil
	}
	parts := strings.Split(raw, "/")
	for i, p := range parts {
		if d, err := url.PathUnescape(p); err == nil {
			parts[i] = d
		}
	}
	return parts
}

func allowGET(s *Server, w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	s.writeAPIError(w, &apiError{status: 400, exception: exMethod, message: fmt.Sprintf("Request method '%s' not supported", r.Method)})
	return false
}

// ---- access key (ClientAuthenticationFilter + AccessKeyUtil) ----

func (s *Server) clientAuthenticated(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	var appID string
	switch {
	case strings.HasPrefix(path, "/configs/"):
		appID = substringBetween(path, "/configs/", "/")
	case strings.HasPrefix(path, "/configfiles/json/"):
		appID = substringBetween(path, "/configfiles/json/", "/")
	case strings.HasPrefix(path, "/configfiles/"):
		appID = substringBetween(path, "/configfiles/", "/")
	case strings.HasPrefix(path, "/notifications/v2"):
		appID = r.URL.Query().Get("appId")
	}
	if strings.TrimSpace(appID) == "" {
		s.writeSendError(w, r, http.StatusBadRequest, "InvalidAppId")
		return false
	}
	var secrets []string
	s.read(func(st *state) {
		if a := st.apps[appID]; a != nil {
			secrets = append(secrets, a.secrets...)
		}
	})
	if len(secrets) == 0 {
		return true
	}
	var reqMillis int64
	if v, err := strconv.ParseInt(r.Header.Get("Timestamp"), 10, 64); err == nil {
		reqMillis = v
	}
	diff := s.now().UnixMilli() - reqMillis
	if diff < 0 {
		diff = -diff
	}
	if diff >= s.opts.AccessKeyTimeTolerance.Milliseconds() {
		s.writeSendError(w, r, http.StatusUnauthorized, "RequestTimeTooSkewed")
		return false
	}
	var signature string
	if parts := strings.Split(r.Header.Get("Authorization"), ":"); len(parts) > 1 {
		signature = parts[1]
	}
	uri, query, _ := strings.Cut(r.RequestURI, "?")
	if strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://") {
		if u, err := url.Parse(r.RequestURI); err == nil {
			uri, query = u.EscapedPath(), u.RawQuery
		}
	}
	pathWithQuery := uri
	if query != "" {
		pathWithQuery += "?" + query
	}
	for _, secret := range secrets {
		if signature != "" && hmac.Equal([]byte(signature), []byte(Signature(r.Header.Get("Timestamp"), pathWithQuery, secret))) {
			return true
		}
	}
	s.writeSendError(w, r, http.StatusUnauthorized, "Unauthorized")
	return false
}

// Signature computes Apollo's access-key signature:
// base64(HMAC-SHA1(secret, timestamp + "\n" + pathWithQuery)). Clients send
// "Authorization: Apollo <appId>:<signature>" and "Timestamp: <timestamp>".
func Signature(timestamp, pathWithQuery, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(timestamp + "\n" + pathWithQuery))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func substringBetween(s, open, close string) string {
	i := strings.Index(s, open)
	if i < 0 {
		return ""
	}
	rest := s[i+len(open):]
	j := strings.Index(rest, close)
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// ---- config query (ConfigController.queryConfig + AbstractConfigService) ----

func clientIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		for _, p := range strings.Split(xff, ",") {
			if p = strings.TrimSpace(p); p != "" {
				return p
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) clientOf(r *http.Request, appID string) client {
	q := r.URL.Query()
	c := client{appID: appID, ip: q.Get("ip")}
	if c.ip == "" {
		c.ip = clientIP(r)
	}
	if v, ok := q["label"]; ok {
		l := v[0]
		c.label = &l
	}
	return c
}

func (s *Server) dataCenterOf(r *http.Request) string {
	if dc := r.URL.Query().Get("dataCenter"); dc != "" {
		return dc
	}
	return s.opts.DataCenter
}

// filterNamespaceName strips a ".properties" suffix (NamespaceUtil).
func filterNamespaceName(ns string) string {
	if strings.HasSuffix(strings.ToLower(ns), ".properties") {
		return ns[:strings.LastIndex(ns, ".")]
	}
	return ns
}

// normalizeNamespace fixes the case of a namespace name (NamespaceUtil).
func (st *state) normalizeNamespace(appID, ns string) string {
	if an := st.appNamespaceOf(appID, ns); an != nil {
		return an.name
	}
	if an := st.publicAppNamespace(ns); an != nil {
		return an.name
	}
	return ns
}

func (st *state) namespaceBelongsToApp(appID, ns string) bool {
	if ns == namespaceApplication {
		return true
	}
	if strings.EqualFold(appID, noAppIDPlaceholder) {
		return false
	}
	return st.appNamespaceOf(appID, ns) != nil
}

func (st *state) findRelease(c client, configAppID, cluster, ns string) *releaseRec {
	if id, ok := st.grayReleaseID(c, configAppID, cluster, ns); ok {
		if r := st.activeReleaseByID(id); r != nil {
			return r
		}
	}
	return st.latestActiveRelease(configAppID, cluster, ns)
}

func (st *state) loadConfig(c client, configAppID, cluster, ns, dc string) *releaseRec {
	if cluster != clusterDefault {
		if r := st.findRelease(c, configAppID, cluster, ns); r != nil {
			return r
		}
	}
	if dc != "" && dc != cluster {
		if r := st.findRelease(c, configAppID, dc, ns); r != nil {
			return r
		}
	}
	return st.findRelease(c, configAppID, clusterDefault, ns)
}

type configResult struct {
	releases      []*releaseRec
	clusterLoaded string
	releaseKey    string
	configs       orderedMap
}

func (st *state) queryConfig(c client, cluster, namespace, dc string) configResult {
	appID := c.appID
	ns := st.normalizeNamespace(appID, filterNamespaceName(namespace))
	res := configResult{clusterLoaded: cluster}
	if !strings.EqualFold(appID, noAppIDPlaceholder) {
		if r := st.loadConfig(c, appID, cluster, ns, dc); r != nil {
			res.releases = append(res.releases, r)
			res.clusterLoaded = r.cluster
		}
	}
	if !st.namespaceBelongsToApp(appID, ns) {
		if an := st.publicAppNamespace(ns); an != nil && an.appID != appID {
			if r := st.loadConfig(c, an.appID, cluster, ns, dc); r != nil {
				res.releases = append(res.releases, r)
			}
		}
	}
	keys := make([]string, len(res.releases))
	for i, r := range res.releases {
		keys[i] = r.releaseKey
	}
	res.releaseKey = strings.Join(keys, "+")
	for i := len(res.releases) - 1; i >= 0; i-- {
		res.configs = merge(res.configs, res.releases[i].configs)
	}
	return res
}

type apolloConfigDTO struct {
	AppID          string     `json:"appId"`
	Cluster        string     `json:"cluster"`
	NamespaceName  string     `json:"namespaceName"`
	Configurations orderedMap `json:"configurations"`
	ReleaseKey     string     `json:"releaseKey"`
}

func (s *Server) handleConfigs(w http.ResponseWriter, r *http.Request, appID, cluster, namespace string) {
	c := s.clientOf(r, appID)
	clientKey := r.URL.Query().Get("releaseKey")
	if clientKey == "" {
		if _, ok := r.URL.Query()["releaseKey"]; !ok {
			clientKey = "-1"
		}
	}
	var res configResult
	s.read(func(st *state) { res = st.queryConfig(c, cluster, namespace, s.dataCenterOf(r)) })
	if len(res.releases) == 0 {
		s.writeSendError(w, r, http.StatusNotFound, fmt.Sprintf(
			"Could not load configurations with appId: %s, clusterName: %s, namespace: %s", appID, cluster, namespace))
		return
	}
	if res.releaseKey == clientKey {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, http.StatusOK, apolloConfigDTO{
		AppID: appID, Cluster: res.clusterLoaded, NamespaceName: namespace,
		Configurations: res.configs, ReleaseKey: res.releaseKey,
	})
}

func (s *Server) handleConfigFile(w http.ResponseWriter, r *http.Request, format, appID, cluster, namespace string) {
	c := s.clientOf(r, appID)
	var res configResult
	s.read(func(st *state) { res = st.queryConfig(c, cluster, namespace, s.dataCenterOf(r)) })
	if len(res.releases) == 0 {
		s.writeSendError(w, r, http.StatusNotFound, fmt.Sprintf(
			"Could not load configurations with appId: %s, clusterName: %s, namespace: %s", appID, cluster, namespace))
		return
	}
	ctype := "text/plain;charset=UTF-8"
	var body string
	switch format {
	case "json":
		b, _ := json.Marshal(res.configs)
		body, ctype = string(b), "application/json;charset=UTF-8"
	case "raw":
		nsFormat := namespaceFormat(namespace)
		if nsFormat == FormatProperties {
			body = javaProperties(res.configs)
			break
		}
		content, ok := res.configs.get("content")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		body = content
		switch nsFormat {
		case FormatJSON:
			ctype = "application/json;charset=UTF-8"
		case FormatYML, FormatYAML:
			ctype = "application/yaml;charset=UTF-8"
		case FormatXML:
			ctype = "application/xml;charset=UTF-8"
		}
	default:
		body = javaProperties(res.configs)
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(body))
}

// namespaceFormat is ConfigFileController.determineNamespaceFormat.
func namespaceFormat(ns string) string {
	lower := strings.ToLower(ns)
	for _, f := range supportedFormats {
		if strings.HasSuffix(lower, "."+f) {
			return f
		}
	}
	return FormatProperties
}

// javaProperties renders configurations as java.util.Properties.store does
// (Apollo strips the leading date comment).
func javaProperties(m orderedMap) string {
	var b strings.Builder
	for _, k := range m.keys {
		b.WriteString(propertiesEscape(k, true))
		b.WriteByte('=')
		b.WriteString(propertiesEscape(m.m[k], false))
		b.WriteByte('\n')
	}
	return b.String()
}

func propertiesEscape(s string, escapeSpace bool) string {
	var b strings.Builder
	for i, u := range utf16Units(s) {
		switch {
		case u > 61 && u < 127:
			if u == '\\' {
				b.WriteString(`\\`)
			} else {
				b.WriteByte(byte(u))
			}
		case u == ' ':
			if i == 0 || escapeSpace {
				b.WriteString(`\ `)
			} else {
				b.WriteByte(' ')
			}
		case u == '\t':
			b.WriteString(`\t`)
		case u == '\n':
			b.WriteString(`\n`)
		case u == '\r':
			b.WriteString(`\r`)
		case u == '\f':
			b.WriteString(`\f`)
		case u == '=' || u == ':' || u == '#' || u == '!':
			b.WriteByte('\\')
			b.WriteByte(byte(u))
		case u < 0x20 || u > 0x7e:
			fmt.Fprintf(&b, `\u%04X`, u)
		default:
			b.WriteByte(byte(u))
		}
	}
	return b.String()
}

// ---- meta server ----

type serviceDTO struct {
	AppName     string `json:"appName"`
	InstanceID  string `json:"instanceId"`
	HomepageURL string `json:"homepageUrl"`
}

func (s *Server) handleServices(w http.ResponseWriter, which string) {
	if which == "admin" {
		writeJSON(w, http.StatusOK, []serviceDTO{})
		return
	}
	s.addrMu.Lock()
	addr := s.cfgAddr
	s.addrMu.Unlock()
	host, port, _ := net.SplitHostPort(addr)
	writeJSON(w, http.StatusOK, []serviceDTO{{
		AppName:     "APOLLO-CONFIGSERVICE",
		InstanceID:  host + ":apollo-configservice:" + port,
		HomepageURL: "http://" + addr + "/",
	}})
}

// ---- long polling (NotificationControllerV2) ----

type notificationDTO struct {
	NamespaceName  string           `json:"namespaceName"`
	NotificationID int64            `json:"notificationId"`
	Messages       *notificationMsg `json:"messages,omitempty"`
}

type notificationMsg struct {
	Details map[string]int64 `json:"details"`
}

type clientNotification struct {
	NamespaceName  *string         `json:"namespaceName"`
	NotificationID json.RawMessage `json:"notificationId"`
}

type wakeMsg struct {
	content string
	id      int64
}

type watcher struct {
	ch chan wakeMsg
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
		select {
		case w.ch <- wakeMsg{content, id}:
		default: // already answered (DeferredResult.setResult keeps the first)
		}
	}
}

func missingParam(name string) *apiError {
	return internal(exMissingParam, fmt.Sprintf("Required request parameter '%s' for method parameter type String is not present", name))
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

// heldPolls counts the long polls currently registered (tests use it to know
// a poll is being held before they trigger a change).
func (s *Server) heldPolls() int {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	seen := map[*watcher]bool{}
	for _, set := range s.watchers {
		for w := range set {
			seen[w] = true
		}
	}
	return len(seen)
}
