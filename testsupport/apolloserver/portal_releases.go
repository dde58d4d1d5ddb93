// Open API: releases (create, gray publish, gray-del, latest, active,
// by id, rollback).

package apolloserver

import (
	"fmt"
	"net/http"
	"strconv"
)

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
