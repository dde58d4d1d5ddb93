package apolloserver

// This file ports the write path of Apollo's admin service (ItemController,
// ReleaseController, NamespaceBranchController and the biz ReleaseService /
// NamespaceBranchService). Errors raised here are marked admin(): the portal
// relays them with a Double status.

// GrayRuleItem is one gray release rule item (GrayReleaseRuleItemDTO). A
// client matches when ClientAppID equals its appId ignoring case AND its IP is
// in ClientIPList OR its label is in ClientLabelList; "*" matches everything.
type GrayRuleItem struct {
	ClientAppID     string   `json:"clientAppId"`
	ClientIPList    []string `json:"clientIpList"`
	ClientLabelList []string `json:"clientLabelList"`
}

func cloneRuleItems(items []GrayRuleItem) []GrayRuleItem {
	out := make([]GrayRuleItem, len(items))
	for i, it := range items {
		out[i] = GrayRuleItem{
			ClientAppID:     it.ClientAppID,
			ClientIPList:    append([]string{}, it.ClientIPList...),
			ClientLabelList: append([]string{}, it.ClientLabelList...),
		}
	}
	return out
}

// ---- items ----

type itemInput struct {
	key, value, comment string
	typ                 int
	operator            string
}

func (st *state) requireNamespace(appID, cluster, ns string) (*nsRec, *apiError) {
	n := st.namespace(appID, cluster, ns)
	if n == nil {
		return nil, notFound("namespace not found for appId:%s clusterName:%s namespaceName:%s", appID, cluster, ns).admin()
	}
	return n, nil
}

func (st *state) loadItem(appID, cluster, ns, key string) (*nsRec, *itemRec, *apiError) {
	n, err := st.requireNamespace(appID, cluster, ns)
	if err != nil {
		return nil, nil, err
	}
	it := n.item(key)
	if it == nil {
		return n, nil, notFound("item not found for appId:%s clusterName:%s namespaceName:%s itemKey:%s", appID, cluster, ns, key).admin()
	}
	return n, it, nil
}

// valueLimitFor is ItemService.checkItemValueLength's limit: a gray namespace
// gets the larger of its own and its parent's limit, which are both the
// global limit here (no per-namespace overrides).
func (st *state) valueLimitFor(*nsRec) int { return st.valueLimit }

func (st *state) checkItem(n *nsRec, key *string, value string, typ int) *apiError {
	if key != nil && *key != "" && javaLen(*key) > st.keyLimit {
		return badRequest("key too long. length limit:%d", st.keyLimit).admin()
	}
	if typ < 0 || typ > 3 {
		return badRequest("type is invalid. type should be in [0, 3]. ").admin()
	}
	if limit := st.valueLimitFor(n); value != "" && javaLen(value) > limit {
		return badRequest("value too long. length limit:%d", limit).admin()
	}
	return nil
}

func (st *state) createItem(n *nsRec, in itemInput) (*itemRec, *apiError) {
	if n.item(in.key) != nil {
		return nil, badRequest("item already exists for itemKey:%s", in.key).admin()
	}
	if err := st.checkItem(n, &in.key, in.value, in.typ); err != nil {
		return nil, err
	}
	return st.appendItem(n, in), nil
}

func (st *state) appendItem(n *nsRec, in itemInput) *itemRec {
	line := 1
	for _, it := range n.items {
		if it.lineNum >= line {
			line = it.lineNum + 1
		}
	}
	st.seqItem++
	now := st.now()
	it := &itemRec{
		id: st.seqItem, key: in.key, value: in.value, comment: in.comment, typ: in.typ, lineNum: line,
		createdBy: in.operator, modifiedBy: in.operator, created: now, modified: now,
	}
	n.items = append(n.items, it)
	return it
}

func (st *state) updateItem(n *nsRec, it *itemRec, in itemInput) *apiError {
	if err := st.checkItem(n, nil, in.value, in.typ); err != nil {
		return err
	}
	it.value, it.comment, it.typ, it.modifiedBy, it.modified = in.value, in.comment, in.typ, in.operator, st.now()
	return nil
}

func (st *state) deleteItem(n *nsRec, it *itemRec) {
	for i, x := range n.items {
		if x == it {
			n.items = append(n.items[:i:i], n.items[i+1:]...)
			return
		}
	}
}

// modifiedCount is NamespaceBO.itemModifiedCnt: items whose value differs from
// the latest release, plus released keys that were deleted.
func (st *state) modifiedCount(n *nsRec) int {
	var released orderedMap
	if r := st.latestActiveRelease(n.appID, n.cluster, n.name); r != nil {
		released = r.configs
	}
	cnt := 0
	keys := map[string]bool{}
	for _, it := range n.items {
		keys[it.key] = true
		if it.key == "" {
			continue
		}
		if v, ok := released.get(it.key); !ok || v != it.value {
			cnt++
		}
	}
	for _, k := range released.keys {
		if !keys[k] {
			cnt++
		}
	}
	return cnt
}

// ---- releases ----

func (st *state) masterRelease(n *nsRec, name, comment string, configs orderedMap, operator string, op int, ctx map[string]any) *releaseRec {
	var prevID int64
	if prev := st.latestActiveRelease(n.appID, n.cluster, n.name); prev != nil {
		prevID = prev.id
	}
	r := st.createRelease(n, name, comment, configs, operator)
	st.history(n.appID, n.cluster, n.name, n.cluster, r.id, prevID, op, ctx, operator)
	return r
}

// publish is admin ReleaseController.publish / gray-del-releases: release the
// namespace (a branch namespace gets a gray release) and send the release
// message on the master cluster's key.
func (st *state) publish(n *nsRec, name, comment, operator string, grayDel bool, grayDelKeys []string) (*releaseRec, *apiError) {
	items := n.configs()
	parent := st.parentNamespace(n)
	var r *releaseRec
	switch {
	case parent != nil:
		r = st.publishBranch(parent, n, items, name, comment, operator, grayDelKeys)
	case grayDel:
		return nil, notFound("Parent namespace not found").admin()
	default:
		child := st.childNamespace(n.appID, n.cluster, n.name)
		var prev *releaseRec
		if child != nil {
			prev = st.latestActiveRelease(n.appID, n.cluster, n.name)
		}
		r = st.masterRelease(n, name, comment, items, operator, OpNormalRelease, map[string]any{"isEmergencyPublish": false})
		if child != nil {
			st.mergeFromMasterAndPublishBranch(n, child, items, name, comment, operator, prev, r)
		}
	}
	msgCluster := n.cluster
	if parent != nil {
		msgCluster = parent.cluster
	}
	st.sendMessage(n.appID, msgCluster, n.name)
	return r, nil
}

func (st *state) publishBranch(parent, child *nsRec, childItems orderedMap, name, comment, operator string, grayDelKeys []string) *releaseRec {
	var parentConfigs orderedMap
	var baseID int64
	if pl := st.latestActiveRelease(parent.appID, parent.cluster, parent.name); pl != nil {
		parentConfigs, baseID = pl.configs, pl.id
	}
	configs := merge(parentConfigs, childItems)
	for _, k := range grayDelKeys {
		configs.del(k)
	}
	keys := append([]string{}, childItems.keys...)
	return st.branchRelease(parent, child, name, comment, configs, baseID, operator, OpGrayRelease, keys)
}

func (st *state) branchRelease(parent, child *nsRec, name, comment string, configs orderedMap, baseID int64, operator string, op int, branchKeys []string) *releaseRec {
	var prevID int64
	if prev := st.latestActiveRelease(child.appID, child.cluster, child.name); prev != nil {
		prevID = prev.id
	}
	r := st.createRelease(child, name, comment, configs, operator)
	r.branchKeys = branchKeys
	ctx := map[string]any{"baseReleaseId": baseID, "isEmergencyPublish": false, "branchReleaseKeys": branchKeys}
	if rule := st.updateRulesReleaseID(child.appID, parent.cluster, child.name, child.cluster, r.id, operator); rule != nil {
		ctx["rules"] = cloneRuleItems(rule.items)
	}
	st.history(parent.appID, parent.cluster, parent.name, child.cluster, r.id, prevID, op, ctx, operator)
	return r
}

func (st *state) updateRulesReleaseID(appID, cluster, ns, branch string, releaseID int64, operator string) *ruleRec {
	old := st.currentRule(appID, cluster, ns, branch)
	if old == nil {
		return nil
	}
	now := st.now()
	nr := &ruleRec{appID: old.appID, cluster: old.cluster, ns: old.ns, branch: old.branch,
		items: old.items, releaseID: releaseID, status: branchActive,
		createdBy: operator, modifiedBy: operator, created: now, modified: now}
	st.saveRule(nr)
	return nr
}

func (st *state) mergeFromMasterAndPublishBranch(parent, child *nsRec, parentItems orderedMap, name, comment, operator string, masterPrev, parentRelease *releaseRec) {
	var childConf orderedMap
	var branchKeys []string
	if cl := st.latestActiveRelease(child.appID, child.cluster, child.name); cl != nil {
		childConf, branchKeys = cl.configs, cl.branchKeys
	}
	var parentOld *orderedMap
	if masterPrev != nil {
		parentOld = &masterPrev.configs
	}
	toPublish := calculateChildConfig(parentOld, parentItems, childConf, branchKeys)
	if !toPublish.equal(childConf) {
		st.branchRelease(parent, child, name, comment, toPublish, parentRelease.id, operator, OpMasterNormalReleaseMergeGray, branchKeys)
	}
}

// calculateChildConfig is ReleaseService.calculateChildNamespaceToPublishConfiguration.
func calculateChildConfig(parentOld *orderedMap, parentNew, childLatest orderedMap, branchKeys []string) orderedMap {
	var modified orderedMap
	switch {
	case childLatest.len() == 0:
	case branchKeys != nil:
		for _, k := range branchKeys {
			if v, ok := childLatest.get(k); ok {
				modified.set(k, v)
			}
		}
	case parentOld == nil || parentOld.len() == 0:
		modified = childLatest.clone()
	default:
		for _, k := range childLatest.keys {
			v := childLatest.m[k]
			if ov, ok := parentOld.get(k); !ok || ov != v {
				modified.set(k, v)
			}
		}
	}
	return merge(parentNew, modified)
}

// rollback is ReleaseService.rollback plus the controller's release message
// (sent on the release's own cluster).
func (st *state) rollback(releaseID int64, operator string) (*releaseRec, *apiError) {
	r := st.releaseID[releaseID]
	if r == nil || r.deleted {
		return nil, notFound("release not found").admin()
	}
	if r.abandoned {
		return nil, badRequest("release is not active").admin()
	}
	two := st.activeReleases(r.appID, r.cluster, r.ns)
	if len(two) < 2 {
		return nil, badRequest("Can't rollback namespace(appId=%s, clusterName=%s, namespaceName=%s) because there is only one active release", r.appID, r.cluster, r.ns).admin()
	}
	two = two[:2]
	r.abandoned, r.modifiedBy, r.modified = true, operator, st.now()
	st.history(r.appID, r.cluster, r.ns, r.cluster, two[1].id, r.id, OpRollback, nil, operator)
	st.rollbackChild(r.appID, r.cluster, r.ns, two, operator)
	st.sendMessage(r.appID, r.cluster, r.ns)
	return r, nil
}

func (st *state) rollbackChild(appID, cluster, ns string, two []*releaseRec, operator string) {
	parent := st.namespace(appID, cluster, ns)
	child := st.childNamespace(appID, cluster, ns)
	if parent == nil || child == nil {
		return
	}
	var childConf orderedMap
	var branchKeys []string
	if cl := st.latestActiveRelease(child.appID, child.cluster, child.name); cl != nil {
		childConf, branchKeys = cl.configs, cl.branchKeys
	}
	abandoned, newLatest := two[0], two[1]
	toPublish := calculateChildConfig(&abandoned.configs, newLatest.configs, childConf, branchKeys)
	if !toPublish.equal(childConf) {
		name := st.now().Format("20060102150405") + "-master-rollback-merge-to-gray"
		st.branchRelease(parent, child, name, "", toPublish, newLatest.id, operator, OpMasterRollbackMergeToGray, branchKeys)
	}
}

// ---- branches ----

func (st *state) checkNamespace(appID, cluster, ns string) *apiError {
	if st.namespace(appID, cluster, ns) == nil {
		return badRequest("Namespace not exist. AppId = %s, ClusterName = %s, NamespaceName = %s", appID, cluster, ns).admin()
	}
	return nil
}

func (st *state) checkBranch(appID, cluster, ns, branch string) *apiError {
	if err := st.checkNamespace(appID, cluster, ns); err != nil {
		return err
	}
	if st.namespace(appID, branch, ns) == nil {
		return badRequest("Namespace's branch not exist. AppId = %s, ClusterName = %s, NamespaceName = %s, BranchName = %s", appID, cluster, ns, branch).admin()
	}
	return nil
}

func (st *state) createBranch(appID, cluster, ns, operator string) (*nsRec, *apiError) {
	if err := st.checkNamespace(appID, cluster, ns); err != nil {
		return nil, err
	}
	if st.childNamespace(appID, cluster, ns) != nil {
		return nil, badRequest("namespace already has branch").admin()
	}
	pc := st.cluster(appID, cluster)
	if pc == nil || pc.parent != "" {
		return nil, badRequest("cluster not exist or illegal cluster").admin()
	}
	now := st.now()
	c := &clusterRec{appID: appID, name: st.uniqueKey(appID, cluster, ns), parent: cluster, created: now, createdBy: operator}
	a := st.apps[appID]
	a.clusters = append(a.clusters, c)
	st.seqNamespace++
	n := &nsRec{id: st.seqNamespace, appID: appID, cluster: c.name, name: ns, created: now, createdBy: operator}
	c.namespaces = append(c.namespaces, n)
	return n, nil
}

func (st *state) updateBranchRules(appID, cluster, ns, branch string, items []GrayRuleItem, operator string) *apiError {
	if err := st.checkBranch(appID, cluster, ns, branch); err != nil {
		return err
	}
	st.doUpdateRules(appID, cluster, ns, branch, items, branchActive, operator, true)
	st.sendMessage(appID, cluster, ns)
	return nil
}

func (st *state) doUpdateRules(appID, cluster, ns, branch string, items []GrayRuleItem, status int, operator string, record bool) {
	old := st.currentRule(appID, cluster, ns, branch)
	var latestID int64
	if lr := st.latestActiveRelease(appID, branch, ns); lr != nil {
		latestID = lr.id
	}
	now := st.now()
	nr := &ruleRec{appID: appID, cluster: cluster, ns: ns, branch: branch, items: cloneRuleItems(items),
		releaseID: latestID, status: status, createdBy: operator, modifiedBy: operator, created: now, modified: now}
	st.saveRule(nr)
	if record {
		ctx := map[string]any{"rules": cloneRuleItems(items)}
		if old != nil {
			ctx["oldRules"] = cloneRuleItems(old.items)
		}
		st.history(appID, cluster, ns, branch, latestID, latestID, OpApplyGrayRules, ctx, operator)
	}
}

// deleteBranch is NamespaceBranchService.deleteBranch (the caller sends the
// release message on the master key).
func (st *state) deleteBranch(appID, cluster, ns, branch string, status int, operator string) {
	c := st.cluster(appID, branch)
	if c == nil {
		return
	}
	var latestID int64
	if lr := st.latestActiveRelease(appID, branch, ns); lr != nil {
		latestID = lr.id
	}
	st.doUpdateRules(appID, cluster, ns, branch, nil, status, operator, false)
	// ClusterService.delete: the branch cluster, its namespaces, their items and releases go.
	for _, n := range c.namespaces {
		for _, r := range st.releases[tripleKey(n.appID, n.cluster, n.name)] {
			r.deleted = true
		}
	}
	a := st.apps[appID]
	for i, x := range a.clusters {
		if x == c {
			a.clusters = append(a.clusters[:i:i], a.clusters[i+1:]...)
			break
		}
	}
	op := OpAbandonGrayRelease
	if status == branchMerged {
		op = OpGrayReleaseDeletedAfterMerge
	}
	st.history(appID, cluster, ns, branch, latestID, latestID, op, nil, operator)
}

// merge is portal NamespaceBranchService.merge + admin updateAndPublish:
// branch items are copied onto master (creates and updates, never deletes),
// master is published, and the branch optionally deleted.
func (st *state) merge(appID, cluster, ns, branch, title, comment, operator string, deleteBranch bool) (*releaseRec, *apiError) {
	master, err := st.requireNamespace(appID, cluster, ns)
	if err != nil {
		return nil, err
	}
	if st.modifiedCount(master) > 0 {
		return nil, badRequest("Merge operation failed. Because master has modified items")
	}
	type change struct {
		create bool
		src    *itemRec
		dst    *itemRec
	}
	var changes []change
	if bn := st.namespace(appID, branch, ns); bn != nil {
		for _, bi := range bn.items {
			if bi.key == "" {
				continue
			}
			mi := master.item(bi.key)
			switch {
			case mi == nil:
				changes = append(changes, change{create: true, src: bi})
			case mi.value != bi.value:
				changes = append(changes, change{src: bi, dst: mi})
			}
		}
	}
	for _, c := range changes {
		k := c.src.key
		if err := st.checkItem(master, &k, c.src.value, c.src.typ); err != nil {
			return nil, err
		}
	}
	for _, c := range changes {
		in := itemInput{key: c.src.key, value: c.src.value, comment: c.src.comment, typ: c.src.typ, operator: operator}
		if c.create {
			st.appendItem(master, in)
		} else {
			c.dst.value, c.dst.comment, c.dst.modifiedBy, c.dst.modified = in.value, in.comment, operator, st.now()
		}
	}
	var branchReleaseID int64
	if br := st.latestActiveRelease(appID, branch, ns); br != nil {
		branchReleaseID = br.id
	}
	ctx := map[string]any{"sourceBranch": branch, "baseReleaseId": branchReleaseID, "isEmergencyPublish": false}
	r := st.masterRelease(master, title, comment, master.configs(), operator, OpGrayReleaseMergeToMaster, ctx)
	if deleteBranch {
		st.deleteBranch(appID, cluster, ns, branch, branchMerged, operator)
	}
	st.sendMessage(appID, cluster, ns)
	return r, nil
}
