// Open API: apps, env clusters, clusters and namespaces (read only).

package apolloserver

import (
	"strings"
)

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
