package openapi

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
)

// Item is one key of a namespace (or of a gray branch) as the portal holds
// it: the value being edited, which may differ from the released one.
type Item struct {
	Key          string `json:"key"`
	Value        string `json:"value"`
	Comment      string `json:"comment,omitempty"`
	CreatedBy    string `json:"dataChangeCreatedBy,omitempty"`
	ModifiedBy   string `json:"dataChangeLastModifiedBy,omitempty"`
	CreatedTime  string `json:"dataChangeCreatedTime,omitempty"`
	ModifiedTime string `json:"dataChangeLastModifiedTime,omitempty"`
}

// NamespaceInfo is a namespace (or a gray branch) with its items. Like the
// portal's namespace page, Items also lists keys that are released but
// deleted since (they carry no CreatedBy).
type NamespaceInfo struct {
	AppID     string `json:"appId"`
	Cluster   string `json:"clusterName"`
	Namespace string `json:"namespaceName"`
	Format    string `json:"format"`
	IsPublic  bool   `json:"isPublic"`
	Items     []Item `json:"items"`
}

// Release is a release of a namespace (ClusterName is the branch name for
// a gray release).
type Release struct {
	ID             int64             `json:"id"`
	AppID          string            `json:"appId"`
	Cluster        string            `json:"clusterName"`
	Namespace      string            `json:"namespaceName"`
	Title          string            `json:"name"`
	Comment        string            `json:"comment"`
	Configurations map[string]string `json:"configurations"`
	CreatedBy      string            `json:"dataChangeCreatedBy"`
	CreatedTime    string            `json:"dataChangeCreatedTime"`
}

// ReleaseRequest titles a release; the client's Operator releases it.
type ReleaseRequest struct {
	Title   string
	Comment string
}

type releaseBody struct {
	ReleaseTitle   string    `json:"releaseTitle"`
	ReleaseComment string    `json:"releaseComment,omitempty"`
	ReleasedBy     string    `json:"releasedBy"`
	GrayDelKeys    *[]string `json:"grayDelKeys,omitempty"`
}

func (c *Client) releaseBody(r ReleaseRequest) releaseBody {
	return releaseBody{ReleaseTitle: r.Title, ReleaseComment: r.Comment, ReleasedBy: c.operator}
}

// GrayRule selects the clients of a gray branch: those whose appId is
// ClientAppID and whose IP is in ClientIPList or whose label is in
// ClientLabelList ("*" matches every IP or label).
type GrayRule struct {
	ClientAppID     string   `json:"clientAppId"`
	ClientIPList    []string `json:"clientIpList"`
	ClientLabelList []string `json:"clientLabelList"`
}

// Namespace returns the namespace with its items.
func (c *Client) Namespace(ctx context.Context, ns Namespace) (NamespaceInfo, error) {
	var out NamespaceInfo
	_, err := c.do(ctx, "GET", c.path(ns), nil, nil, &out)
	return out, err
}

// Item returns one item (an error matching ErrNotFound if there is none).
func (c *Client) Item(ctx context.Context, ns Namespace, key string) (Item, error) {
	var out Item
	_, err := c.do(ctx, "GET", c.path(ns, "items", key), nil, nil, &out)
	return out, err
}

// Items returns every item of the namespace (only real items: no released
// but deleted keys), reading all pages.
func (c *Client) Items(ctx context.Context, ns Namespace) ([]Item, error) {
	const size = 50
	var all []Item
	for page := 0; ; page++ {
		var out struct {
			Total   int    `json:"total"`
			Content []Item `json:"content"`
		}
		q := url.Values{"page": {strconv.Itoa(page)}, "size": {strconv.Itoa(size)}}
		if _, err := c.do(ctx, "GET", c.path(ns, "items"), q, nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Content...)
		if len(out.Content) < size || len(all) >= out.Total {
			return all, nil
		}
	}
}

// CreateItem creates an item (400 if it exists).
func (c *Client) CreateItem(ctx context.Context, ns Namespace, it Item) error {
	body := map[string]any{"key": it.Key, "value": it.Value, "dataChangeCreatedBy": c.operator}
	if it.Comment != "" {
		body["comment"] = it.Comment
	}
	_, err := c.do(ctx, "POST", c.path(ns, "items"), nil, body, nil)
	return err
}

// UpdateItem sets an item's value and comment; with createIfNotExists a
// missing item is created (otherwise it is a 404).
func (c *Client) UpdateItem(ctx context.Context, ns Namespace, it Item, createIfNotExists bool) error {
	body := map[string]any{"key": it.Key, "value": it.Value, "dataChangeLastModifiedBy": c.operator}
	if it.Comment != "" {
		body["comment"] = it.Comment
	}
	var q url.Values
	if createIfNotExists {
		body["dataChangeCreatedBy"] = c.operator
		q = url.Values{"createIfNotExists": {"true"}}
	}
	_, err := c.do(ctx, "PUT", c.path(ns, "items", it.Key), q, body, nil)
	return err
}

// DeleteItem deletes an item (a 404 if there is none).
func (c *Client) DeleteItem(ctx context.Context, ns Namespace, key string) error {
	_, err := c.do(ctx, "DELETE", c.path(ns, "items", key), url.Values{"operator": {c.operator}}, nil, nil)
	return err
}

// Publish releases the namespace's current items (the whole namespace: every
// key, whoever edited it).
func (c *Client) Publish(ctx context.Context, ns Namespace, r ReleaseRequest) (Release, error) {
	var out Release
	_, err := c.do(ctx, "POST", c.path(ns, "releases"), nil, c.releaseBody(r), &out)
	return out, err
}

// LatestRelease returns the namespace's latest active release; ok is false
// when it was never released.
func (c *Client) LatestRelease(ctx context.Context, ns Namespace) (rel Release, ok bool, err error) {
	ok, err = c.do(ctx, "GET", c.path(ns, "releases", "latest"), nil, nil, &rel)
	return rel, ok && err == nil, err
}

// Rollback abandons a release, making the previous one current.
func (c *Client) Rollback(ctx context.Context, releaseID int64) error {
	p := "/envs/" + url.PathEscape(c.env) + "/releases/" + strconv.FormatInt(releaseID, 10) + "/rollback"
	_, err := c.do(ctx, "PUT", p, url.Values{"operator": {c.operator}}, nil, nil)
	return err
}

// CreateBranch creates the namespace's gray branch and returns its name.
// Apollo allows one branch per namespace; it needs an app-level grant.
func (c *Client) CreateBranch(ctx context.Context, ns Namespace) (string, error) {
	var out NamespaceInfo
	if _, err := c.do(ctx, "POST", c.path(ns, "branches"), url.Values{"operator": {c.operator}}, nil, &out); err != nil {
		return "", err
	}
	if out.Cluster == "" {
		return "", fmt.Errorf("apollo open api: create branch of %s: the answer names no branch", ns)
	}
	return out.Cluster, nil
}

// Branch returns the namespace's gray branch with its items; ok is false
// when it has none.
func (c *Client) Branch(ctx context.Context, ns Namespace) (b NamespaceInfo, ok bool, err error) {
	ok, err = c.do(ctx, "GET", c.path(ns, "branches"), nil, nil, &b)
	return b, ok && err == nil, err
}

// DeleteBranch abandons the gray branch: its items and rules are dropped and
// its clients go back to the master release.
func (c *Client) DeleteBranch(ctx context.Context, ns Namespace, branch string) error {
	_, err := c.do(ctx, "DELETE", c.path(ns, "branches", branch), url.Values{"operator": {c.operator}}, nil, nil)
	return err
}

// GrayRules returns the branch's rules; ok is false when it has none.
func (c *Client) GrayRules(ctx context.Context, ns Namespace, branch string) (rules []GrayRule, ok bool, err error) {
	var out struct {
		RuleItems []GrayRule `json:"ruleItems"`
	}
	ok, err = c.do(ctx, "GET", c.path(ns, "branches", branch, "rules"), nil, nil, &out)
	return out.RuleItems, ok && err == nil, err
}

// SetGrayRules replaces the branch's rules. Both lists of every rule are
// always sent (an empty list, never null). Rules take effect once the
// branch has a gray release.
func (c *Client) SetGrayRules(ctx context.Context, ns Namespace, branch string, rules ...GrayRule) error {
	items := make([]GrayRule, 0, len(rules))
	for _, r := range rules {
		if r.ClientAppID == "" {
			r.ClientAppID = ns.AppID
		}
		if r.ClientIPList == nil {
			r.ClientIPList = []string{}
		}
		if r.ClientLabelList == nil {
			r.ClientLabelList = []string{}
		}
		items = append(items, r)
	}
	body := map[string]any{"appId": ns.AppID, "clusterName": ns.Cluster, "namespaceName": ns.Name, "branchName": branch, "ruleItems": items}
	_, err := c.do(ctx, "PUT", c.path(ns, "branches", branch, "rules"), url.Values{"operator": {c.operator}}, body, nil)
	return err
}

// GrayPublish releases the branch: its clients get master's latest release
// with the branch's items on top.
func (c *Client) GrayPublish(ctx context.Context, ns Namespace, branch string, r ReleaseRequest) (Release, error) {
	var out Release
	_, err := c.do(ctx, "POST", c.path(ns, "branches", branch, "releases"), nil, c.releaseBody(r), &out)
	return out, err
}

// GrayDelPublish releases the branch with deleteKeys removed from what its
// clients see.
func (c *Client) GrayDelPublish(ctx context.Context, ns Namespace, branch string, r ReleaseRequest, deleteKeys []string) (Release, error) {
	body := c.releaseBody(r)
	keys := append([]string{}, deleteKeys...)
	body.GrayDelKeys = &keys
	var out Release
	_, err := c.do(ctx, "POST", c.path(ns, "branches", branch, "gray-del-releases"), nil, body, &out)
	return out, err
}

// Merge copies the branch's items onto master and publishes master (the
// returned release); with deleteBranch the branch is deleted too. Apollo
// refuses while master has unpublished changes.
func (c *Client) Merge(ctx context.Context, ns Namespace, branch string, r ReleaseRequest, deleteBranch bool) (Release, error) {
	var out Release
	q := url.Values{"deleteBranch": {strconv.FormatBool(deleteBranch)}}
	_, err := c.do(ctx, "POST", c.path(ns, "branches", branch, "merge"), q, c.releaseBody(r), &out)
	return out, err
}
