package apollo

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
	"sync"
	"time"

	"github.com/graylane/graylane/configsync"
)

// configService reads the release namespace straight from Apollo's config
// service (GET /configs, as agollo does), for the health probe: agollo
// keeps its errors to itself, so this is how an outage is noticed. It
// presents the same ip and label as agollo, so gray rules select it alike.
type configService struct {
	fixed   string // Config.ConfigService, "" to discover through meta
	meta    string
	appID   string
	cluster string
	ns      string
	secret  string
	label   string
	ip      string
	timeout time.Duration
	http    *http.Client

	mu         sync.Mutex
	discovered []string
	next       int
}

// fetched is one answer of the config service.
type fetched struct {
	releaseKey  string
	configs     map[string]string
	notModified bool
}

var (
	// errNotReleased: the config service answered 404 (the namespace does
	// not exist or was never released).
	errNotReleased = errors.New("namespace not found or never released (404)")
	// errAccessKey: the config service refused the access key (401).
	errAccessKey = errors.New("config service refused the access key (401): check the app's secret")
)

// base returns the config service URL to use, discovering it through the
// meta server if needed (falling back to the meta URL itself, which is a
// config service in Apollo's standard deployment).
func (c *configService) base(ctx context.Context) string {
	if c.fixed != "" {
		return c.fixed
	}
	c.mu.Lock()
	if len(c.discovered) > 0 {
		u := c.discovered[c.next%len(c.discovered)]
		c.mu.Unlock()
		return u
	}
	c.mu.Unlock()
	q := url.Values{"appId": {c.appID}, "ip": {c.ip}}
	req, err := http.NewRequestWithContext(ctx, "GET", c.meta+"services/config?"+q.Encode(), nil)
	if err != nil {
		return c.meta
	}
	res, err := c.http.Do(req)
	if err != nil {
		return c.meta
	}
	defer res.Body.Close()
	var services []struct {
		HomepageURL string `json:"homepageUrl"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&services) != nil {
		return c.meta
	}
	var urls []string
	for _, s := range services {
		if u, err := url.Parse(s.HomepageURL); err == nil && u.Host != "" {
			if u.Path == "" || u.Path[len(u.Path)-1] != '/' {
				u.Path += "/"
			}
			urls = append(urls, u.String())
		}
	}
	if len(urls) == 0 {
		return c.meta
	}
	c.mu.Lock()
	c.discovered = urls
	c.mu.Unlock()
	return urls[0]
}

// forget drops the discovered config services after a failure, so the next
// call asks the meta server again (and tries the next one meanwhile).
func (c *configService) forget() {
	c.mu.Lock()
	c.next++
	if c.next >= len(c.discovered) {
		c.discovered, c.next = nil, 0
	}
	c.mu.Unlock()
}

// fetch reads the namespace; with the releaseKey of the previous answer an
// unchanged namespace costs a 304. Errors name the step and wrap
// configsync.ErrUnavailable when Apollo could not be read (unreachable,
// 5xx, 401) and errNotReleased for a 404.
func (c *configService) fetch(ctx context.Context, releaseKey string) (fetched, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	base := c.base(cctx)
	q := url.Values{"releaseKey": {releaseKey}, "ip": {c.ip}, "label": {c.label}}
	u := base + "configs/" + url.PathEscape(c.appID) + "/" + url.PathEscape(c.cluster) + "/" + url.PathEscape(c.ns) + "?" + q.Encode()
	step := fmt.Sprintf("apollo: read app %s cluster %s namespace %s from config service %s", c.appID, c.cluster, c.ns, base)
	req, err := http.NewRequestWithContext(cctx, "GET", u, nil)
	if err != nil {
		return fetched{}, fmt.Errorf("%s: %w", step, err)
	}
	if c.secret != "" {
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		mac := hmac.New(sha1.New, []byte(c.secret))
		mac.Write([]byte(ts + "\n" + req.URL.RequestURI()))
		req.Header.Set("Authorization", "Apollo "+c.appID+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		req.Header.Set("Timestamp", ts)
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.forget()
		return fetched{}, fmt.Errorf("%s: %w: %w", step, configsync.ErrUnavailable, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		c.forget()
		return fetched{}, fmt.Errorf("%s: read answer: %w: %w", step, configsync.ErrUnavailable, err)
	}
	switch {
	case res.StatusCode == http.StatusOK:
		var dto struct {
			ReleaseKey     string            `json:"releaseKey"`
			Configurations map[string]string `json:"configurations"`
		}
		if err := json.Unmarshal(body, &dto); err != nil {
			return fetched{}, fmt.Errorf("%s: decode answer: %w", step, err)
		}
		if dto.Configurations == nil {
			dto.Configurations = map[string]string{}
		}
		return fetched{releaseKey: dto.ReleaseKey, configs: dto.Configurations}, nil
	case res.StatusCode == http.StatusNotModified:
		return fetched{releaseKey: releaseKey, notModified: true}, nil
	case res.StatusCode == http.StatusNotFound:
		return fetched{}, fmt.Errorf("%s: %w", step, errNotReleased)
	case res.StatusCode == http.StatusUnauthorized:
		return fetched{}, fmt.Errorf("%s: %w: %w", step, errAccessKey, configsync.ErrUnavailable)
	case res.StatusCode >= 500:
		c.forget()
		return fetched{}, fmt.Errorf("%s: status %d: %w", step, res.StatusCode, configsync.ErrUnavailable)
	default:
		return fetched{}, fmt.Errorf("%s: unexpected status %d: %s: %w", step, res.StatusCode, clip(body), configsync.ErrUnavailable)
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
