package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// MaxRuns bounds the history kept per check.
const MaxRuns = 50

// Runner runs analysis checks, one goroutine per app with a rollout in
// progress.
type Runner struct {
	client *http.Client
	log    *slog.Logger
	clock  clock.Clock
	notify func(app string)
	// journal, if set, keeps results across restarts (Config.Journal).
	journal Journal

	mu   sync.Mutex
	apps map[string]*run
}

type run struct {
	key     string // version + analysis digest
	version string
	cancel  context.CancelFunc
	done    chan struct{}
	results map[string]rollout.CheckResult
	// discard: the analysis is over (Stop), so its journal entry goes
	// once the loop has ended; a Close (shutdown) keeps it.
	discard atomic.Bool
}

// Config configures a Runner.
type Config struct {
	// Notify is called with the app's name after every round of checks, so
	// the engine plans again at once (may be nil).
	Notify func(app string)
	// HTTPClient is what checks use (default: a plain client; each
	// check's own timeout applies).
	HTTPClient *http.Client
	// Clock stamps results (default the real clock).
	Clock clock.Clock
	// Logger defaults to discarding (logx.OrDiscard).
	Logger *slog.Logger
	// Journal, if set, keeps results across restarts and leader changes
	// (etcdstore.Journal in graylane): a crash never resets a failure
	// streak or an analysis step's count of successes.
	Journal Journal
}

// New returns a Runner.
func New(cfg Config) *Runner {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Notify == nil {
		cfg.Notify = func(string) {}
	}
	return &Runner{client: cfg.HTTPClient, log: logx.OrDiscard(cfg.Logger), clock: clock.Or(cfg.Clock),
		notify: cfg.Notify, journal: cfg.Journal, apps: map[string]*run{}}
}

// Ensure runs the checks of rel's strategy.analysis against version (with
// stable as {{.StableVersion}}) until Stop, or until Ensure is called with
// another version or analysis. It is idempotent.
func (r *Runner) Ensure(rel *spec.Release, stable, version string) {
	a := rel.Strategy.Analysis
	if a == nil {
		r.Stop(rel.App)
		return
	}
	b, _ := json.Marshal(a)
	key := version + "\x00" + stable + "\x00" + string(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.apps[rel.App]; cur != nil {
		if cur.key == key {
			return
		}
		cur.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ru := &run{key: key, version: version, cancel: cancel, done: make(chan struct{}), results: map[string]rollout.CheckResult{}}
	r.apps[rel.App] = ru
	data := map[string]string{"App": rel.App, "Version": version, "StableVersion": stable}
	go r.loop(ctx, rel.App, ru, a, data)
}

// Stop ends the checks of app, if any, and forgets its results (the
// journal entry too).
func (r *Runner) Stop(app string) {
	r.mu.Lock()
	cur := r.apps[app]
	delete(r.apps, app)
	r.mu.Unlock()
	if cur != nil {
		cur.discard.Store(true)
		cur.cancel()
	}
}

// Close stops every app's checks and waits for them.
func (r *Runner) Close() {
	r.mu.Lock()
	runs := r.apps
	r.apps = map[string]*run{}
	r.mu.Unlock()
	for _, ru := range runs {
		ru.cancel()
		<-ru.done
	}
}

// Results returns a copy of app's check results (nil when none run).
func (r *Runner) Results(app string) map[string]rollout.CheckResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.apps[app]
	if cur == nil {
		return nil
	}
	return copyResults(cur.results)
}

// snapshot copies ru's results under the lock.
func (r *Runner) snapshot(ru *run) map[string]rollout.CheckResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return copyResults(ru.results)
}

func copyResults(in map[string]rollout.CheckResult) map[string]rollout.CheckResult {
	out := make(map[string]rollout.CheckResult, len(in))
	for k, v := range in {
		out[k] = rollout.CheckResult{Version: v.Version, Runs: append([]rollout.CheckRun(nil), v.Runs...)}
	}
	return out
}

func (r *Runner) loop(ctx context.Context, app string, ru *run, a *spec.Analysis, data map[string]string) {
	defer close(ru.done)
	interval := a.EffectiveInterval()
	journal := r.journal != nil
	if journal {
		defer func() {
			if !ru.discard.Load() || !journal {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
			defer cancel()
			if err := r.journal.Delete(ctx, app); err != nil {
				r.log.Warn("analysis: cannot delete journal entry", "app", app, "err", err)
			}
		}()
		restored, err := r.restore(ctx, app, ru.key)
		switch {
		case errors.Is(err, schema.ErrNewer):
			// a newer graylane's entry: neither misread nor written over
			journal = false
			r.log.Error("analysis: the journal entry was written by a newer graylane; counting from zero without journaling", "app", app, "err", err)
		case err != nil:
			r.log.Warn("analysis: cannot restore journaled results; counting from zero", "app", app, "err", err)
		}
		if len(restored) > 0 {
			r.mu.Lock()
			ru.results = restored
			r.mu.Unlock()
			r.log.Info("analysis: results restored from the journal", "app", app, "version", ru.version)
			if r.notify != nil {
				r.notify(app)
			}
			// the next round is due one interval after the last one run
			if wait := lastRun(restored).Add(interval).Sub(r.clock.Now()); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(wait, interval)):
				}
			}
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, c := range a.Checks {
			ok, msg, val := Measure(ctx, r.client, c, data)
			if ctx.Err() != nil {
				return
			}
			if !ok {
				r.log.Warn("analysis check failed", "app", app, "version", data["Version"], "check", c.Name, "reason", msg)
			}
			r.mu.Lock()
			res := ru.results[c.Name]
			res.Version = ru.version
			res.Runs = append(res.Runs, rollout.CheckRun{At: r.clock.Now(), OK: ok, Message: msg, Value: val})
			if len(res.Runs) > MaxRuns {
				res.Runs = res.Runs[len(res.Runs)-MaxRuns:]
			}
			ru.results[c.Name] = res
			r.mu.Unlock()
		}
		if journal {
			if err := r.save(ctx, app, ru.key, r.snapshot(ru)); err != nil && ctx.Err() == nil {
				r.log.Warn("analysis: cannot journal results", "app", app, "err", err)
			}
		}
		if r.notify != nil {
			r.notify(app)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Run runs one check once and says whether it passed, and why not.
func Run(ctx context.Context, client *http.Client, c spec.Check, data map[string]string) (bool, string) {
	ok, msg, _ := Measure(ctx, client, c, data)
	return ok, msg
}

// Measure is Run that also returns the value measured (nil for a check
// that only looks at the status code, or that failed to measure).
func Measure(ctx context.Context, client *http.Client, c spec.Check, data map[string]string) (bool, string, *float64) {
	var v float64
	var err error
	var lo, hi *float64
	switch {
	case c.HTTP != nil:
		if v, err = runHTTP(ctx, client, c.HTTP, data); err == nil && c.HTTP.JSONPath == "" {
			return true, "", nil
		}
		lo, hi = c.HTTP.Min, c.HTTP.Max
	case c.Prometheus != nil:
		v, err = runPrometheus(ctx, client, c.Prometheus, data)
		lo, hi = c.Prometheus.Min, c.Prometheus.Max
	default:
		return false, "check has neither http nor prometheus", nil
	}
	if err != nil {
		return false, err.Error(), nil
	}
	if lo != nil && v < *lo {
		return false, fmt.Sprintf("value %g is below min %g", v, *lo), &v
	}
	if hi != nil && v > *hi {
		return false, fmt.Sprintf("value %g is above max %g", v, *hi), &v
	}
	return true, fmt.Sprintf("value %g", v), &v
}

func timeout(d *spec.Duration) time.Duration {
	if d == nil {
		return 5 * time.Second
	}
	return d.Duration
}

func runHTTP(ctx context.Context, client *http.Client, h *spec.HTTPCheck, data map[string]string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout(h.Timeout))
	defer cancel()
	u, err := spec.RenderMap(h.URL, data)
	if err != nil {
		return 0, err
	}
	method := h.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range h.Headers {
		val, err := spec.RenderMap(v, data)
		if err != nil {
			return 0, err
		}
		req.Header.Set(k, val)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("%s %s: read body: %w", method, u, err)
	}
	if (h.Status == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299)) || (h.Status != 0 && resp.StatusCode != h.Status) {
		want := "2xx"
		if h.Status != 0 {
			want = strconv.Itoa(h.Status)
		}
		return 0, fmt.Errorf("%s %s: status %d, want %s", method, u, resp.StatusCode, want)
	}
	if h.JSONPath == "" {
		return 0, nil
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return 0, fmt.Errorf("%s %s: body is not JSON: %w", method, u, err)
	}
	return JSONNumber(doc, h.JSONPath)
}

// JSONNumber follows a dotted path ("data.rate", "items.0.value") into a
// decoded JSON document and returns the number (or numeric string) there.
func JSONNumber(doc any, path string) (float64, error) {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[part]
			if !ok {
				return 0, fmt.Errorf("jsonPath %s: no field %q", path, part)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return 0, fmt.Errorf("jsonPath %s: no element %q in a list of %d", path, part, len(x))
			}
			cur = x[i]
		default:
			return 0, fmt.Errorf("jsonPath %s: %q is inside a %T", path, part, cur)
		}
	}
	switch x := cur.(type) {
	case float64:
		return x, nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, fmt.Errorf("jsonPath %s: %q is not a number", path, x)
		}
		return f, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("jsonPath %s: %T is not a number", path, cur)
}

// promResponse is the Prometheus HTTP API's /api/v1/query answer.
type promResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

func runPrometheus(ctx context.Context, client *http.Client, q *spec.PrometheusCheck, data map[string]string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout(q.Timeout))
	defer cancel()
	query, err := spec.RenderMap(q.Query, data)
	if err != nil {
		return 0, err
	}
	base, err := spec.RenderMap(q.Address, data)
	if err != nil {
		return 0, err
	}
	u := strings.TrimRight(base, "/") + "/api/v1/query?" + url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("prometheus query %q: %w", query, err)
	}
	defer resp.Body.Close()
	var pr promResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&pr); err != nil {
		return 0, fmt.Errorf("prometheus query %q: status %d, undecodable answer: %w", query, resp.StatusCode, err)
	}
	if pr.Status != "success" {
		return 0, fmt.Errorf("prometheus query %q: %s", query, pr.Error)
	}
	return PromValue(pr.Data.ResultType, pr.Data.Result)
}

// PromValue extracts the first sample's value from a Prometheus query
// result of type vector or scalar.
func PromValue(resultType string, result json.RawMessage) (float64, error) {
	var pair []any
	switch resultType {
	case "scalar":
		if err := json.Unmarshal(result, &pair); err != nil {
			return 0, err
		}
	case "vector":
		var vec []struct {
			Value []any `json:"value"`
		}
		if err := json.Unmarshal(result, &vec); err != nil {
			return 0, err
		}
		if len(vec) == 0 {
			return 0, errors.New("the query returned no samples")
		}
		pair = vec[0].Value
	default:
		return 0, fmt.Errorf("result type %q: want vector or scalar", resultType)
	}
	if len(pair) != 2 {
		return 0, errors.New("malformed sample")
	}
	s, ok := pair[1].(string)
	if !ok {
		return 0, errors.New("malformed sample value")
	}
	return strconv.ParseFloat(s, 64)
}
