// Open API: items (create, update with createIfNotExists, delete, get,
// paged list).

package apolloserver

import (
	"net/http"
)

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
