package config

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
	etcdsrc "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/spec"
)

// documentsSource reads etcd or Nacos through a configsync.Documents: the
// copy bound to the identity (key@id, dataId base-id.ext), else the stable
// location.
type documentsSource struct {
	docs   configsync.Documents
	target spec.ConfigTarget

	mu   sync.Mutex
	gray map[string]*grayMemo // file -> the version-bound copy last read
}

// grayMemo remembers a version-bound copy so that one "not found" does not
// flip the instance to the stable file: some servers (Polaris) answer "not
// found" for a dataId being updated. Only a copy missing for grayConfirm
// counts as removed.
type grayMemo struct {
	data    []byte
	missing time.Time
}

const grayConfirm = 3 * time.Second

// FromDocuments reads the files of an etcd or Nacos target through docs
// (configsync/etcd.NewDocuments, configsync/nacos.NewDocuments). The
// target is the release's, e.g. spec.ConfigTarget{Nacos:
// &spec.NacosConfigTarget{Group: "DEFAULT_GROUP", DataID: "{{.App}}-{{.File}}"}}.
func FromDocuments(docs configsync.Documents, target spec.ConfigTarget) Source {
	return &documentsSource{docs: docs, target: target, gray: map[string]*grayMemo{}}
}

// Etcd reads files from etcd keys rendered from keyTemplate, e.g.
// "/config/{{.App}}/{{.File}}".
func Etcd(cli *clientv3.Client, keyTemplate string) Source {
	return FromDocuments(etcdsrc.NewDocuments(cli), spec.ConfigTarget{Etcd: &spec.EtcdConfigTarget{Key: keyTemplate}})
}

func (s *documentsSource) Centre() string { return s.docs.Centre() }

func (s *documentsSource) read(ctx context.Context, loc configsync.Location) (configsync.Doc, error) {
	if rb, ok := s.docs.(configsync.ReadBacker); ok {
		return rb.ReadBack(ctx, loc)
	}
	return s.docs.Read(ctx, loc)
}

func (s *documentsSource) Fetch(ctx context.Context, app string, f File, id string) ([]byte, bool, error) {
	stable, err := configwire.StableLocation(app, &s.target, f.Name)
	if err != nil {
		return nil, false, err
	}
	gray, _ := configwire.GrayLocation(s.docs.Centre(), stable, id)
	doc, err := s.read(ctx, gray)
	s.mu.Lock()
	memo := s.gray[f.Name]
	switch {
	case err == nil:
		s.gray[f.Name] = &grayMemo{data: doc.Data}
		s.mu.Unlock()
		return doc.Data, true, nil
	case !errors.Is(err, configsync.ErrNotFound):
		s.mu.Unlock()
		return nil, false, err
	case memo != nil && memo.missing.IsZero():
		memo.missing = time.Now()
		fallthrough
	case memo != nil && time.Since(memo.missing) < grayConfirm:
		s.mu.Unlock()
		return memo.data, true, nil
	}
	delete(s.gray, f.Name)
	s.mu.Unlock()
	doc, err = s.read(ctx, stable)
	if err != nil {
		return nil, false, err
	}
	return doc.Data, false, nil
}

// ApolloConfig says how to reach Apollo's config service.
type ApolloConfig struct {
	// ConfigService is the config service (or meta server) URL, e.g.
	// http://apollo-config:8080 (apollo.meta / apollo.config-service).
	ConfigService string
	// Secret is the app's access-key secret, if it has one.
	Secret string
	// HTTPClient defaults to one with a 5 s timeout.
	HTTPClient *http.Client
}

// apolloSource reads Apollo's config service as a client whose label is
// the release identity (apollo.label), so a gray branch whose rule lists
// the identity serves it its version-bound copy.
type apolloSource struct {
	cfg    ApolloConfig
	base   string
	target spec.ConfigTarget
}

// Apollo reads the files of an Apollo target, presenting the release
// identity as the client label (what apollo.label=${APP_VERSION} does for
// apollo-client).
func Apollo(cfg ApolloConfig, target spec.ApolloConfigTarget) (Source, error) {
	u, err := url.Parse(cfg.ConfigService)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sdk/config: apollo config service %q is not an http(s) URL", cfg.ConfigService)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	return &apolloSource{cfg: cfg, base: u.String(), target: spec.ConfigTarget{Apollo: &target}}, nil
}

func (s *apolloSource) Centre() string { return "apollo" }

func (s *apolloSource) Fetch(ctx context.Context, app string, f File, id string) ([]byte, bool, error) {
	loc, err := configwire.StableLocation(app, &s.target, f.Name)
	if err != nil {
		return nil, false, err
	}
	key := loc.Key
	if key == "" {
		key = "content"
	}
	q := url.Values{"label": {id}}
	u := s.base + "configs/" + url.PathEscape(loc.AppID) + "/" + url.PathEscape(loc.Cluster) + "/" + url.PathEscape(loc.Namespace) + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, err
	}
	if s.cfg.Secret != "" {
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		mac := hmac.New(sha1.New, []byte(s.cfg.Secret))
		mac.Write([]byte(ts + "\n" + req.URL.RequestURI()))
		req.Header.Set("Authorization", "Apollo "+loc.AppID+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		req.Header.Set("Timestamp", ts)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("apollo %s: %w: %w", loc, configsync.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, false, fmt.Errorf("apollo %s: not released: %w", loc, configsync.ErrNotFound)
	default:
		return nil, false, fmt.Errorf("apollo %s: HTTP %d: %w", loc, resp.StatusCode, configsync.ErrUnavailable)
	}
	var dto struct {
		Cluster        string            `json:"cluster"`
		Configurations map[string]string `json:"configurations"`
	}
	if err := json.Unmarshal(body, &dto); err != nil {
		return nil, false, fmt.Errorf("apollo %s: %w", loc, err)
	}
	v, ok := dto.Configurations[key]
	if !ok {
		return nil, false, fmt.Errorf("apollo %s: no item %s: %w", loc, key, configsync.ErrNotFound)
	}
	gray := dto.Cluster != "" && dto.Cluster != loc.Cluster && dto.Cluster != "default"
	return []byte(v), gray, nil
}
