package deploysim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/webhook"
)

// Config configures a Sim.
type Config struct {
	// Fencing refuses (409) a request whose fencing token is lower than
	// one already seen for its app.
	Fencing bool
	// Record keeps every request (Requests); without it only counters.
	Record bool
	// ConvergeAfter is how long new instances take to become ready (0: at
	// once, in the answer to the next status read).
	ConvergeAfter time.Duration
	// Notify, if set, is called (in its own goroutine) with an app once its
	// new instances became ready after ConvergeAfter: the deploy system
	// calling graylane's observe callback.
	Notify func(app string)
}

// Request is one request the Sim received.
type Request struct {
	At     time.Time
	App    string
	Method string
	// Replica and Token are the X-Graylane-Replica and
	// X-Graylane-Fencing-Token headers ("" and 0 without them).
	Replica string
	Token   int64
	// Replicas is a POST's desired instances per version.
	Replicas map[string]int
	// Refused is set when Fencing refused the request.
	Refused bool
}

// Counts are the Sim's counters.
type Counts struct {
	Posts, Gets, Refused int
}

// Sim is the simulated deploy system; it is an http.Handler.
type Sim struct {
	cfg Config

	mu     sync.Mutex
	apps   map[string]*app
	log    []Request
	counts Counts
	// driver is the replica of the last admitted request per app; taken
	// records when it changed to another replica.
	driver map[string]string
	taken  map[string]time.Time
	expect map[string]*expectation // app + "\x00" + version
}

type app struct {
	versions map[string]*version
	token    int64
	status   []byte // cached answer; nil when it must be rebuilt
}

type version struct {
	count int
	// ready instances are those below prev, and all of them from readyAt.
	prev    int
	readyAt time.Time
}

type expectation struct {
	ch   chan time.Time
	done bool
}

// New returns a Sim.
func New(cfg Config) *Sim {
	return &Sim{cfg: cfg, apps: map[string]*app{}, expect: map[string]*expectation{}, driver: map[string]string{}, taken: map[string]time.Time{}}
}

// Start serves a new Sim on a loopback port for t's duration and returns
// it with its URL.
func Start(t testing.TB, cfg Config) (*Sim, string) {
	s := New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// Spec is a release spec of app on the webhook backend against the Sim
// at url (secret from HOOK_SECRET), with the given canary steps (YAML
// flow list; "" for a rolling update).
func Spec(url, app, ver string, replicas int, steps string) string {
	strategy := "  type: rolling\n"
	if steps != "" {
		strategy = "  type: canary\n  steps: " + steps + "\n"
	}
	return fmt.Sprintf(`app: %s
version: %s
replicas: %d
strategy:
%s  scaleDownDelay: 0s
backend:
  type: webhook
  webhook: {url: "%s/deploy", statusURL: "%s/apps/{{.App}}/status", secretEnv: HOOK_SECRET, timeout: 5s}
traffic: {type: none}
`, app, ver, replicas, strategy, url, url)
}

// Secret is the HMAC secret specs made by Spec expect in HOOK_SECRET.
const Secret = "deploysim-webhook-secret"

// ServeHTTP implements POST /deploy and GET /apps/{app}/status.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	tok, _ := strconv.ParseInt(r.Header.Get(webhook.HeaderFencingToken), 10, 64)
	req := Request{At: now, Method: r.Method, Replica: r.Header.Get(webhook.HeaderReplica), Token: tok}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/deploy":
		var want struct {
			App      string         `json:"app"`
			Replicas map[string]int `json:"replicas"`
		}
		if err := json.NewDecoder(r.Body).Decode(&want); err != nil || want.App == "" {
			http.Error(w, "want a desired state", http.StatusBadRequest)
			return
		}
		req.App, req.Replicas = want.App, want.Replicas
		s.mu.Lock()
		a := s.app(want.App)
		if !s.admit(a, &req) {
			s.mu.Unlock()
			http.Error(w, "stale fencing token", http.StatusConflict)
			return
		}
		s.counts.Posts++
		converging := s.apply(a, want.Replicas, now)
		for v, n := range want.Replicas {
			if e := s.expect[want.App+"\x00"+v]; e != nil && n > 0 && !e.done {
				e.done = true
				e.ch <- now
			}
		}
		s.mu.Unlock()
		if converging && s.cfg.Notify != nil {
			time.AfterFunc(s.cfg.ConvergeAfter, func() { s.cfg.Notify(want.App) })
		}
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/apps/") && strings.HasSuffix(r.URL.Path, "/status"):
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/apps/"), "/status")
		req.App = name
		s.mu.Lock()
		a := s.app(name)
		if !s.admit(a, &req) {
			s.mu.Unlock()
			http.Error(w, "stale fencing token", http.StatusConflict)
			return
		}
		s.counts.Gets++
		body := s.status(name, a, now)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

func (s *Sim) app(name string) *app {
	a := s.apps[name]
	if a == nil {
		a = &app{versions: map[string]*version{}}
		s.apps[name] = a
	}
	return a
}

// admit applies fencing and records req. Callers hold s.mu.
func (s *Sim) admit(a *app, req *Request) bool {
	ok := true
	if s.cfg.Fencing && req.Token > 0 {
		if req.Token < a.token {
			ok = false
		} else {
			a.token = req.Token
		}
	}
	req.Refused = !ok
	if !ok {
		s.counts.Refused++
	}
	if ok && req.Replica != "" {
		if was := s.driver[req.App]; was != req.Replica {
			s.driver[req.App] = req.Replica
			if was != "" {
				s.taken[req.App] = req.At
			}
		}
	}
	if s.cfg.Record {
		s.log = append(s.log, *req)
	}
	return ok
}

// apply sets an app's desired replicas; it reports whether new instances
// will take ConvergeAfter to become ready. Callers hold s.mu.
func (s *Sim) apply(a *app, want map[string]int, now time.Time) bool {
	converging := false
	for name := range a.versions {
		if want[name] <= 0 {
			delete(a.versions, name)
		}
	}
	for name, n := range want {
		if n <= 0 {
			continue
		}
		v := a.versions[name]
		if v == nil {
			v = &version{}
			a.versions[name] = v
		}
		if n > v.count {
			v.prev = min(v.count, v.prev)
			if s.cfg.ConvergeAfter == 0 || now.After(v.readyAt) {
				v.prev = v.count
			}
			v.readyAt = now.Add(s.cfg.ConvergeAfter)
			converging = converging || s.cfg.ConvergeAfter > 0
		}
		v.count = n
	}
	a.status = nil
	return converging
}

// status returns an app's status document. Callers hold s.mu.
func (s *Sim) status(name string, a *app, now time.Time) []byte {
	if a.status != nil {
		return a.status
	}
	names := make([]string, 0, len(a.versions))
	for v := range a.versions {
		names = append(names, v)
	}
	sort.Strings(names)
	st := struct {
		App       string              `json:"app"`
		Instances []adapters.Instance `json:"instances"`
	}{App: name, Instances: []adapters.Instance{}}
	settled := true
	for _, vn := range names {
		v := a.versions[vn]
		for i := 0; i < v.count; i++ {
			ready := i < v.prev || !now.Before(v.readyAt)
			settled = settled && ready
			st.Instances = append(st.Instances, adapters.Instance{ID: fmt.Sprintf("%s-%s-%d", name, vn, i), Version: vn, Ready: ready})
		}
	}
	b, _ := json.Marshal(st)
	if settled {
		a.status = b
	}
	return b
}

// Expect returns a channel that receives the time of the first POST
// asking for an instance of version for app (made after this call).
func (s *Sim) Expect(app, version string) <-chan time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &expectation{ch: make(chan time.Time, 1)}
	s.expect[app+"\x00"+version] = e
	return e.ch
}

// Forget drops an expectation made by Expect.
func (s *Sim) Forget(app, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.expect, app+"\x00"+version)
}

// Running returns the instances per version an app runs.
func (s *Sim) Running(app string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	if a := s.apps[app]; a != nil {
		for n, v := range a.versions {
			out[n] = v.count
		}
	}
	return out
}

// Counts returns the counters.
func (s *Sim) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Requests returns the recorded requests (Config.Record), oldest first.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Drivers returns, per app, the replica whose request was admitted last.
func (s *Sim) Drivers() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.driver))
	for k, v := range s.driver {
		out[k] = v
	}
	return out
}

// Taken returns, per app that changed hands, when the new replica's first
// request was admitted (the last change).
func (s *Sim) Taken() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.taken))
	for k, v := range s.taken {
		out[k] = v
	}
	return out
}
