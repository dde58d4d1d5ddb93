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
	var msg int64
	s.read(func(st *state) { res, msg = st.queryConfig(c, cluster, namespace, s.dataCenterOf(r)), st.seqMsg })
	label := ""
	if c.label != nil {
		label = *c.label
	}
	if len(res.releases) == 0 {
		s.observeRead(appID, cluster, namespace, label, ConfigRead{Status: http.StatusNotFound, Message: msg})
		s.writeSendError(w, r, http.StatusNotFound, fmt.Sprintf(
			"Could not load configurations with appId: %s, clusterName: %s, namespace: %s", appID, cluster, namespace))
		return
	}
	if res.releaseKey == clientKey {
		s.observeRead(appID, cluster, namespace, label, ConfigRead{Status: http.StatusNotModified, Message: msg})
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.observeRead(appID, cluster, namespace, label, ConfigRead{Status: http.StatusOK, Message: msg})
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
