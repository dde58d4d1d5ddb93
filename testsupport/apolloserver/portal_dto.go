// Open API DTOs: the JSON shapes of the portal's Open API, as Apollo's
// OpenItemDTO, OpenReleaseDTO, OpenNamespaceDTO and friends.

package apolloserver

import (
	"time"
)

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
