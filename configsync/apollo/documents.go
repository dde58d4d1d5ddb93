package apollo

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/apollo/openapi"
	"github.com/graylane/graylane/internal/logx"
)

// ContentKey is the item that holds the whole content of a yaml, yml,
// json, xml or txt namespace.
const ContentKey = "content"

// DocumentsConfig configures Documents. Portal, Token and ConfigService
// are required.
type DocumentsConfig struct {
	// Portal is the portal URL for the Open API (writes).
	Portal string
	// Token is an Open API token granted on the apps whose namespaces are
	// written; gray copies need an app-level grant (branches).
	Token string
	// Env is the portal environment (DefaultEnv).
	Env string
	// Operator is the Apollo user named by writes (DefaultOperator).
	Operator string
	// ConfigService is the config service (or meta server, which the
	// standard deployment embeds in it) that reads go to, as Apollo's
	// clients read: what a client with a label sees is what counts.
	ConfigService string
	// Secrets holds access-key secrets of apps that have one, by appId.
	Secrets map[string]string
	// RequestTimeout bounds one request (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// TLS configures HTTPS to the portal and config service (the CA to
	// trust, a client certificate); nil uses the system roots.
	TLS *tls.Config
	// Logger defaults to discarding (logx.OrDiscard).
	Logger *slog.Logger
}

// Documents reads and writes documents at arbitrary Apollo locations
// (configsync.Documents), and version-bound copies selected by client label
// through gray branches (WriteGray, ReadGray, DeleteGray: configrelease's
// GrayDocuments).
//
// A location is an app, cluster ("default" when empty) and namespace.
// With a Key, the document is that item of a properties namespace; without
// one, it is the content of a yaml, yml, json, xml or txt namespace (its
// "content" item). Namespaces must exist (Apollo's Open API does not create
// them): create them in the portal with the right format.
//
// Read returns the latest release (Open API); ReadBack and ReadGray read
// the config service as a client would. Write sets the item and publishes
// the namespace. Apollo has no compare-and-swap: expect is checked against
// the latest release just before writing, and writes of one Documents are
// serialised per namespace (best effort, last write wins against portal
// users). Write refuses (ErrConflict) to publish over other items'
// unpublished edits, since Apollo releases a whole namespace. Version is
// the MD5 of the released value.
type Documents struct {
	cfg  DocumentsConfig
	api  *openapi.Client
	http *http.Client
	log  *slog.Logger
	base string

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// Interface guard.
var _ configsync.Documents = (*Documents)(nil)

// NewDocuments returns Documents for one portal and config service.
func NewDocuments(cfg DocumentsConfig) (*Documents, error) {
	if cfg.Portal == "" || cfg.Token == "" {
		return nil, errors.New("apollo documents: a portal URL and an Open API token are required")
	}
	if cfg.ConfigService == "" {
		return nil, errors.New("apollo documents: a config service (or meta server) URL is required: writes are read back as clients see them")
	}
	u, err := url.Parse(cfg.ConfigService)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("apollo documents: config service URL %q is not an http(s) URL", cfg.ConfigService)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if cfg.Env == "" {
		cfg.Env = DefaultEnv
	}
	if cfg.Operator == "" {
		cfg.Operator = DefaultOperator
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	hc := httpClient(cfg.TLS)
	api, err := openapi.New(openapi.Config{PortalURL: cfg.Portal, Token: cfg.Token, Env: cfg.Env, Operator: cfg.Operator, Timeout: cfg.RequestTimeout, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	return &Documents{cfg: cfg, api: api, http: hc, log: logx.OrDiscard(cfg.Logger).With("centre", "apollo"), base: u.String(), locks: map[string]*sync.Mutex{}}, nil
}

// Centre returns "apollo".
func (d *Documents) Centre() string { return "apollo" }

// target is a location resolved to a namespace and an item key.
type target struct {
	ns  openapi.Namespace
	key string
}

func (d *Documents) target(loc configsync.Location) (target, error) {
	if err := configsync.CheckLocation("apollo", loc); err != nil {
		return target{}, err
	}
	cluster := loc.Cluster
	if cluster == "" {
		cluster = DefaultCluster
	}
	t := target{ns: openapi.Namespace{AppID: loc.AppID, Cluster: cluster, Name: loc.Namespace}, key: loc.Key}
	if t.key == "" {
		switch strings.ToLower(path.Ext(loc.Namespace)) {
		case ".yaml", ".yml", ".json", ".xml", ".txt":
			t.key = ContentKey
		default:
			return target{}, fmt.Errorf("apollo location %s: %s is a properties namespace: name an item with key, or use a yaml/json namespace", loc, loc.Namespace)
		}
	}
	return t, nil
}

func (d *Documents) lock(ns openapi.Namespace) func() {
	d.mu.Lock()
	l := d.locks[ns.String()]
	if l == nil {
		l = &sync.Mutex{}
		d.locks[ns.String()] = l
	}
	d.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Read implements configsync.Documents: the latest release's value.
func (d *Documents) Read(ctx context.Context, loc configsync.Location) (configsync.Doc, error) {
	t, err := d.target(loc)
	if err != nil {
		return configsync.Doc{}, err
	}
	rel, ok, err := d.api.LatestRelease(ctx, t.ns)
	if err != nil {
		return configsync.Doc{}, d.apiErr("read", loc, err)
	}
	v, has := rel.Configurations[t.key]
	if !ok || !has {
		return configsync.Doc{}, fmt.Errorf("apollo %s: item %s is not released: %w", loc, t.key, configsync.ErrNotFound)
	}
	return configsync.Doc{Data: []byte(v), Version: versionOf(v)}, nil
}

// Write implements configsync.Documents: set the item, publish the
// namespace.
func (d *Documents) Write(ctx context.Context, loc configsync.Location, data []byte, expect string) (configsync.Doc, error) {
	t, err := d.target(loc)
	if err != nil {
		return configsync.Doc{}, err
	}
	value := string(data)
	if n := javaLen(value); n > MaxValueLength {
		return configsync.Doc{}, fmt.Errorf("apollo %s: %d characters, over Apollo's item value limit of %d", loc, n, MaxValueLength)
	}
	if value == "" {
		return configsync.Doc{}, fmt.Errorf("apollo %s: an empty document cannot be told from a missing one", loc)
	}
	unlock := d.lock(t.ns)
	defer unlock()
	released, items, err := d.current(ctx, t.ns, loc)
	if err != nil {
		return configsync.Doc{}, err
	}
	old, exists := released[t.key]
	if err := checkExpect(expect, old, exists); err != nil {
		return configsync.Doc{}, fmt.Errorf("apollo %s: %w", loc, err)
	}
	doc := configsync.Doc{Data: append([]byte(nil), data...), Version: versionOf(value)}
	if exists && old == value {
		return doc, nil
	}
	if err := pendingOthers(released, items, t.key, loc); err != nil {
		return configsync.Doc{}, err
	}
	prev, had := items[t.key]
	if err := d.api.UpdateItem(ctx, t.ns, openapi.Item{Key: t.key, Value: value, Comment: "written by graylane"}, true); err != nil {
		return configsync.Doc{}, d.apiErr("write item "+t.key+" of", loc, err)
	}
	if err := d.publish(ctx, t, loc, func(ctx context.Context) error {
		if !had {
			return d.api.DeleteItem(ctx, t.ns, t.key)
		}
		return d.api.UpdateItem(ctx, t.ns, prev, true)
	}); err != nil {
		return configsync.Doc{}, err
	}
	return doc, nil
}

// Delete implements configsync.Documents: delete the item, publish.
func (d *Documents) Delete(ctx context.Context, loc configsync.Location, expect string) error {
	t, err := d.target(loc)
	if err != nil {
		return err
	}
	unlock := d.lock(t.ns)
	defer unlock()
	released, items, err := d.current(ctx, t.ns, loc)
	if err != nil {
		return err
	}
	old, exists := released[t.key]
	if !exists {
		if _, draft := items[t.key]; draft {
			_ = d.api.DeleteItem(ctx, t.ns, t.key)
		}
		return nil
	}
	if expect != "" && expect != configsync.Absent && versionOf(old) != expect {
		return fmt.Errorf("apollo %s: expected version %s, found %s: %w", loc, expect, versionOf(old), configsync.ErrConflict)
	}
	if err := pendingOthers(released, items, t.key, loc); err != nil {
		return err
	}
	prev, had := items[t.key]
	if had {
		if err := d.api.DeleteItem(ctx, t.ns, t.key); err != nil && !errors.Is(err, openapi.ErrNotFound) {
			return d.apiErr("delete item "+t.key+" of", loc, err)
		}
	}
	return d.publish(ctx, t, loc, func(ctx context.Context) error {
		if !had {
			return nil
		}
		return d.api.UpdateItem(ctx, t.ns, prev, true)
	})
}

// current reads the latest release and the items being edited.
func (d *Documents) current(ctx context.Context, ns openapi.Namespace, loc configsync.Location) (map[string]string, map[string]openapi.Item, error) {
	released := map[string]string{}
	rel, ok, err := d.api.LatestRelease(ctx, ns)
	if err != nil {
		return nil, nil, d.apiErr("read the latest release of", loc, err)
	}
	if ok {
		for k, v := range rel.Configurations {
			released[k] = v
		}
	}
	list, err := d.api.Items(ctx, ns)
	if err != nil {
		return nil, nil, d.apiErr("read the items of", loc, err)
	}
	items := map[string]openapi.Item{}
	for _, it := range list {
		items[it.Key] = it
	}
	return released, items, nil
}

// pendingOthers refuses to publish someone's unfinished edits of other
// items along with ours.
func pendingOthers(released map[string]string, items map[string]openapi.Item, key string, loc configsync.Location) error {
	var keys []string
	for k, v := range released {
		if it, ok := items[k]; k != key && (!ok || it.Value != v) {
			keys = append(keys, k)
		}
	}
	for k := range items {
		if _, ok := released[k]; k != key && !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	return fmt.Errorf("apollo %s: namespace %s has unpublished changes to %s: Apollo releases a whole namespace, so graylane will not publish them; release or revert them in the portal: %w",
		loc, loc.Namespace, strings.Join(keys, ", "), configsync.ErrConflict)
}

// publish releases the namespace; if that fails and did not happen
// anyway, the item is restored so nothing is left modified but unreleased.
func (d *Documents) publish(ctx context.Context, t target, loc configsync.Location, restore func(context.Context) error) error {
	title := "graylane: " + t.ns.Name + " " + t.key
	if len(title) > maxTitle {
		title = title[:maxTitle]
	}
	_, err := d.api.Publish(ctx, t.ns, openapi.ReleaseRequest{Title: title, Comment: "config released by graylane through the Open API"})
	if err == nil {
		return nil
	}
	pubErr := d.apiErr("publish", loc, err)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*d.cfg.RequestTimeout)
	defer cancel()
	if rerr := restore(rctx); rerr != nil {
		return fmt.Errorf("%w; restoring the item also failed (%v): item %s of %s is modified but unreleased, revert it in the portal", pubErr, rerr, t.key, t.ns)
	}
	return fmt.Errorf("%w (the item was restored: nothing changed)", pubErr)
}

// ReadBack reads loc from the config service as a client without a label
// does (configsync.ReadBacker).
func (d *Documents) ReadBack(ctx context.Context, loc configsync.Location) (configsync.Doc, error) {
	t, err := d.target(loc)
	if err != nil {
		return configsync.Doc{}, err
	}
	_, configs, err := d.fetch(ctx, t.ns, "")
	if err != nil {
		return configsync.Doc{}, fmt.Errorf("apollo %s: %w", loc, err)
	}
	v, ok := configs[t.key]
	if !ok {
		return configsync.Doc{}, fmt.Errorf("apollo %s: clients get no item %s: %w", loc, t.key, configsync.ErrNotFound)
	}
	return configsync.Doc{Data: []byte(v), Version: versionOf(v)}, nil
}

// WriteGray makes data the value of the item that clients presenting label
// read: the namespace's gray branch (created if needed) gets the item and
// the rule {clientAppId: appId, clientLabelList: [label]}, then a gray
// release. Apollo allows one branch per namespace, so one label at a time:
// writing another label moves the branch to it.
func (d *Documents) WriteGray(ctx context.Context, loc configsync.Location, label string, data []byte) error {
	t, err := d.target(loc)
	if err != nil {
		return err
	}
	if label == "" {
		return fmt.Errorf("apollo %s: a gray copy needs a label", loc)
	}
	unlock := d.lock(t.ns)
	defer unlock()
	b, ok, err := d.api.Branch(ctx, t.ns)
	if err != nil {
		return d.apiErr("read the gray branch of", loc, err)
	}
	branch := b.Cluster
	if !ok {
		if branch, err = d.api.CreateBranch(ctx, t.ns); err != nil {
			return d.apiErr("create a gray branch of", loc, err)
		}
		d.log.Info("gray branch created", "namespace", t.ns.String(), "branch", branch)
	}
	bns := t.ns.Branch(branch)
	if err := d.api.UpdateItem(ctx, bns, openapi.Item{Key: t.key, Value: string(data), Comment: "version-bound copy for " + label + ", written by graylane"}, true); err != nil {
		return d.apiErr("write gray item "+t.key+" of", loc, err)
	}
	rule := openapi.GrayRule{ClientAppID: t.ns.AppID, ClientIPList: []string{}, ClientLabelList: []string{label}}
	rules, _, err := d.api.GrayRules(ctx, t.ns, branch)
	if err != nil {
		return d.apiErr("read the gray rules of", loc, err)
	}
	if len(rules) != 1 || !strings.EqualFold(rules[0].ClientAppID, rule.ClientAppID) || len(rules[0].ClientIPList) != 0 || !slices.Equal(rules[0].ClientLabelList, rule.ClientLabelList) {
		if err := d.api.SetGrayRules(ctx, t.ns, branch, rule); err != nil {
			return d.apiErr("set the gray rule of", loc, err)
		}
	}
	if _, err := d.api.GrayPublish(ctx, t.ns, branch, openapi.ReleaseRequest{Title: trimTitle("graylane: gray " + label + " " + t.key), Comment: "version-bound config for clients labelled " + label}); err != nil {
		return d.apiErr("gray-publish", loc, err)
	}
	return nil
}

// ReadGray returns what a client presenting label reads at loc, or
// ErrNotFound when no gray branch serves that label.
func (d *Documents) ReadGray(ctx context.Context, loc configsync.Location, label string) (configsync.Doc, error) {
	t, err := d.target(loc)
	if err != nil {
		return configsync.Doc{}, err
	}
	b, ok, err := d.api.Branch(ctx, t.ns)
	if err != nil {
		return configsync.Doc{}, d.apiErr("read the gray branch of", loc, err)
	}
	if !ok {
		return configsync.Doc{}, fmt.Errorf("apollo %s: no gray branch: %w", loc, configsync.ErrNotFound)
	}
	cluster, configs, err := d.fetch(ctx, t.ns, label)
	if err != nil {
		return configsync.Doc{}, fmt.Errorf("apollo %s (label %s): %w", loc, label, err)
	}
	v, has := configs[t.key]
	if cluster != b.Cluster || !has {
		return configsync.Doc{}, fmt.Errorf("apollo %s: clients labelled %s get no gray copy of %s: %w", loc, label, t.key, configsync.ErrNotFound)
	}
	return configsync.Doc{Data: []byte(v), Version: versionOf(v)}, nil
}

// DeleteGray deletes the namespace's gray branch if it serves label (its
// clients go back to the stable release). A branch serving another label
// is left alone.
func (d *Documents) DeleteGray(ctx context.Context, loc configsync.Location, label string) error {
	t, err := d.target(loc)
	if err != nil {
		return err
	}
	unlock := d.lock(t.ns)
	defer unlock()
	b, ok, err := d.api.Branch(ctx, t.ns)
	if err != nil {
		return d.apiErr("read the gray branch of", loc, err)
	}
	if !ok {
		return nil
	}
	rules, _, err := d.api.GrayRules(ctx, t.ns, b.Cluster)
	if err != nil {
		return d.apiErr("read the gray rules of", loc, err)
	}
	for _, r := range rules {
		if !slices.Contains(r.ClientLabelList, label) {
			return nil // another version's copy
		}
	}
	if err := d.api.DeleteBranch(ctx, t.ns, b.Cluster); err != nil && !errors.Is(err, openapi.ErrNotFound) {
		return d.apiErr("delete the gray branch of", loc, err)
	}
	return nil
}

// fetch reads a namespace from the config service as a client presenting
// label does; it returns the cluster (or branch) that answered. A
// namespace never released reads as empty.
func (d *Documents) fetch(ctx context.Context, ns openapi.Namespace, label string) (string, map[string]string, error) {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	q := url.Values{"label": {label}}
	u := d.base + "configs/" + url.PathEscape(ns.AppID) + "/" + url.PathEscape(ns.Cluster) + "/" + url.PathEscape(ns.Name) + "?" + q.Encode()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, u, nil)
	if err != nil {
		return "", nil, err
	}
	if secret := d.cfg.Secrets[ns.AppID]; secret != "" {
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write([]byte(ts + "\n" + req.URL.RequestURI()))
		req.Header.Set("Authorization", "Apollo "+ns.AppID+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		req.Header.Set("Timestamp", ts)
	}
	res, err := d.http.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("config service %s: %w: %w", d.base, configsync.ErrUnavailable, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	switch {
	case res.StatusCode == http.StatusOK:
		var dto struct {
			Cluster        string            `json:"cluster"`
			Configurations map[string]string `json:"configurations"`
		}
		if err := json.Unmarshal(body, &dto); err != nil {
			return "", nil, fmt.Errorf("config service %s: decode answer: %w", d.base, err)
		}
		return dto.Cluster, dto.Configurations, nil
	case res.StatusCode == http.StatusNotFound:
		return "", map[string]string{}, nil
	case res.StatusCode == http.StatusUnauthorized:
		return "", nil, fmt.Errorf("config service %s: %w: %w", d.base, errAccessKey, configsync.ErrUnavailable)
	default:
		return "", nil, fmt.Errorf("config service %s: status %d: %s: %w", d.base, res.StatusCode, clip(body), configsync.ErrUnavailable)
	}
}

// apiErr names the step and location, and explains what an operator can
// fix; unreachable portals and rate limits wrap configsync.ErrUnavailable.
func (d *Documents) apiErr(step string, loc configsync.Location, err error) error {
	switch {
	case errors.Is(err, openapi.ErrUnauthorized):
		return fmt.Errorf("apollo: %s %s: the Open API token is missing, unknown or expired: %w", step, loc, err)
	case errors.Is(err, openapi.ErrForbidden):
		return fmt.Errorf("apollo: %s %s: the Open API token is not granted on app %s (gray copies need an app grant): %w", step, loc, loc.AppID, err)
	case errors.Is(err, openapi.ErrNotFound):
		return fmt.Errorf("apollo: %s %s: the app, cluster or namespace does not exist in env %s: create namespace %s in the portal: %w", step, loc, d.cfg.Env, loc.Namespace, err)
	case errors.Is(err, openapi.ErrRateLimited), errors.Is(err, openapi.ErrUnavailable), errors.Is(err, openapi.ErrServer):
		return fmt.Errorf("apollo: %s %s: %w: %w", step, loc, err, configsync.ErrUnavailable)
	}
	return fmt.Errorf("apollo: %s %s: %w", step, loc, err)
}

func trimTitle(s string) string {
	if len(s) > maxTitle {
		return s[:maxTitle]
	}
	return s
}

// httpClient is the client for graylane's own requests to Apollo: the
// default transport with tc (nil: the system roots).
func httpClient(tc *tls.Config) *http.Client {
	if tc == nil {
		return &http.Client{}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc.Clone()
	return &http.Client{Transport: tr}
}
