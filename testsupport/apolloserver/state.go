package apolloserver

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf16"
)

// Apollo constants.
const (
	clusterDefault       = "default"
	namespaceApplication = "application"
	noAppIDPlaceholder   = "ApolloNoAppIdPlaceHolder"
	defaultUser          = "apollo"
)

// NamespaceBranchStatus values.
const (
	branchDeleted = 0
	branchActive  = 1
	branchMerged  = 2
)

// Release operations (com.ctrip.framework.apollo.common.constants.ReleaseOperation).
const (
	OpNormalRelease                = 0
	OpRollback                     = 1
	OpGrayRelease                  = 2
	OpApplyGrayRules               = 3
	OpGrayReleaseMergeToMaster     = 4
	OpMasterNormalReleaseMergeGray = 5
	OpMasterRollbackMergeToGray    = 6
	OpAbandonGrayRelease           = 7
	OpGrayReleaseDeletedAfterMerge = 8
)

type state struct {
	now        func() time.Time
	keyLimit   int
	valueLimit int

	apps     map[string]*appRec
	appOrder []string
	users    map[string]bool
	tokens   map[string]*consumer

	seqNamespace, seqItem, seqRelease, seqHistory, seqRule, seqMsg, seqConsumer int64

	releases  map[string][]*releaseRec // triple key -> releases in id order
	releaseID map[int64]*releaseRec
	histories []*historyRec
	rules     map[string]*ruleRec // appId+cluster+ns+branch (exact) -> current rule row
	msgLatest map[string]int64    // release message content -> latest id
	pending   []string            // messages sent by the operation in progress

	machineID  uint32
	keyCounter uint32
}

type appRec struct {
	id, name      string
	secrets       []string
	created       time.Time
	appNamespaces []*appNamespace
	clusters      []*clusterRec
}

type appNamespace struct {
	appID, name, format, comment string
	public                       bool
	created                      time.Time
	createdBy                    string
}

type clusterRec struct {
	appID, name, parent string // parent == "" for a master cluster
	namespaces          []*nsRec
	created             time.Time
	createdBy           string
}

type nsRec struct {
	id                   int64
	appID, cluster, name string
	items                []*itemRec
	created              time.Time
	createdBy            string
}

type itemRec struct {
	id                    int64
	key, value, comment   string
	typ, lineNum          int
	createdBy, modifiedBy string
	created, modified     time.Time
}

type releaseRec struct {
	id                        int64
	releaseKey, name, comment string
	appID, cluster, ns        string
	configs                   orderedMap
	abandoned, deleted        bool
	createdBy, modifiedBy     string
	created, modified         time.Time
	// branchKeys is the "branchReleaseKeys" operation context recorded with
	// a branch release (nil when Apollo recorded null).
	branchKeys []string
}

type historyRec struct {
	id                           int64
	appID, cluster, ns, branch   string
	releaseID, previousReleaseID int64
	operation                    int
	context                      map[string]any
	operator                     string
	created                      time.Time
}

type ruleRec struct {
	id                         int64
	appID, cluster, ns, branch string
	items                      []GrayRuleItem
	releaseID                  int64
	status                     int
	createdBy, modifiedBy      string
	created, modified          time.Time
}

type consumer struct {
	id        int64
	token     string
	apps      map[string]bool // app-level grants (Apollo: CreateNamespace on the app => everything)
	nss       map[string]bool // appId+ns or appId+ns+ENV grants (modify + release)
	rateLimit int
	expires   time.Time
}

func newState() *state {
	st := &state{
		apps:      map[string]*appRec{},
		users:     map[string]bool{defaultUser: true},
		tokens:    map[string]*consumer{},
		releases:  map[string][]*releaseRec{},
		releaseID: map[int64]*releaseRec{},
		rules:     map[string]*ruleRec{},
		msgLatest: map[string]int64{},
	}
	var b [8]byte
	rand.Read(b[:])
	st.machineID = binary.BigEndian.Uint32(b[:4]) & 0xffffff
	st.keyCounter = binary.BigEndian.Uint32(b[4:])
	return st
}

func tripleKey(appID, cluster, ns string) string { return appID + "\x00" + cluster + "\x00" + ns }

func messageKey(appID, cluster, ns string) string { return appID + "+" + cluster + "+" + ns }

// ---- lookups (exact, like Apollo on a case-sensitive store) ----

func (st *state) app(appID string) *appRec { return st.apps[appID] }

func (st *state) cluster(appID, name string) *clusterRec {
	a := st.apps[appID]
	if a == nil {
		return nil
	}
	for _, c := range a.clusters {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (st *state) namespace(appID, cluster, name string) *nsRec {
	c := st.cluster(appID, cluster)
	if c == nil {
		return nil
	}
	for _, n := range c.namespaces {
		if n.name == name {
			return n
		}
	}
	return nil
}

// appNamespaceOf finds an AppNamespace owned by appID (case-insensitive, as
// AppNamespaceServiceWithCache does).
func (st *state) appNamespaceOf(appID, name string) *appNamespace {
	a := st.apps[appID]
	if a == nil {
		return nil
	}
	for _, an := range a.appNamespaces {
		if strings.EqualFold(an.name, name) {
			return an
		}
	}
	return nil
}

// publicAppNamespace finds a public AppNamespace by name (case-insensitive).
func (st *state) publicAppNamespace(name string) *appNamespace {
	for _, id := range st.appOrder {
		for _, an := range st.apps[id].appNamespaces {
			if an.public && strings.EqualFold(an.name, name) {
				return an
			}
		}
	}
	return nil
}

// appNamespaceFor finds the definition behind a namespace instance: the
// app's own first, then a public one.
func (st *state) appNamespaceFor(appID, name string) *appNamespace {
	if an := st.appNamespaceOf(appID, name); an != nil && an.name == name {
		return an
	}
	if an := st.publicAppNamespace(name); an != nil && an.name == name {
		return an
	}
	return nil
}

// childNamespace is the branch of a master namespace, if any.
func (st *state) childNamespace(appID, cluster, ns string) *nsRec {
	a := st.apps[appID]
	if a == nil {
		return nil
	}
	for _, c := range a.clusters {
		if c.parent == cluster {
			for _, n := range c.namespaces {
				if n.name == ns {
					return n
				}
			}
		}
	}
	return nil
}

// parentNamespace is the master namespace of a branch namespace, if n is one.
func (st *state) parentNamespace(n *nsRec) *nsRec {
	c := st.cluster(n.appID, n.cluster)
	if c == nil || c.parent == "" {
		return nil
	}
	return st.namespace(n.appID, c.parent, n.name)
}

func (n *nsRec) item(key string) *itemRec {
	for _, it := range n.items {
		if it.key == key {
			return it
		}
	}
	return nil
}

// configs are the namespace's items in line order, as ReleaseService.getNamespaceItems.
func (n *nsRec) configs() orderedMap {
	var m orderedMap
	for _, it := range n.items {
		if it.key == "" {
			continue
		}
		m.set(it.key, it.value)
	}
	return m
}

// ---- releases ----

func (st *state) latestActiveRelease(appID, cluster, ns string) *releaseRec {
	rs := st.releases[tripleKey(appID, cluster, ns)]
	for i := len(rs) - 1; i >= 0; i-- {
		if !rs[i].abandoned && !rs[i].deleted {
			return rs[i]
		}
	}
	return nil
}

func (st *state) activeReleases(appID, cluster, ns string) []*releaseRec {
	var out []*releaseRec
	rs := st.releases[tripleKey(appID, cluster, ns)]
	for i := len(rs) - 1; i >= 0; i-- {
		if !rs[i].abandoned && !rs[i].deleted {
			out = append(out, rs[i])
		}
	}
	return out
}

func (st *state) activeReleaseByID(id int64) *releaseRec {
	r := st.releaseID[id]
	if r == nil || r.abandoned || r.deleted {
		return nil
	}
	return r
}

// uniqueKey is UniqueKeyGenerator.generate(appId, cluster, namespace):
// yyyyMMddHHmmss-<2 bytes of the args' Java hash><3 bytes machine><3 bytes counter>.
func (st *state) uniqueKey(appID, cluster, ns string) string {
	h := int32(1)
	for _, s := range []string{appID, cluster, ns} {
		h = 31*h + javaStringHash(s)
	}
	st.keyCounter++
	c := st.keyCounter
	m := st.machineID
	b := []byte{byte(h >> 8), byte(h), byte(m >> 16), byte(m >> 8), byte(m), byte(c >> 16), byte(c >> 8), byte(c)}
	return st.now().Format("20060102150405") + "-" + hex.EncodeToString(b)
}

func javaStringHash(s string) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(s)) {
		h = 31*h + int32(u)
	}
	return h
}

func javaLen(s string) int { return len(utf16.Encode([]rune(s))) }

func (st *state) createRelease(n *nsRec, name, comment string, configs orderedMap, operator string) *releaseRec {
	st.seqRelease++
	now := st.now()
	r := &releaseRec{
		id: st.seqRelease, releaseKey: st.uniqueKey(n.appID, n.cluster, n.name),
		name: name, comment: comment, appID: n.appID, cluster: n.cluster, ns: n.name,
		configs: configs.clone(), createdBy: operator, modifiedBy: operator, created: now, modified: now,
	}
	k := tripleKey(n.appID, n.cluster, n.name)
	st.releases[k] = append(st.releases[k], r)
	st.releaseID[r.id] = r
	return r
}

func (st *state) history(appID, cluster, ns, branch string, releaseID, prevID int64, op int, ctx map[string]any, operator string) {
	st.seqHistory++
	st.histories = append(st.histories, &historyRec{
		id: st.seqHistory, appID: appID, cluster: cluster, ns: ns, branch: branch,
		releaseID: releaseID, previousReleaseID: prevID, operation: op, context: ctx,
		operator: operator, created: st.now(),
	})
}

// sendMessage is MessageSender.sendMessage on topic apollo-release.
func (st *state) sendMessage(appID, cluster, ns string) {
	st.seqMsg++
	k := messageKey(appID, cluster, ns)
	st.msgLatest[k] = st.seqMsg
	st.pending = append(st.pending, k)
}

// ---- gray rules (GrayReleaseRulesHolder) ----

func (st *state) currentRule(appID, cluster, ns, branch string) *ruleRec {
	return st.rules[appID+"\x00"+cluster+"\x00"+ns+"\x00"+branch]
}

func (st *state) saveRule(r *ruleRec) {
	st.seqRule++
	r.id = st.seqRule
	st.rules[r.appID+"\x00"+r.cluster+"\x00"+r.ns+"\x00"+r.branch] = r
}

// grayReleaseID is GrayReleaseRulesHolder.findReleaseIdFromGrayReleaseRule:
// the holder is keyed case-insensitively, skips rules that never had a
// release and branches that are not active, and the first matching rule wins.
func (st *state) grayReleaseID(c client, configAppID, cluster, ns string) (int64, bool) {
	var best *ruleRec
	for _, r := range st.rules {
		if !strings.EqualFold(r.appID, configAppID) || !strings.EqualFold(r.cluster, cluster) || !strings.EqualFold(r.ns, ns) {
			continue
		}
		if r.releaseID == 0 || r.status != branchActive {
			continue
		}
		if !ruleMatches(r.items, c) {
			continue
		}
		if best == nil || r.id < best.id {
			best = r
		}
	}
	if best == nil {
		return 0, false
	}
	return best.releaseID, true
}

// client identifies a config-service caller. label is nil when the request
// carried no label parameter (Java null), "" when it carried an empty one.
type client struct {
	appID string
	ip    string
	label *string
}

// ruleMatches is GrayReleaseRuleItemDTO.matches over a rule's items:
// clientAppId equal ignoring case AND (ip listed or "*", OR label listed or "*").
func ruleMatches(items []GrayRuleItem, c client) bool {
	for _, it := range items {
		if !strings.EqualFold(it.ClientAppID, c.appID) {
			continue
		}
		if contains(it.ClientIPList, "*") || contains(it.ClientIPList, c.ip) {
			return true
		}
		if contains(it.ClientLabelList, "*") || (c.label != nil && contains(it.ClientLabelList, *c.label)) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ---- ordered string map (Apollo keeps item order in release JSON) ----

type orderedMap struct {
	keys []string
	m    map[string]string
}

func (o *orderedMap) set(k, v string) {
	if o.m == nil {
		o.m = map[string]string{}
	}
	if _, ok := o.m[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.m[k] = v
}

func (o *orderedMap) get(k string) (string, bool) {
	v, ok := o.m[k]
	return v, ok
}

func (o *orderedMap) del(k string) {
	if _, ok := o.m[k]; !ok {
		return
	}
	delete(o.m, k)
	for i, kk := range o.keys {
		if kk == k {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

func (o orderedMap) len() int { return len(o.keys) }

func (o orderedMap) clone() orderedMap {
	var c orderedMap
	for _, k := range o.keys {
		c.set(k, o.m[k])
	}
	return c
}

func (o orderedMap) equal(p orderedMap) bool {
	if len(o.keys) != len(p.keys) {
		return false
	}
	for k, v := range o.m {
		if pv, ok := p.m[k]; !ok || pv != v {
			return false
		}
	}
	return true
}

func (o orderedMap) toMap() map[string]string {
	m := make(map[string]string, len(o.keys))
	for k, v := range o.m {
		m[k] = v
	}
	return m
}

// merge is ReleaseService.mergeConfiguration: base, then cover on top.
func merge(base, cover orderedMap) orderedMap {
	out := base.clone()
	for _, k := range cover.keys {
		out.set(k, cover.m[k])
	}
	return out
}

func (o orderedMap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(o.m[k])
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func utf16Units(s string) []uint16 { return utf16.Encode([]rune(s)) }
