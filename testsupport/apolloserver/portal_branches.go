// Open API: gray branches (create, get, delete, rules, merge).

package apolloserver

import (
	"encoding/json"
	"net/http"
)

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
