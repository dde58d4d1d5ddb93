package apolloserver

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// This file is the Portal Open API (/openapi/v1): ConsumerAuthenticationFilter,
// ConsumerPermissionValidator and the openapi v1 controllers, delegating the
// writes to the admin-service port in adminsvc.go.

var knownEnvs = []string{"LOCAL", "DEV", "FWS", "FAT", "UAT", "LPT", "PRO", "TOOLS", "UNKNOWN"}

type portalReq struct {
	s        *Server
	w        http.ResponseWriter
	r        *http.Request
	consumer *consumer
}

func (s *Server) servePortal(w http.ResponseWriter, r *http.Request) {
	segs := splitPath(r)
	if len(segs) < 2 || segs[0] != "openapi" {
		s.writeSendError(w, r, http.StatusNotFound, "")
		return
	}
	// ConsumerAuthenticationFilter: token, then rate limit.
	token := r.Header.Get("Authorization")
	var c *consumer
	s.read(func(st *state) {
		if t := st.tokens[token]; t != nil && (t.expires.IsZero() || t.expires.After(st.now())) {
			c = &consumer{id: t.id, token: t.token, rateLimit: t.rateLimit, apps: map[string]bool{}, nss: map[string]bool{}}
			for k, v := range t.apps {
				c.apps[k] = v
			}
			for k, v := range t.nss {
				c.nss[k] = v
			}
		}
	})
	if c == nil {
		s.writeSendError(w, r, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if c.rateLimit > 0 && !s.allow(token, c.rateLimit) {
		s.writeSendError(w, r, http.StatusTooManyRequests, "Too Many Requests, the flow is limited")
		return
	}
	if segs[1] != "v1" {
		s.writeSendError(w, r, http.StatusNotFound, "")
		return
	}
	p := &portalReq{s: s, w: w, r: r, consumer: c}
	p.route(segs[2:])
}

// ---- routing ----

type route struct {
	method string
	h      func()
}

func (p *portalReq) dispatch(routes ...route) {
	for _, rt := range routes {
		if rt.method == p.r.Method {
			rt.h()
			return
		}
	}
	p.fail(&apiError{status: 400, exception: exMethod, message: fmt.Sprintf("Request method '%s' not supported", p.r.Method)})
}

func (p *portalReq) route(segs []string) {
	n := len(segs)
	switch {
	case n == 1 && segs[0] == "apps":
		p.dispatch(route{"GET", p.listApps})
		return
	case n == 3 && segs[0] == "apps" && segs[2] == "envclusters":
		p.dispatch(route{"GET", func() { p.envClusters(segs[1]) }})
		return
	case n == 4 && segs[0] == "envs" && segs[2] == "releases":
		p.dispatch(route{"GET", func() { p.getRelease(segs[1], segs[3]) }})
		return
	case n == 5 && segs[0] == "envs" && segs[2] == "releases" && segs[4] == "rollback":
		p.dispatch(route{"PUT", func() { p.rollback(segs[1], segs[3]) }})
		return
	}
	if n < 6 || segs[0] != "envs" || segs[2] != "apps" || segs[4] != "clusters" {
		p.s.writeSendError(p.w, p.r, http.StatusNotFound, "")
		return
	}
	env, appID, cluster := segs[1], segs[3], segs[5]
	if n == 6 {
		p.dispatch(route{"GET", func() { p.getCluster(env, appID, cluster) }})
		return
	}
	if segs[6] != "namespaces" {
		p.s.writeSendError(p.w, p.r, http.StatusNotFound, "")
		return
	}
	if n == 7 {
		p.dispatch(route{"GET", func() { p.listNamespaces(env, appID, cluster) }})
		return
	}
	ns := segs[7]
	rest := segs[8:]
	switch {
	case len(rest) == 0:
		p.dispatch(route{"GET", func() { p.getNamespace(env, appID, cluster, ns) }})
	case len(rest) == 1 && rest[0] == "items":
		p.dispatch(route{"GET", func() { p.listItems(env, appID, cluster, ns) }},
			route{"POST", func() { p.createItem(env, appID, cluster, ns) }})
	case len(rest) == 2 && (rest[0] == "items" || rest[0] == "encodeItems"):
		key := rest[1]
		if rest[0] == "encodeItems" {
			b, err := base64.URLEncoding.DecodeString(key)
			if err != nil {
				if b, err = base64.RawURLEncoding.DecodeString(key); err != nil {
					p.fail(internal(exIllegalArgument, "Illegal base64 character"))
					return
				}
			}
			key = string(b)
		}
		p.dispatch(route{"GET", func() { p.getItem(env, appID, cluster, ns, key) }},
			route{"PUT", func() { p.updateItem(env, appID, cluster, ns, key) }},
			route{"DELETE", func() { p.deleteItem(env, appID, cluster, ns, key) }})
	case len(rest) == 1 && rest[0] == "releases":
		p.dispatch(route{"POST", func() { p.createRelease(env, appID, cluster, ns, cluster, false) }})
	case len(rest) == 2 && rest[0] == "releases" && rest[1] == "latest":
		p.dispatch(route{"GET", func() { p.latestRelease(env, appID, cluster, ns) }})
	case len(rest) == 2 && rest[0] == "releases" && rest[1] == "active":
		p.dispatch(route{"GET", func() { p.activeReleases(env, appID, cluster, ns) }})
	case len(rest) == 1 && rest[0] == "branches":
		p.dispatch(route{"GET", func() { p.getBranch(env, appID, cluster, ns) }},
			route{"POST", func() { p.createBranch(env, appID, cluster, ns) }})
	case len(rest) == 2 && rest[0] == "branches":
		p.dispatch(route{"DELETE", func() { p.deleteBranch(env, appID, cluster, ns, rest[1]) }})
	case len(rest) == 3 && rest[0] == "branches" && rest[2] == "rules":
		p.dispatch(route{"GET", func() { p.getRules(env, appID, cluster, ns, rest[1]) }},
			route{"PUT", func() { p.putRules(env, appID, cluster, ns, rest[1]) }})
	case len(rest) == 3 && rest[0] == "branches" && rest[2] == "releases":
		p.dispatch(route{"POST", func() { p.createRelease(env, appID, cluster, ns, rest[1], true) }})
	case len(rest) == 3 && rest[0] == "branches" && rest[2] == "gray-del-releases":
		p.dispatch(route{"POST", func() { p.grayDelRelease(env, appID, cluster, ns, rest[1]) }})
	case len(rest) == 3 && rest[0] == "branches" && rest[2] == "merge":
		p.dispatch(route{"POST", func() { p.merge(env, appID, cluster, ns, rest[1]) }})
	default:
		p.s.writeSendError(p.w, p.r, http.StatusNotFound, "")
	}
}

// ---- helpers ----

func (p *portalReq) fail(e *apiError) { p.s.writeAPIError(p.w, e) }

func (p *portalReq) ok(v any) { writeJSON(p.w, http.StatusOK, v) }

// envErr is portal Env.valueOf: unknown names are an IllegalArgumentException
// (500); a known Apollo env the portal is not configured for has no admin
// service (500 too).
func (p *portalReq) envErr(env string) *apiError {
	up := strings.ToUpper(strings.TrimSpace(env))
	for _, e := range p.s.opts.Envs {
		if strings.ToUpper(e) == up {
			return nil
		}
	}
	if contains(knownEnvs, up) {
		return &apiError{status: 500, exception: "com.ctrip.framework.apollo.common.exception.ServiceException",
			message: "No available admin server. Maybe because of meta server down or all admin server down. Meta server address: " + up}
	}
	return internal(exIllegalArgument, up+" not exist")
}

func (p *portalReq) param(name string) (string, bool) {
	v, ok := p.r.URL.Query()[name]
	if !ok {
		return "", false
	}
	return v[0], true
}

func (p *portalReq) requiredParam(name string) (string, bool) {
	v, ok := p.param(name)
	if !ok {
		p.fail(missingParam(name))
	}
	return v, ok
}

func (p *portalReq) boolParam(name string, def bool) (bool, bool) {
	v, ok := p.param(name)
	if !ok {
		return def, true
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "on", "yes", "1":
		return true, true
	case "false", "off", "no", "0", "":
		return false, true
	}
	p.fail(internal(exTypeMismatch, fmt.Sprintf("Failed to convert value of type 'java.lang.String' to required type 'boolean'; nested exception is java.lang.IllegalArgumentException: Invalid boolean value [%s]", v)))
	return false, false
}

func (p *portalReq) intParam(name string, def int) (int, bool) {
	v, ok := p.param(name)
	if !ok {
		return def, true
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		p.fail(internal(exTypeMismatch, fmt.Sprintf("Failed to convert value of type 'java.lang.String' to required type 'int'; nested exception is java.lang.NumberFormatException: For input string: \"%s\"", v)))
		return 0, false
	}
	return n, true
}

// body is Spring's @RequestBody with the Gson converter.
func (p *portalReq) body(v any) bool {
	raw, _ := io.ReadAll(io.LimitReader(p.r.Body, 8<<20))
	ct := p.r.Header.Get("Content-Type")
	if ct == "" && len(raw) == 0 {
		p.fail(internal(exNotReadable, "Required request body is missing"))
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" {
		ct, mt = "application/octet-stream", "application/octet-stream"
	}
	if err != nil && ct != "application/octet-stream" || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		p.fail(&apiError{status: 400, exception: exMediaType, message: fmt.Sprintf("Content type '%s' not supported", ct)})
		return false
	}
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "" || trimmed == "null" {
		p.fail(internal(exNotReadable, "Required request body is missing"))
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		p.fail(internal(exNotReadable, "JSON parse error: "+err.Error()))
		return false
	}
	return true
}

func (c *consumer) canCreateNamespace(appID string) bool { return c.apps[appID] }

// canModify / canRelease are ConsumerPermissionValidator: an app grant, or a
// namespace grant for all envs or for this env (compared as written in the path).
func (c *consumer) canModify(appID, ns, env string) bool {
	return c.apps[appID] || c.nss[appID+"+"+ns] || c.nss[appID+"+"+ns+"+"+env]
}

func (c *consumer) canRelease(appID, ns, env string) bool { return c.canModify(appID, ns, env) }

var accessDenied = forbidden("Access is denied")

func (p *portalReq) userExists(name string) bool {
	var ok bool
	p.s.read(func(st *state) { ok = st.users[name] })
	return ok
}

// write runs an admin-service operation and wakes long polls afterwards.
func (p *portalReq) write(f func(st *state) *apiError) *apiError {
	var out *apiError
	p.s.mutate(func(st *state) error {
		out = f(st)
		return nil
	})
	return out
}
