package apolloserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

var releaseKeyRE = regexp.MustCompile(`^\d{14}-[0-9a-f]{16}$`)

// start creates and starts a server that is closed when the test ends.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

type resp struct {
	status int
	body   []byte
	header http.Header
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

func do(t *testing.T, method, u string, header map[string]string, body []byte) resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, b, res.Header}
}

func get(t *testing.T, u string) resp { t.Helper(); return do(t, "GET", u, nil, nil) }

// api calls the Open API with a token and an optional JSON body.
func api(t *testing.T, s *Server, method, path, token string, body any) resp {
	t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = token
	}
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
		h["Content-Type"] = "application/json;charset=UTF-8"
	}
	return do(t, method, s.PortalURL()+"openapi/v1"+path, h, b)
}

// errBody is Apollo's error body; Status is kept raw so tests can tell 400 from 400.0.
type errBody struct {
	Status    json.RawMessage `json:"status"`
	Message   string          `json:"message"`
	Exception string          `json:"exception"`
	Timestamp string          `json:"timestamp"`
}

func expectError(t *testing.T, r resp, status int, rawStatus, message string) errBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var e errBody
	r.json(t, &e)
	if rawStatus != "" && string(e.Status) != rawStatus {
		t.Errorf("body status %s, want %s (%s)", e.Status, rawStatus, r.body)
	}
	if message != "" && e.Message != message {
		t.Errorf("message %q, want %q", e.Message, message)
	}
	return e
}

type apolloConfig struct {
	AppID          string            `json:"appId"`
	Cluster        string            `json:"cluster"`
	NamespaceName  string            `json:"namespaceName"`
	Configurations map[string]string `json:"configurations"`
	ReleaseKey     string            `json:"releaseKey"`
}

func getConfig(t *testing.T, s *Server, appID, cluster, ns string, query url.Values) (int, apolloConfig) {
	t.Helper()
	u := s.URL() + "configs/" + appID + "/" + cluster + "/" + ns
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	r := get(t, u)
	var c apolloConfig
	if r.status == http.StatusOK {
		r.json(t, &c)
	}
	return r.status, c
}

type notification struct {
	NamespaceName  string `json:"namespaceName"`
	NotificationID int64  `json:"notificationId"`
	Messages       struct {
		Details map[string]int64 `json:"details"`
	} `json:"messages"`
}

func notificationsURL(s *Server, appID, cluster string, pairs ...any) string {
	var items []string
	for i := 0; i < len(pairs); i += 2 {
		b, _ := json.Marshal(map[string]any{"namespaceName": pairs[i], "notificationId": pairs[i+1]})
		items = append(items, string(b))
	}
	q := url.Values{"appId": {appID}, "cluster": {cluster}, "notifications": {"[" + strings.Join(items, ",") + "]"}}
	return s.URL() + "notifications/v2?" + q.Encode()
}

func poll(t *testing.T, s *Server, appID, cluster string, pairs ...any) (int, []notification) {
	t.Helper()
	r := get(t, notificationsURL(s, appID, cluster, pairs...))
	var n []notification
	if r.status == http.StatusOK {
		r.json(t, &n)
	}
	return r.status, n
}

// asyncPoll starts a long poll and delivers its outcome on the channel.
func asyncPoll(s *Server, appID, cluster string, pairs ...any) <-chan pollResult {
	ch := make(chan pollResult, 1)
	u := notificationsURL(s, appID, cluster, pairs...)
	go func() {
		res, err := httpClient.Get(u)
		if err != nil {
			ch <- pollResult{err: err}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var n []notification
		json.Unmarshal(b, &n)
		ch <- pollResult{status: res.StatusCode, n: n, body: b}
	}()
	return ch
}

type pollResult struct {
	status int
	n      []notification
	body   []byte
	err    error
}

func waitHeld(t *testing.T, s *Server, n int) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, fmt.Sprintf("%d held long polls", n), func() error {
		return testenv.Check(s.WaitingPolls() >= n, "%d held", s.WaitingPolls())
	})
}

func recv(t *testing.T, ch <-chan pollResult, timeout time.Duration) pollResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("no long-poll answer within %v", timeout)
		return pollResult{}
	}
}

// manualClock is a settable clock for Options.Now.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// publish sets items and releases them through the Go admin API.
func publish(t *testing.T, s *Server, appID, cluster, ns, title string, kv ...string) Release {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		must(t, s.SetItem(appID, cluster, ns, kv[i], kv[i+1]))
	}
	r, err := s.Publish(appID, cluster, ns, title)
	must(t, err)
	return r
}
