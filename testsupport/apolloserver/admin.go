package apolloserver

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// This file is the Go "portal UI" for tests: what an Apollo administrator
// would click together before a client or an Open API consumer shows up.
// Every method is safe for concurrent use and works whether or not the server
// is running.

// Namespace formats (ConfigFileFormat).
const (
	FormatProperties = "properties"
	FormatXML        = "xml"
	FormatJSON       = "json"
	FormatYML        = "yml"
	FormatYAML       = "yaml"
	FormatTXT        = "txt"
)

var (
	namePattern       = regexp.MustCompile(`^[0-9a-zA-Z_.-]+$`)
	reservedNsSuffix  = []string{".json", ".yml", ".yaml", ".xml", ".properties"}
	supportedFormats  = []string{FormatProperties, FormatXML, FormatJSON, FormatYML, FormatYAML, FormatTXT}
	errServerNotFound = fmt.Errorf("apolloserver: not found")
)

// Release is a release as stored by Apollo.
type Release struct {
	ID             int64
	ReleaseKey     string // yyyyMMddHHmmss-<16 hex>
	Name           string // the release title
	Comment        string
	AppID          string
	ClusterName    string // a branch name for gray releases
	NamespaceName  string
	Configurations map[string]string
	Abandoned      bool // rolled back
	CreatedBy      string
	CreatedAt      time.Time
}

// ReleaseHistory is one row of Apollo's ReleaseHistory (what the portal's
// "release history" page shows).
type ReleaseHistory struct {
	ID                int64
	AppID             string
	ClusterName       string // the master cluster
	NamespaceName     string
	BranchName        string // == ClusterName for master operations
	ReleaseID         int64
	PreviousReleaseID int64
	Operation         int // Op* constants
	OperationContext  map[string]any
	Operator          string
	CreatedAt         time.Time
}

func (r *releaseRec) export() Release {
	return Release{
		ID: r.id, ReleaseKey: r.releaseKey, Name: r.name, Comment: r.comment,
		AppID: r.appID, ClusterName: r.cluster, NamespaceName: r.ns,
		Configurations: r.configs.toMap(), Abandoned: r.abandoned,
		CreatedBy: r.createdBy, CreatedAt: r.created,
	}
}

// mutate runs f under the store lock and then wakes the long polls for every
// release message f sent.
func (s *Server) mutate(f func(st *state) error) error {
	s.mu.Lock()
	st := s.st
	err := f(st)
	msgs := st.pending
	st.pending = nil
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = st.msgLatest[m]
	}
	s.mu.Unlock()
	for i, m := range msgs {
		s.wake(m, ids[i])
	}
	return err
}

func (s *Server) read(f func(st *state)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.st)
}

func apiErr(e *apiError) error {
	if e == nil {
		return nil
	}
	return fmt.Errorf("apolloserver: %d %s", e.status, e.message)
}

// CreateApp creates an app the way the portal does: with the "default"
// cluster and the private "application" properties namespace. A non-empty
// secret enables an access key, so config-service requests for this app must
// be signed (Authorization: Apollo appId:sig, Timestamp).
func (s *Server) CreateApp(appID, secret string) error {
	return s.mutate(func(st *state) error {
		if !namePattern.MatchString(appID) {
			return fmt.Errorf("apolloserver: invalid appId %q", appID)
		}
		if st.apps[appID] != nil {
			return fmt.Errorf("apolloserver: app already exists for appId:%s", appID)
		}
		now := st.now()
		a := &appRec{id: appID, name: appID, created: now}
		if secret != "" {
			a.secrets = []string{secret}
		}
		st.apps[appID] = a
		st.appOrder = append(st.appOrder, appID)
		a.appNamespaces = append(a.appNamespaces, &appNamespace{appID: appID, name: namespaceApplication, format: FormatProperties, created: now, createdBy: defaultUser})
		st.addCluster(a, clusterDefault)
		return nil
	})
}

// SetAccessKeys replaces the app's enabled access-key secrets (none: requests
// need no signature).
func (s *Server) SetAccessKeys(appID string, secrets ...string) error {
	return s.mutate(func(st *state) error {
		a := st.apps[appID]
		if a == nil {
			return fmt.Errorf("apolloserver: app not found for appId:%s", appID)
		}
		a.secrets = append([]string{}, secrets...)
		return nil
	})
}

func (st *state) addCluster(a *appRec, name string) *clusterRec {
	c := &clusterRec{appID: a.id, name: name, created: st.now(), createdBy: defaultUser}
	a.clusters = append(a.clusters, c)
	for _, an := range a.appNamespaces {
		st.addNamespace(c, an.name)
	}
	return c
}

func (st *state) addNamespace(c *clusterRec, name string) *nsRec {
	st.seqNamespace++
	n := &nsRec{id: st.seqNamespace, appID: c.appID, cluster: c.name, name: name, created: st.now(), createdBy: defaultUser}
	c.namespaces = append(c.namespaces, n)
	return n
}

// CreateCluster creates a cluster with an instance of each of the app's own
// namespaces (ClusterService.saveWithInstanceOfAppNamespaces).
func (s *Server) CreateCluster(appID, cluster string) error {
	return s.mutate(func(st *state) error {
		a := st.apps[appID]
		if a == nil {
			return fmt.Errorf("apolloserver: app not found for appId:%s", appID)
		}
		if !namePattern.MatchString(cluster) {
			return fmt.Errorf("apolloserver: invalid clusterName format:%s", cluster)
		}
		if st.cluster(appID, cluster) != nil {
			return fmt.Errorf("apolloserver: cluster already exists for clusterName:%s", cluster)
		}
		st.addCluster(a, cluster)
		return nil
	})
}

// CreateNamespace creates a private namespace in every (master) cluster of the
// app and returns its full name: for a format other than properties Apollo
// appends ".<format>", so ("x", "yaml") is the namespace "x.yaml" whose single
// item "content" holds the document.
func (s *Server) CreateNamespace(appID, name, format string) (string, error) {
	return s.createAppNamespace(appID, name, format, false)
}

// CreatePublicNamespace creates a public namespace owned by appID. Other apps
// read it by name (and may override it with AssociateNamespace).
func (s *Server) CreatePublicNamespace(appID, name, format string) (string, error) {
	return s.createAppNamespace(appID, name, format, true)
}

func (s *Server) createAppNamespace(appID, name, format string, public bool) (string, error) {
	var full string
	err := s.mutate(func(st *state) error {
		a := st.apps[appID]
		if a == nil {
			return fmt.Errorf("apolloserver: app not found for appId:%s", appID)
		}
		if format == "" {
			format = FormatProperties
		}
		format = strings.ToLower(format)
		if !contains(supportedFormats, format) {
			return fmt.Errorf("apolloserver: invalid namespace format:%s", format)
		}
		if !namePattern.MatchString(name) {
			return fmt.Errorf("apolloserver: invalid namespace name %q", name)
		}
		for _, suf := range reservedNsSuffix {
			if strings.HasSuffix(strings.ToLower(name), suf) {
				return fmt.Errorf("apolloserver: invalid namespace name %q: do not add the format suffix yourself", name)
			}
		}
		full = name
		if format != FormatProperties {
			full = name + "." + format
		}
		if an := st.appNamespaceOf(appID, full); an != nil {
			return fmt.Errorf("apolloserver: appNamespace already exists for appId:%s namespaceName:%s", appID, full)
		}
		if st.publicAppNamespace(full) != nil {
			return fmt.Errorf("apolloserver: public namespace %s already exists", full)
		}
		a.appNamespaces = append(a.appNamespaces, &appNamespace{appID: appID, name: full, format: format, public: public, created: st.now(), createdBy: defaultUser})
		for _, c := range a.clusters {
			if c.parent == "" {
				st.addNamespace(c, full)
			}
		}
		return nil
	})
	return full, err
}

// AssociateNamespace adds another app's public namespace to one of appID's
// clusters, so appID can override some of its keys there.
func (s *Server) AssociateNamespace(appID, cluster, publicNamespace string) error {
	return s.mutate(func(st *state) error {
		c := st.cluster(appID, cluster)
		if c == nil {
			return fmt.Errorf("apolloserver: cluster not found for appId:%s clusterName:%s", appID, cluster)
		}
		an := st.publicAppNamespace(publicNamespace)
		if an == nil {
			return fmt.Errorf("apolloserver: public namespace %s not found", publicNamespace)
		}
		if an.appID == appID {
			return fmt.Errorf("apolloserver: %s is appId %s's own namespace", an.name, appID)
		}
		if st.namespace(appID, cluster, an.name) != nil {
			return fmt.Errorf("apolloserver: namespace already exists for namespaceName:%s", an.name)
		}
		st.addNamespace(c, an.name)
		return nil
	})
}

// CreateUser adds a portal user. Open API writes name a user as operator
// (dataChangeCreatedBy, releasedBy, operator...) and Apollo rejects unknown
// users; the user "apollo" exists from the start.
func (s *Server) CreateUser(name string) error {
	return s.mutate(func(st *state) error {
		st.users[name] = true
		return nil
	})
}

// CreateToken registers an Open API consumer token (sent raw in the
// Authorization header). A token without grants can read but gets 403 on
// every write.
func (s *Server) CreateToken(token string) error {
	return s.mutate(func(st *state) error {
		if token == "" {
			return fmt.Errorf("apolloserver: empty token")
		}
		if st.tokens[token] != nil {
			return fmt.Errorf("apolloserver: token already exists")
		}
		st.seqConsumer++
		st.tokens[token] = &consumer{id: st.seqConsumer, token: token, apps: map[string]bool{}, nss: map[string]bool{}}
		return nil
	})
}

// GrantApp gives the token the app-level grant (Apollo's "App" authorization:
// CreateNamespace on the app, which implies modify and release on every
// namespace and is the only grant that may create branches).
func (s *Server) GrantApp(token, appID string) error {
	return s.mutate(func(st *state) error {
		c := st.tokens[token]
		if c == nil {
			return fmt.Errorf("apolloserver: unknown token")
		}
		c.apps[appID] = true
		return nil
	})
}

// GrantNamespace gives the token modify and release permission on one
// namespace of an app, in every env (env "") or in one env.
func (s *Server) GrantNamespace(token, appID, namespace, env string) error {
	return s.mutate(func(st *state) error {
		c := st.tokens[token]
		if c == nil {
			return fmt.Errorf("apolloserver: unknown token")
		}
		k := appID + "+" + namespace
		if env != "" {
			k += "+" + strings.ToUpper(env)
		}
		c.nss[k] = true
		return nil
	})
}

// SetTokenRateLimit limits the token to qps requests per second (Apollo's
// consumer rate limit: 429 once exceeded, after a 1 s warm-up); 0 removes it.
func (s *Server) SetTokenRateLimit(token string, qps int) error {
	err := s.mutate(func(st *state) error {
		c := st.tokens[token]
		if c == nil {
			return fmt.Errorf("apolloserver: unknown token")
		}
		c.rateLimit = qps
		return nil
	})
	s.limMu.Lock()
	delete(s.limiters, token)
	s.limMu.Unlock()
	return err
}

// ExpireToken makes the token expired: it then gets 401 like an unknown one.
func (s *Server) ExpireToken(token string) error {
	return s.mutate(func(st *state) error {
		c := st.tokens[token]
		if c == nil {
			return fmt.Errorf("apolloserver: unknown token")
		}
		c.expires = st.now().Add(-time.Second)
		return nil
	})
}

// SetItem creates or updates an item as a portal user would (operator "apollo").
func (s *Server) SetItem(appID, cluster, namespace, key, value string) error {
	return s.mutate(func(st *state) error {
		n, e := st.requireNamespace(appID, cluster, namespace)
		if e != nil {
			return apiErr(e)
		}
		in := itemInput{key: key, value: value, operator: defaultUser}
		if it := n.item(key); it != nil {
			in.comment, in.typ = it.comment, it.typ
			return apiErr(st.updateItem(n, it, in))
		}
		_, e = st.createItem(n, in)
		return apiErr(e)
	})
}

// DeleteItem deletes an item (not yet published).
func (s *Server) DeleteItem(appID, cluster, namespace, key string) error {
	return s.mutate(func(st *state) error {
		n, it, e := st.loadItem(appID, cluster, namespace, key)
		if e != nil {
			return apiErr(e)
		}
		st.deleteItem(n, it)
		return nil
	})
}

// Publish releases the namespace's current items as the portal's "publish"
// button does: a master release (republishing an active branch on top of it)
// or, when cluster is a branch name, a gray release. Clients are notified.
func (s *Server) Publish(appID, cluster, namespace, title string) (Release, error) {
	var out Release
	err := s.mutate(func(st *state) error {
		n, e := st.requireNamespace(appID, cluster, namespace)
		if e != nil {
			return apiErr(e)
		}
		r, e := st.publish(n, title, "", defaultUser, false, nil)
		if e != nil {
			return apiErr(e)
		}
		out = r.export()
		return nil
	})
	return out, err
}

// CreateBranch creates the gray branch of a namespace and returns its name.
func (s *Server) CreateBranch(appID, cluster, namespace string) (string, error) {
	var name string
	err := s.mutate(func(st *state) error {
		n, e := st.createBranch(appID, cluster, namespace, defaultUser)
		if e != nil {
			return apiErr(e)
		}
		name = n.cluster
		return nil
	})
	return name, err
}

// SetGrayRules replaces the branch's gray rules (clients are notified on the
// master key).
func (s *Server) SetGrayRules(appID, cluster, namespace, branch string, rules ...GrayRuleItem) error {
	return s.mutate(func(st *state) error {
		return apiErr(st.updateBranchRules(appID, cluster, namespace, branch, rules, defaultUser))
	})
}

// Branch returns the name of the namespace's gray branch, if it has one.
func (s *Server) Branch(appID, cluster, namespace string) (string, bool) {
	var name string
	s.read(func(st *state) {
		if n := st.childNamespace(appID, cluster, namespace); n != nil {
			name = n.cluster
		}
	})
	return name, name != ""
}

// Items returns the namespace's current (possibly unpublished) items.
func (s *Server) Items(appID, cluster, namespace string) (map[string]string, error) {
	var out map[string]string
	var err error
	s.read(func(st *state) {
		n := st.namespace(appID, cluster, namespace)
		if n == nil {
			err = errServerNotFound
			return
		}
		out = n.configs().toMap()
	})
	return out, err
}

// Releases lists every release of the namespace (cluster may be a branch
// name), newest first, abandoned (rolled back) ones included.
func (s *Server) Releases(appID, cluster, namespace string) []Release {
	var out []Release
	s.read(func(st *state) {
		rs := st.releases[tripleKey(appID, cluster, namespace)]
		for i := len(rs) - 1; i >= 0; i-- {
			if !rs[i].deleted {
				out = append(out, rs[i].export())
			}
		}
	})
	return out
}

// LatestRelease is the latest active release of the namespace.
func (s *Server) LatestRelease(appID, cluster, namespace string) (Release, bool) {
	var out Release
	var ok bool
	s.read(func(st *state) {
		if r := st.latestActiveRelease(appID, cluster, namespace); r != nil {
			out, ok = r.export(), true
		}
	})
	return out, ok
}

// ReleaseHistory lists the release history of a master namespace (its
// branches' operations included), newest first.
func (s *Server) ReleaseHistory(appID, cluster, namespace string) []ReleaseHistory {
	var out []ReleaseHistory
	s.read(func(st *state) {
		for i := len(st.histories) - 1; i >= 0; i-- {
			h := st.histories[i]
			if h.appID == appID && h.cluster == cluster && h.ns == namespace {
				out = append(out, ReleaseHistory{
					ID: h.id, AppID: h.appID, ClusterName: h.cluster, NamespaceName: h.ns, BranchName: h.branch,
					ReleaseID: h.releaseID, PreviousReleaseID: h.previousReleaseID, Operation: h.operation,
					OperationContext: h.context, Operator: h.operator, CreatedAt: h.created,
				})
			}
		}
	})
	return out
}

// NotificationID is the id of the latest release message for the key
// appId+cluster+namespace (-1 when none was ever sent).
func (s *Server) NotificationID(appID, cluster, namespace string) int64 {
	id := int64(-1)
	s.read(func(st *state) {
		if v, ok := st.msgLatest[messageKey(appID, cluster, namespace)]; ok {
			id = v
		}
	})
	return id
}

// Apps lists the app ids, sorted.
func (s *Server) Apps() []string {
	var out []string
	s.read(func(st *state) {
		out = append(out, st.appOrder...)
	})
	sort.Strings(out)
	return out
}
