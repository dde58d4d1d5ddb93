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
	"time"
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

// ---- DTOs ----

type baseDTO struct {
	DataChangeCreatedBy        string `json:"dataChangeCreatedBy,omitempty"`
	DataChangeLastModifiedBy   string `json:"dataChangeLastModifiedBy,omitempty"`
	DataChangeCreatedTime      string `json:"dataChangeCreatedTime,omitempty"`
	DataChangeLastModifiedTime string `json:"dataChangeLastModifiedTime,omitempty"`
}

func base(createdBy, modifiedBy string, created, modified time.Time) baseDTO {
	b := baseDTO{DataChangeCreatedBy: createdBy, DataChangeLastModifiedBy: modifiedBy}
	if !created.IsZero() {
		b.DataChangeCreatedTime = gsonDate(created)
	}
	if !modified.IsZero() {
		b.DataChangeLastModifiedTime = gsonDate(modified)
	}
	return b
}

type openItemDTO struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Type    int    `json:"type"`
	Comment string `json:"comment,omitempty"`
	baseDTO
}

func itemDTO(it *itemRec) openItemDTO {
	return openItemDTO{Key: it.key, Value: it.value, Type: it.typ, Comment: it.comment,
		baseDTO: base(it.createdBy, it.modifiedBy, it.created, it.modified)}
}

type openReleaseDTO struct {
	ID             int64      `json:"id"`
	AppID          string     `json:"appId"`
	ClusterName    string     `json:"clusterName"`
	NamespaceName  string     `json:"namespaceName"`
	Name           string     `json:"name"`
	Configurations orderedMap `json:"configurations"`
	Comment        string     `json:"comment,omitempty"`
	baseDTO
}

func releaseDTO(r *releaseRec) openReleaseDTO {
	return openReleaseDTO{ID: r.id, AppID: r.appID, ClusterName: r.cluster, NamespaceName: r.ns, Name: r.name,
		Configurations: r.configs.clone(), Comment: r.comment,
		baseDTO: base(r.createdBy, r.modifiedBy, r.created, r.modified)}
}

type openNamespaceDTO struct {
	AppID         string        `json:"appId"`
	ClusterName   string        `json:"clusterName"`
	NamespaceName string        `json:"namespaceName"`
	Comment       string        `json:"comment,omitempty"`
	Format        string        `json:"format,omitempty"`
	IsPublic      bool          `json:"isPublic"`
	Items         []openItemDTO `json:"items,omitempty"`
	baseDTO
}

// namespaceBO is NamespaceService.transformNamespace2BO as the Open API shows
// it: the items, then released keys that were deleted since (key + old value).
func (st *state) namespaceBO(n *nsRec) openNamespaceDTO {
	dto := openNamespaceDTO{AppID: n.appID, ClusterName: n.cluster, NamespaceName: n.name,
		Format: FormatProperties, IsPublic: true, Items: []openItemDTO{},
		baseDTO: base(n.createdBy, n.createdBy, n.created, n.created)}
	if an := st.appNamespaceFor(n.appID, n.name); an != nil {
		dto.Format, dto.IsPublic, dto.Comment = an.format, an.public, an.comment
	}
	keys := map[string]bool{}
	for _, it := range n.items {
		keys[it.key] = true
		dto.Items = append(dto.Items, itemDTO(it))
	}
	if r := st.latestActiveRelease(n.appID, n.cluster, n.name); r != nil {
		for _, k := range r.configs.keys {
			if !keys[k] {
				dto.Items = append(dto.Items, openItemDTO{Key: k, Value: r.configs.m[k]})
			}
		}
	}
	return dto
}

type openGrayRuleDTO struct {
	AppID         string         `json:"appId"`
	ClusterName   string         `json:"clusterName"`
	NamespaceName string         `json:"namespaceName"`
	BranchName    string         `json:"branchName"`
	RuleItems     []GrayRuleItem `json:"ruleItems"`
}

type releaseInput struct {
	ReleaseTitle       *string  `json:"releaseTitle"`
	ReleaseComment     *string  `json:"releaseComment"`
	ReleasedBy         *string  `json:"releasedBy"`
	IsEmergencyPublish bool     `json:"isEmergencyPublish"`
	GrayDelKeys        []string `json:"grayDelKeys"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (in *releaseInput) check(p *portalReq) bool {
	if str(in.ReleasedBy) == "" || str(in.ReleaseTitle) == "" {
		p.fail(badRequest("Params(releaseTitle and releasedBy) can not be empty"))
		return false
	}
	return true
}

// ---- apps, clusters, namespaces ----

func (p *portalReq) listApps() {
	type openAppDTO struct {
		Name      string `json:"name"`
		AppID     string `json:"appId"`
		OwnerName string `json:"ownerName"`
		baseDTO
	}
	out := []openAppDTO{}
	var ids []string
	if v, ok := p.param("appIds"); ok && v != "" {
		ids = strings.Split(v, ",")
	}
	p.s.read(func(st *state) {
		for _, id := range st.appOrder {
			if ids != nil && !contains(ids, id) {
				continue
			}
			a := st.apps[id]
			out = append(out, openAppDTO{Name: a.name, AppID: a.id, OwnerName: defaultUser,
				baseDTO: base(defaultUser, defaultUser, a.created, a.created)})
		}
	})
	p.ok(out)
}

func (p *portalReq) envClusters(appID string) {
	type envCluster struct {
		Env      string   `json:"env"`
		Clusters []string `json:"clusters"`
	}
	var out []envCluster
	p.s.read(func(st *state) {
		for _, env := range p.s.opts.Envs {
			ec := envCluster{Env: strings.ToUpper(env), Clusters: []string{}}
			if a := st.apps[appID]; a != nil {
				for _, c := range a.clusters {
					if c.parent == "" {
						ec.Clusters = append(ec.Clusters, c.name)
					}
				}
			}
			out = append(out, ec)
		}
	})
	p.ok(out)
}

func (p *portalReq) getCluster(env, appID, cluster string) {
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	type openClusterDTO struct {
		Name  string `json:"name"`
		AppID string `json:"appId"`
		baseDTO
	}
	var out *openClusterDTO
	p.s.read(func(st *state) {
		if c := st.cluster(appID, cluster); c != nil {
			out = &openClusterDTO{Name: c.name, AppID: c.appID, baseDTO: base(c.createdBy, c.createdBy, c.created, c.created)}
		}
	})
	if out == nil {
		p.fail(notFound("cluster not found for appId:%s clusterName:%s", appID, cluster).admin())
		return
	}
	p.ok(out)
}

func (p *portalReq) listNamespaces(env, appID, cluster string) {
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	out := []openNamespaceDTO{}
	p.s.read(func(st *state) {
		if c := st.cluster(appID, cluster); c != nil {
			for _, n := range c.namespaces {
				out = append(out, st.namespaceBO(n))
			}
		}
	})
	p.ok(out)
}

func (p *portalReq) getNamespace(env, appID, cluster, ns string) {
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out openNamespaceDTO
	var err *apiError
	p.s.read(func(st *state) {
		n, e := st.requireNamespace(appID, cluster, ns)
		if e != nil {
			err = e
			return
		}
		out = st.namespaceBO(n)
	})
	if err != nil {
		p.fail(err)
		return
	}
	p.ok(out)
}

// ---- items ----

type itemBody struct {
	Key                      *string `json:"key"`
	Value                    *string `json:"value"`
	Comment                  *string `json:"comment"`
	Type                     int     `json:"type"`
	DataChangeCreatedBy      *string `json:"dataChangeCreatedBy"`
	DataChangeLastModifiedBy *string `json:"dataChangeLastModifiedBy"`
}

func (p *portalReq) getItem(env, appID, cluster, ns, key string) {
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out openItemDTO
	var err *apiError
	p.s.read(func(st *state) {
		_, it, e := st.loadItem(appID, cluster, ns, key)
		if e != nil {
			err = e
			return
		}
		out = itemDTO(it)
	})
	if err != nil {
		p.fail(err)
		return
	}
	p.ok(out)
}

func (p *portalReq) listItems(env, appID, cluster, ns string) {
	page, ok := p.intParam("page", 0)
	if !ok {
		return
	}
	size, ok := p.intParam("size", 50)
	if !ok {
		return
	}
	if page < 0 {
		p.fail(badRequest("findItemsByNamespace.page: page should be positive or 0"))
		return
	}
	if size <= 0 {
		p.fail(badRequest("findItemsByNamespace.size: size should be positive number"))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	type openPageDTO struct {
		Page    int           `json:"page"`
		Size    int           `json:"size"`
		Total   int           `json:"total"`
		Content []openItemDTO `json:"content"`
	}
	out := openPageDTO{Page: page, Size: size, Content: []openItemDTO{}}
	var err *apiError
	p.s.read(func(st *state) {
		n, e := st.requireNamespace(appID, cluster, ns)
		if e != nil {
			err = e
			return
		}
		out.Total = len(n.items)
		for i := page * size; i < len(n.items) && i < (page+1)*size; i++ {
			out.Content = append(out.Content, itemDTO(n.items[i]))
		}
	})
	if err != nil {
		p.fail(err)
		return
	}
	p.ok(out)
}

func commentTooLong(c *string) *apiError {
	if c != nil && javaLen(*c) > 256 {
		return badRequest("Comment length should not exceed 256 characters")
	}
	return nil
}

func (p *portalReq) createItem(env, appID, cluster, ns string) {
	var in itemBody
	if !p.body(&in) {
		return
	}
	if !p.consumer.canModify(appID, ns, env) {
		p.fail(accessDenied)
		return
	}
	if str(in.Key) == "" || str(in.DataChangeCreatedBy) == "" {
		p.fail(badRequest("key and dataChangeCreatedBy should not be null or empty"))
		return
	}
	if !p.userExists(*in.DataChangeCreatedBy) {
		p.fail(badRequest("User %s doesn't exist!", *in.DataChangeCreatedBy))
		return
	}
	if e := commentTooLong(in.Comment); e != nil {
		p.fail(e)
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out openItemDTO
	if e := p.write(func(st *state) *apiError {
		n, e := st.requireNamespace(appID, cluster, ns)
		if e != nil {
			return e
		}
		it, e := st.createItem(n, itemInput{key: *in.Key, value: str(in.Value), comment: str(in.Comment), typ: in.Type, operator: *in.DataChangeCreatedBy})
		if e != nil {
			return e
		}
		out = itemDTO(it)
		return nil
	}); e != nil {
		p.fail(e)
		return
	}
	p.ok(out)
}

func (p *portalReq) updateItem(env, appID, cluster, ns, key string) {
	var in itemBody
	if !p.body(&in) {
		return
	}
	createIfNotExists, ok := p.boolParam("createIfNotExists", false)
	if !ok {
		return
	}
	if !p.consumer.canModify(appID, ns, env) {
		p.fail(accessDenied)
		return
	}
	if str(in.Key) == "" || str(in.DataChangeLastModifiedBy) == "" {
		p.fail(badRequest("key and dataChangeLastModifiedBy can not be empty"))
		return
	}
	if *in.Key != key {
		p.fail(badRequest("Key in path and payload is not consistent"))
		return
	}
	if !p.userExists(*in.DataChangeLastModifiedBy) {
		p.fail(badRequest("user(dataChangeLastModifiedBy) not exists"))
		return
	}
	if e := commentTooLong(in.Comment); e != nil {
		p.fail(e)
		return
	}
	if in.Type < 0 || in.Type > 3 {
		p.fail(internal(exIllegalArgument, ""))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	if e := p.write(func(st *state) *apiError {
		n, it, e := st.loadItem(appID, cluster, ns, key)
		if e != nil {
			if !createIfNotExists || e.status != http.StatusNotFound {
				return e
			}
			// ServerItemOpenApiService.createOrUpdateItem: a 404 turns into a
			// create (dataChangeCreatedBy is not validated there).
			if n, e = st.requireNamespace(appID, cluster, ns); e != nil {
				return e
			}
			_, e = st.createItem(n, itemInput{key: key, value: str(in.Value), comment: str(in.Comment), typ: in.Type, operator: str(in.DataChangeCreatedBy)})
			return e
		}
		return st.updateItem(n, it, itemInput{key: key, value: str(in.Value), comment: str(in.Comment), typ: in.Type, operator: *in.DataChangeLastModifiedBy})
	}); e != nil {
		p.fail(e)
		return
	}
	p.w.WriteHeader(http.StatusOK)
}

func (p *portalReq) deleteItem(env, appID, cluster, ns, key string) {
	operator, ok := p.requiredParam("operator")
	if !ok {
		return
	}
	if !p.consumer.canModify(appID, ns, env) {
		p.fail(accessDenied)
		return
	}
	if !p.userExists(operator) {
		p.fail(badRequest("user(operator) not exists"))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	if e := p.write(func(st *state) *apiError {
		n, it, e := st.loadItem(appID, cluster, ns, key)
		if e != nil {
			return e
		}
		st.deleteItem(n, it)
		return nil
	}); e != nil {
		p.fail(e)
		return
	}
	p.w.WriteHeader(http.StatusOK)
}

// ---- releases ----

// createRelease serves both P/releases (target == cluster) and the gray
// publish P/branches/{b}/releases (target == branch).
func (p *portalReq) createRelease(env, appID, cluster, ns, target string, gray bool) {
	var in releaseInput
	if !p.body(&in) {
		return
	}
	if !p.consumer.canRelease(appID, ns, env) {
		p.fail(accessDenied)
		return
	}
	if !in.check(p) {
		return
	}
	if !p.userExists(*in.ReleasedBy) {
		p.fail(badRequest("user not exists for userName:%s", *in.ReleasedBy))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out openReleaseDTO
	if e := p.write(func(st *state) *apiError {
		n := st.namespace(appID, target, ns)
		if n == nil {
			return (&apiError{status: 404, exception: exNamespaceNotFound,
				message: fmt.Sprintf("namespace not found for appId:%s clusterName:%s namespaceName:%s", appID, target, ns)}).admin()
		}
		r, e := st.publish(n, *in.ReleaseTitle, str(in.ReleaseComment), *in.ReleasedBy, false, nil)
		if e != nil {
			return e
		}
		out = releaseDTO(r)
		return nil
	}); e != nil {
		p.fail(e)
		return
	}
	p.ok(out)
}

func (p *portalReq) grayDelRelease(env, appID, cluster, ns, branch string) {
	var in releaseInput
	if !p.body(&in) {
		return
	}
	if !p.consumer.canRelease(appID, ns, env) {
		p.fail(accessDenied)
		return
	}
	if !in.check(p) {
		return
	}
	if in.GrayDelKeys == nil {
		p.fail(badRequest("Params(grayDelKeys) can not be null"))
		return
	}
	if !p.userExists(*in.ReleasedBy) {
		p.fail(badRequest("user not exists for userName:%s", *in.ReleasedBy))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out openReleaseDTO
	if e := p.write(func(st *state) *apiError {
		n := st.namespace(appID, branch, ns)
		if n == nil {
			return (&apiError{status: 404, exception: exNamespaceNotFound,
				message: fmt.Sprintf("namespace not found for appId:%s clusterName:%s namespaceName:%s", appID, branch, ns)}).admin()
		}
		r, e := st.publish(n, *in.ReleaseTitle, str(in.ReleaseComment), *in.ReleasedBy, true, in.GrayDelKeys)
		if e != nil {
			return e
		}
		out = releaseDTO(r)
		return nil
	}); e != nil {
		p.fail(e)
		return
	}
	p.ok(out)
}

func (p *portalReq) latestRelease(env, appID, cluster, ns string) {
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out *openReleaseDTO
	p.s.read(func(st *state) {
		if r := st.latestActiveRelease(appID, cluster, ns); r != nil {
			d := releaseDTO(r)
			out = &d
		}
	})
	if out == nil {
		writeNull(p.w)
		return
	}
	p.ok(out)
}

func (p *portalReq) activeReleases(env, appID, cluster, ns string) {
	page, ok := p.intParam("page", 0)
	if !ok {
		return
	}
	size, ok := p.intParam("size", 5)
	if !ok {
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	out := []openReleaseDTO{}
	p.s.read(func(st *state) {
		rs := st.activeReleases(appID, cluster, ns)
		for i := page * size; i >= 0 && i < len(rs) && i < (page+1)*size; i++ {
			out = append(out, releaseDTO(rs[i]))
		}
	})
	p.ok(out)
}

func (p *portalReq) getRelease(env, idStr string) {
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil {
		p.fail(internal(exTypeMismatch, fmt.Sprintf("Failed to convert value of type 'java.lang.String' to required type 'long'; nested exception is java.lang.NumberFormatException: For input string: \"%s\"", idStr)))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out *openReleaseDTO
	p.s.read(func(st *state) {
		if r := st.releaseID[id]; r != nil && !r.deleted {
			d := releaseDTO(r)
			out = &d
		}
	})
	if out == nil {
		p.fail(notFound("release not found for releaseId:%d", id))
		return
	}
	p.ok(out)
}

func (p *portalReq) rollback(env, idStr string) {
	id, err := strconv.ParseInt(idStr, 10, 64)
	if err != nil {
		p.fail(internal(exTypeMismatch, fmt.Sprintf("Failed to convert value of type 'java.lang.String' to required type 'long'; nested exception is java.lang.NumberFormatException: For input string: \"%s\"", idStr)))
		return
	}
	operator, ok := p.requiredParam("operator")
	if !ok {
		return
	}
	if operator == "" {
		p.fail(badRequest("Param operator can not be empty"))
		return
	}
	if !p.userExists(operator) {
		p.fail(badRequest("user not exists for userName:%s", operator))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var rel *releaseRec
	p.s.read(func(st *state) {
		if r := st.releaseID[id]; r != nil && !r.deleted {
			rel = r
		}
	})
	if rel == nil {
		p.fail(badRequest("release not found"))
		return
	}
	if !p.consumer.canRelease(rel.appID, rel.ns, env) {
		p.fail(forbidden("Forbidden operation. you don't have release permission"))
		return
	}
	if e := p.write(func(st *state) *apiError {
		_, e := st.rollback(id, operator)
		return e
	}); e != nil {
		p.fail(e)
		return
	}
	p.w.WriteHeader(http.StatusOK)
}

// ---- branches ----

func (p *portalReq) getBranch(env, appID, cluster, ns string) {
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out *openNamespaceDTO
	var err *apiError
	p.s.read(func(st *state) {
		if err = st.checkNamespace(appID, cluster, ns); err != nil {
			return
		}
		if b := st.childNamespace(appID, cluster, ns); b != nil {
			d := st.namespaceBO(b)
			out = &d
		}
	})
	switch {
	case err != nil:
		p.fail(err)
	case out == nil:
		writeNull(p.w)
	default:
		p.ok(out)
	}
}

func (p *portalReq) createBranch(env, appID, cluster, ns string) {
	operator, ok := p.requiredParam("operator")
	if !ok {
		return
	}
	if !p.consumer.canCreateNamespace(appID) {
		p.fail(accessDenied)
		return
	}
	if operator == "" {
		p.fail(badRequest("operator can not be empty"))
		return
	}
	if !p.userExists(operator) {
		p.fail(badRequest("user not exists for userName:%s", operator))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out openNamespaceDTO
	if e := p.write(func(st *state) *apiError {
		n, e := st.createBranch(appID, cluster, ns, operator)
		if e != nil {
			return e
		}
		out = openNamespaceDTO{AppID: n.appID, ClusterName: n.cluster, NamespaceName: n.name,
			baseDTO: base(operator, operator, n.created, n.created)}
		return nil
	}); e != nil {
		p.fail(e)
		return
	}
	p.ok(out)
}

func (p *portalReq) deleteBranch(env, appID, cluster, ns, branch string) {
	operator, ok := p.requiredParam("operator")
	if !ok {
		return
	}
	if !p.consumer.canModify(appID, ns, env) {
		p.fail(accessDenied)
		return
	}
	if operator == "" {
		p.fail(badRequest("operator can not be empty"))
		return
	}
	if !p.userExists(operator) {
		p.fail(badRequest("user not exists for userName:%s", operator))
		return
	}
	if !p.consumer.canRelease(appID, ns, env) {
		p.fail(forbidden("Forbidden operation. Caused by: 1.you don't have release permission or 2. you don't have modification permission or 3. you have modification permission but branch has been released"))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	if e := p.write(func(st *state) *apiError {
		if e := st.checkBranch(appID, cluster, ns, branch); e != nil {
			return e
		}
		st.deleteBranch(appID, cluster, ns, branch, branchDeleted, operator)
		st.sendMessage(appID, cluster, ns)
		return nil
	}); e != nil {
		p.fail(e)
		return
	}
	p.w.WriteHeader(http.StatusOK)
}

func (p *portalReq) getRules(env, appID, cluster, ns, branch string) {
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out *openGrayRuleDTO
	var err *apiError
	p.s.read(func(st *state) {
		if err = st.checkBranch(appID, cluster, ns, branch); err != nil {
			return
		}
		if r := st.currentRule(appID, cluster, ns, branch); r != nil {
			out = &openGrayRuleDTO{AppID: r.appID, ClusterName: r.cluster, NamespaceName: r.ns, BranchName: r.branch,
				RuleItems: cloneRuleItems(r.items)}
		}
	})
	switch {
	case err != nil:
		p.fail(err)
	case out == nil:
		writeNull(p.w)
	default:
		p.ok(out)
	}
}

func (p *portalReq) putRules(env, appID, cluster, ns, branch string) {
	var in struct {
		RuleItems *[]struct {
			ClientAppID     string   `json:"clientAppId"`
			ClientIPList    []string `json:"clientIpList"`
			ClientLabelList []string `json:"clientLabelList"`
		} `json:"ruleItems"`
	}
	if !p.body(&in) {
		return
	}
	operator, ok := p.requiredParam("operator")
	if !ok {
		return
	}
	if !p.consumer.canModify(appID, ns, env) {
		p.fail(accessDenied)
		return
	}
	if operator == "" {
		p.fail(badRequest("operator can not be empty"))
		return
	}
	if !p.userExists(operator) {
		p.fail(badRequest("user not exists for userName:%s", operator))
		return
	}
	if in.RuleItems == nil {
		p.fail(internal(exNullPointer, ""))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var items []GrayRuleItem
	seen := map[string]bool{}
	for _, it := range *in.RuleItems {
		gi := GrayRuleItem{ClientAppID: it.ClientAppID, ClientIPList: dedupe(it.ClientIPList), ClientLabelList: dedupe(it.ClientLabelList)}
		b, _ := json.Marshal(gi)
		if !seen[string(b)] {
			seen[string(b)] = true
			items = append(items, gi)
		}
	}
	if e := p.write(func(st *state) *apiError {
		return st.updateBranchRules(appID, cluster, ns, branch, items, operator)
	}); e != nil {
		p.fail(e)
		return
	}
	p.w.WriteHeader(http.StatusOK)
}

func dedupe(in []string) []string {
	out := []string{}
	for _, s := range in {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (p *portalReq) merge(env, appID, cluster, ns, branch string) {
	deleteBranch, ok := p.boolParam("deleteBranch", true)
	if !ok {
		return
	}
	var in releaseInput
	if !p.body(&in) {
		return
	}
	if !p.consumer.canRelease(appID, ns, env) {
		p.fail(accessDenied)
		return
	}
	if !in.check(p) {
		return
	}
	if !p.userExists(*in.ReleasedBy) {
		p.fail(badRequest("user not exists for userName:%s", *in.ReleasedBy))
		return
	}
	if e := p.envErr(env); e != nil {
		p.fail(e)
		return
	}
	var out openReleaseDTO
	if e := p.write(func(st *state) *apiError {
		r, e := st.merge(appID, cluster, ns, branch, *in.ReleaseTitle, str(in.ReleaseComment), *in.ReleasedBy, deleteBranch)
		if e != nil {
			return e
		}
		out = releaseDTO(r)
		return nil
	}); e != nil {
		p.fail(e)
		return
	}
	p.ok(out)
}

// ---- rate limiting (Guava RateLimiter as ConsumerAuthenticationFilter uses it) ----

type rateLimiter struct {
	created time.Time
	last    time.Time
	tokens  float64
	qps     float64
}

func (s *Server) allow(token string, qps int) bool {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	now := s.now()
	l := s.limiters[token]
	if l == nil {
		l = &rateLimiter{created: now, last: now, qps: float64(qps)}
		s.limiters[token] = l
	}
	if now.Sub(l.created) <= time.Second {
		return true // 1 s warm-up: every call passes
	}
	l.tokens += now.Sub(l.last).Seconds() * l.qps
	if l.tokens > l.qps {
		l.tokens = l.qps
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	return false
}
