package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/clock"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Header names.
const (
	HeaderSignature   = "X-Graylane-Signature"
	HeaderTimestamp   = "X-Graylane-Timestamp"
	HeaderApp         = "X-Graylane-App"
	HeaderIdempotency = "Idempotency-Key"
	// HeaderFencingToken carries the sending replica's fencing token for
	// the app (ha.mode shard): it only grows when ownership moves, so a
	// deploy system can refuse a request carrying a lower token than one
	// it already saw for the app (see docs/backends.md).
	HeaderFencingToken = "X-Graylane-Fencing-Token"
	// HeaderReplica names the graylane replica that sent the request.
	HeaderReplica = "X-Graylane-Replica"
)

var (
	// ErrNotConverged: the external system's status did not match the
	// desired state in time.
	ErrNotConverged = errors.New("external system did not converge")
	// ErrNoSecret: no HMAC key is configured for the app.
	ErrNoSecret = errors.New("no webhook signing key")
	// ErrBadSignature is returned by Verify.
	ErrBadSignature = errors.New("bad webhook signature")
)

// DesiredState is the JSON body Apply POSTs.
type DesiredState struct {
	App string `json:"app"`
	// Env is graylane's environment the app is released in (only when
	// graylane declares environments): a deploy system serving several
	// keeps them apart by it.
	Env string `json:"env,omitempty"`
	// Version is the release's desired version.
	Version string `json:"version"`
	// Replicas is the wanted number of instances per version (zero counts
	// are left out).
	Replicas map[string]int `json:"replicas"`
	// ReleaseHash identifies the release spec in force.
	ReleaseHash string `json:"releaseHash"`
	// Step and Reason say why (the adapters.Step Apply was given; they do
	// not change the idempotency key).
	Step   *int   `json:"step,omitempty"`
	Reason string `json:"reason,omitempty"`
	// IdempotencyKey equals the Idempotency-Key header.
	IdempotencyKey string `json:"idempotencyKey"`
}

// Status is what the status URL answers.
type Status struct {
	App       string              `json:"app,omitempty"`
	Instances []adapters.Instance `json:"instances"`
}

// Config configures a Backend.
type Config struct {
	// Client sends the requests (default: NewClient(), which keeps
	// connections to the deploy system open for reuse; each attempt is
	// bounded by the spec's timeout).
	Client *http.Client
	// Secret is the HMAC key for apps whose spec has no secretEnv.
	Secret []byte
	// Getenv reads secretEnv variables (default os.Getenv).
	Getenv func(string) string
	// BackoffBase and BackoffMax shape the retry back-off: attempt n waits
	// about BackoffBase*2^(n-1), capped at BackoffMax, with jitter
	// (defaults 200ms and 5s). A Retry-After longer than that is honoured
	// up to MaxRetryAfter (default 30s).
	BackoffBase, BackoffMax, MaxRetryAfter time.Duration
	// Releases, if set, gives Observe the spec of an app this process has
	// not applied yet.
	Releases func(ctx context.Context, app string) (*spec.Release, error)
	// Reassert is how long an unchanged desired state may go without
	// being POSTed again (default DefaultReassert). Apply skips a POST
	// whose idempotency key (and fencing token) equals the last one
	// delivered for the app when the last status read matched it;
	// after Reassert it POSTs anyway, in case the deploy system lost it.
	// Negative: POST on every Apply.
	Reassert time.Duration
	// Clock stamps requests (default the real clock).
	Clock clock.Clock
	// Logger (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
	// Env names graylane's environment (DesiredState.Env; part of the
	// idempotency key when set).
	Env string
}

// Backend is the webhook Backend.
type Backend struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// targets holds, per app applied here, what Observe needs of its
	// spec (not the whole spec: at 20,000 apps that is what the engine
	// can let go of between an idle app's passes).
	targets map[string]target
	// sent is the last desired state delivered per app; seen the
	// instances per version the last status read reported, when all of
	// them were ready.
	sent map[string]delivery
	seen map[string]string // countsKey of what runs
}

// target is what the backend keeps of an app's spec.
type target struct {
	w *spec.WebhookBackend
	// interval is health.interval (0: default), for WaitConverged.
	interval time.Duration
}

// delivery is one desired state acknowledged by the deploy system.
type delivery struct {
	key   string
	token int64
	at    time.Time
}

// DefaultReassert is Config.Reassert's default: at 20,000 idle apps, 5.6
// POSTs a second; a deploy system that loses a desired state while still
// reporting its instances gets it back within the hour (one that reports
// them gone gets it at the next pass).
const DefaultReassert = time.Hour

var (
	_ adapters.Backend       = (*Backend)(nil)
	_ adapters.Forgetter     = (*Backend)(nil)
	_ adapters.FencedBackend = (*Backend)(nil)
	_ adapters.Unloader      = (*Backend)(nil)
)

// New returns a Backend.
func New(cfg Config) (*Backend, error) {
	if cfg.Client == nil {
		cfg.Client = NewClient()
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 200 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Second
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 30 * time.Second
	}
	if cfg.Reassert == 0 {
		cfg.Reassert = DefaultReassert
	}
	cfg.Clock = clock.Or(cfg.Clock)
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	return &Backend{cfg: cfg, log: cfg.Logger.With("backend", "webhook"), targets: map[string]target{},
		sent: map[string]delivery{}, seen: map[string]string{}}, nil
}

// DefaultMaxIdleConnsPerHost is how many idle connections NewClient keeps
// per deploy-system host: more than the engine's workers, so a busy
// graylane reuses connections instead of opening (and leaving in
// TIME_WAIT) one per request. net/http's default keeps 2.
const DefaultMaxIdleConnsPerHost = 64

// NewClient returns the webhook backend's default HTTP client: a
// transport of its own (not http.DefaultTransport) keeping up to
// DefaultMaxIdleConnsPerHost idle connections per host for 90 s. With the
// answers always read to the end and closed (once does), every request
// after the first few rides an open connection.
func NewClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * DefaultMaxIdleConnsPerHost
	t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t}
}

// maxAnswer bounds the answer body read; maxDrain what is read past it so
// the connection can be reused (a longer answer closes it).
const (
	maxAnswer = 4 << 20
	maxDrain  = 64 << 10
)

// IdempotencyKey is the key of a desired state: a digest of app, version
// and the non-zero replicas.
func IdempotencyKey(app, version string, want traffic.Replicas) string {
	return EnvIdempotencyKey("", app, version, want)
}

// EnvIdempotencyKey is IdempotencyKey in environment env: the same
// desired state in two environments has two keys ("" is IdempotencyKey).
func EnvIdempotencyKey(env, app, version string, want traffic.Replicas) string {
	vs := make([]string, 0, len(want))
	for v, n := range want {
		if n > 0 {
			vs = append(vs, v)
		}
	}
	sort.Strings(vs)
	h := sha256.New()
	fmt.Fprintf(h, "graylane-desired-state-v1\n%s\n%s\n", app, version)
	if env != "" {
		fmt.Fprintf(h, "env=%s\n", env)
	}
	for _, v := range vs {
		fmt.Fprintf(h, "%s=%d\n", v, want[v])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Sign returns the signature header value for a timestamp and body.
func Sign(key []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature (for receivers): the timestamp must
// be within maxSkew of now and the signature must match body.
func Verify(key []byte, h http.Header, body []byte, maxSkew time.Duration, now time.Time) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrBadSignature, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w: timestamp %s is %v away from now", ErrBadSignature, ts, d)
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(key, ts, body))) {
		return fmt.Errorf("%w: signature does not match", ErrBadSignature)
	}
	return nil
}

func section(rel *spec.Release) (*spec.WebhookBackend, error) {
	if rel == nil {
		return nil, errors.New("nil release")
	}
	if rel.Backend.Webhook == nil {
		return nil, fmt.Errorf("release of app %s has no backend.webhook section (backend.type is %q)", rel.App, rel.Backend.Type)
	}
	return rel.Backend.Webhook, nil
}

func (b *Backend) secret(w *spec.WebhookBackend) ([]byte, error) {
	if w.SecretEnv != "" {
		if v := b.cfg.Getenv(w.SecretEnv); v != "" {
			return []byte(v), nil
		}
		return nil, fmt.Errorf("%w: environment variable %s is empty or unset", ErrNoSecret, w.SecretEnv)
	}
	if len(b.cfg.Secret) == 0 {
		return nil, fmt.Errorf("%w: set backend.webhook.secretEnv or configure graylane's webhook secret", ErrNoSecret)
	}
	return b.cfg.Secret, nil
}

// Apply POSTs the desired state. It returns once the external system
// acknowledged it with a 2xx, which says nothing of when instances run:
// Observe tells. The same desired state (same idempotency key and fencing
// token) is not POSTed again while the last status read matched it,
// until Config.Reassert has passed.
func (b *Backend) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, step adapters.Step) error {
	return b.apply(ctx, rel, want, step, adapters.Fence{})
}

func (b *Backend) apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, step adapters.Step, f adapters.Fence) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w, err := section(rel)
	if err != nil {
		return fmt.Errorf("webhook apply: %w", err)
	}
	replicas, err := adapters.CheckReplicas(rel.App, want)
	if err != nil {
		return fmt.Errorf("webhook backend: %w", err)
	}
	ds := DesiredState{App: rel.App, Env: b.cfg.Env, Version: rel.Version, Replicas: replicas, ReleaseHash: rel.Hash()}
	ds.IdempotencyKey = EnvIdempotencyKey(b.cfg.Env, rel.App, rel.Version, want)
	if step.Index >= 0 {
		idx := step.Index
		ds.Step = &idx
	}
	ds.Reason = step.Reason
	body, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	t := target{w: w}
	if rel.Health.Interval != nil {
		t.interval = rel.Health.Interval.Duration
	}
	b.mu.Lock()
	b.targets[rel.App] = t
	skip := b.delivered(rel.App, ds.IdempotencyKey, f.Token, ds.Replicas)
	b.mu.Unlock()
	if skip {
		return nil
	}
	if _, err := b.do(ctx, rel.App, w, http.MethodPost, w.URL, body, ds.IdempotencyKey, f); err != nil {
		b.mu.Lock()
		delete(b.sent, rel.App)
		b.mu.Unlock()
		return fmt.Errorf("webhook apply of app %s (key %s): %w", rel.App, ds.IdempotencyKey, err)
	}
	b.mu.Lock()
	b.sent[rel.App] = delivery{key: ds.IdempotencyKey, token: f.Token, at: b.cfg.Clock.Now()}
	b.mu.Unlock()
	b.log.Info("desired state delivered", "app", rel.App, "version", rel.Version, "replicas", ds.Replicas, "key", ds.IdempotencyKey)
	return nil
}

// delivered reports whether the desired state need not be POSTed: it was
// delivered (same key, same fencing token) less than Reassert ago and the
// last status read showed exactly the wanted instances, all ready.
// Callers hold b.mu.
func (b *Backend) delivered(app, key string, token int64, want map[string]int) bool {
	d, ok := b.sent[app]
	if !ok || b.cfg.Reassert < 0 || d.key != key || d.token != token || b.cfg.Clock.Now().Sub(d.at) >= b.cfg.Reassert {
		return false
	}
	seen, ok := b.seen[app]
	return ok && seen == countsKey(want)
}

// countsKey is a canonical form of instances per version ("v1=2,v2=1",
// zero counts left out), small enough to keep per app.
func countsKey(c map[string]int) string {
	vs := make([]string, 0, len(c))
	for v, n := range c {
		if n > 0 {
			vs = append(vs, v)
		}
	}
	sort.Strings(vs)
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(c[v]))
	}
	return b.String()
}

// Observe GETs the status URL and returns its instances as they are.
func (b *Backend) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	return b.observe(ctx, app, adapters.Fence{})
}

func (b *Backend) observe(ctx context.Context, app string, f adapters.Fence) ([]adapters.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, ok, err := b.target(ctx, app)
	if err != nil || !ok {
		return nil, err
	}
	w := t.w
	url, err := w.RenderStatusURL(app)
	if err != nil {
		return nil, fmt.Errorf("webhook observe of app %s: status URL: %w", app, err)
	}
	body, err := b.do(ctx, app, w, http.MethodGet, url, nil, "", f)
	if err != nil {
		b.mu.Lock()
		delete(b.seen, app)
		b.mu.Unlock()
		return nil, fmt.Errorf("webhook observe of app %s: %w", app, err)
	}
	var st Status
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("webhook observe of app %s: GET %s: answer is not a status document: %w", app, url, err)
	}
	if st.App != "" && st.App != app {
		return nil, fmt.Errorf("webhook observe of app %s: GET %s answered for app %q", app, url, st.App)
	}
	seen := map[string]bool{}
	for i, in := range st.Instances {
		switch {
		case in.ID == "":
			return nil, fmt.Errorf("webhook observe of app %s: GET %s: instances[%d].id is empty", app, url, i)
		case seen[in.ID]:
			return nil, fmt.Errorf("webhook observe of app %s: GET %s: instances[%d].id %q appears twice", app, url, i, in.ID)
		}
		if err := spec.CheckVersion(in.Version); err != nil {
			return nil, fmt.Errorf("webhook observe of app %s: GET %s: instances[%d].version %w", app, url, i, err)
		}
		seen[in.ID] = true
	}
	if st.Instances == nil {
		st.Instances = []adapters.Instance{}
	}
	// what runs, counted only when every instance is ready: a desired
	// state is "met" when these counts equal it
	running := map[string]int{}
	for _, in := range st.Instances {
		if !in.Ready {
			running = nil
			break
		}
		running[in.Version]++
	}
	b.mu.Lock()
	if running != nil {
		b.seen[app] = countsKey(running)
	} else {
		delete(b.seen, app)
	}
	b.mu.Unlock()
	return st.Instances, nil
}

// WithFence implements adapters.FencedBackend: every request of the
// returned backend carries f in X-Graylane-Replica and
// X-Graylane-Fencing-Token.
func (b *Backend) WithFence(f adapters.Fence) adapters.Backend { return fenced{b: b, f: f} }

// fenced is a Backend whose requests carry a fence.
type fenced struct {
	b *Backend
	f adapters.Fence
}

func (x fenced) Observe(ctx context.Context, app string) ([]adapters.Instance, error) {
	return x.b.observe(ctx, app, x.f)
}

func (x fenced) Apply(ctx context.Context, rel *spec.Release, want traffic.Replicas, step adapters.Step) error {
	return x.b.apply(ctx, rel, want, step, x.f)
}

// Unload implements adapters.Unloader: another replica drives the app
// now, so what this one delivered and saw is dropped (if the app comes
// back, its desired state is POSTed again).
func (b *Backend) Unload(app string) {
	b.mu.Lock()
	delete(b.targets, app)
	delete(b.sent, app)
	delete(b.seen, app)
	b.mu.Unlock()
}

// WaitConverged polls Observe (every health.interval, default 1s) until the
// ready instances per version equal want, or ctx ends: then it returns
// ErrNotConverged with the wanted and last observed counts.
func (b *Backend) WaitConverged(ctx context.Context, app string, want traffic.Replicas) error {
	interval := spec.DefaultHealthInterval
	if t, ok, _ := b.target(ctx, app); ok && t.interval > 0 {
		interval = t.interval
	}
	wantNZ := map[string]int{}
	for v, n := range want {
		if n > 0 {
			wantNZ[v] = n
		}
	}
	var last map[string]int
	var lastErr error
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		insts, err := b.Observe(ctx, app)
		if err == nil {
			last = map[string]int{}
			for _, in := range insts {
				if in.Ready {
					last[in.Version]++
				}
			}
			if equalCounts(last, wantNZ) {
				return nil
			}
		}
		if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w: app %s wants ready %v; last status error: %v: %w", ErrNotConverged, app, wantNZ, lastErr, ctx.Err())
			}
			if last == nil {
				return fmt.Errorf("%w: app %s wants ready %v; no status read: %w", ErrNotConverged, app, wantNZ, ctx.Err())
			}
			return fmt.Errorf("%w: app %s wants ready %v, status reports ready %v: %w", ErrNotConverged, app, wantNZ, last, ctx.Err())
		case <-t.C:
		}
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Forget drops the remembered spec of the app.
func (b *Backend) Forget(ctx context.Context, app string) error {
	b.Unload(app)
	return ctx.Err()
}

// target returns what Observe needs of app's spec: remembered from Apply,
// else looked up (Config.Releases); ok false when the app has no webhook
// section.
func (b *Backend) target(ctx context.Context, app string) (target, bool, error) {
	b.mu.Lock()
	t, ok := b.targets[app]
	b.mu.Unlock()
	if ok || b.cfg.Releases == nil {
		return t, ok, nil
	}
	rel, err := b.cfg.Releases(ctx, app)
	if err != nil {
		return target{}, false, fmt.Errorf("look up release of app %s: %w", app, err)
	}
	if rel == nil || rel.Backend.Webhook == nil {
		return target{}, false, nil
	}
	t = target{w: rel.Backend.Webhook}
	if rel.Health.Interval != nil {
		t.interval = rel.Health.Interval.Duration
	}
	return t, true, nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Method, URL string
	Code        int
	Status      string
	// Body is the start of the answer's body.
	Body string
	// Attempts is how many requests were made.
	Attempts int
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %s", e.Method, e.URL, e.Status)
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	return msg
}

// Retriable reports whether the answer is worth retrying.
func (e *StatusError) Retriable() bool { return retriableCode(e.Code) }

func retriableCode(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented:
		return false
	}
	return code >= 500
}

// do sends one request with retries and returns the 2xx answer's body.
func (b *Backend) do(ctx context.Context, app string, w *spec.WebhookBackend, method, url string, body []byte, key string, f adapters.Fence) ([]byte, error) {
	secret, err := b.secret(w)
	if err != nil {
		return nil, err
	}
	attempts := 1 + w.EffectiveRetries()
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		out, retryAfter, err := b.once(ctx, app, w, secret, method, url, body, key, f)
		if err == nil {
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var serr *StatusError
		if errors.As(err, &serr) {
			serr.Attempts = attempt
			if !serr.Retriable() {
				return nil, serr
			}
		} else {
			err = fmt.Errorf("%s %s: %w", method, url, err)
		}
		lastErr = err
		if attempt == attempts {
			break
		}
		wait := b.backoff(attempt)
		if retryAfter > wait {
			wait = min(retryAfter, b.cfg.MaxRetryAfter)
		}
		b.log.Warn("webhook attempt failed, retrying", "app", app, "method", method, "url", url, "attempt", attempt, "of", attempts, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	var serr *StatusError
	if errors.As(lastErr, &serr) {
		return nil, serr
	}
	return nil, fmt.Errorf("%w (after %d attempts)", lastErr, attempts)
}

// backoff returns the wait after the n-th failed attempt: BackoffBase *
// 2^(n-1) capped at BackoffMax, then "equal jitter" (half fixed, half
// random) so that many graylanes do not retry in step.
func (b *Backend) backoff(n int) time.Duration {
	d := b.cfg.BackoffBase << min(n-1, 20)
	if d > b.cfg.BackoffMax || d <= 0 {
		d = b.cfg.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// once sends one attempt.
func (b *Backend) once(ctx context.Context, app string, w *spec.WebhookBackend, secret []byte, method, url string, body []byte, key string, f adapters.Fence) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, w.EffectiveTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	for k, v := range w.Headers {
		req.Header.Set(k, v)
	}
	ts := strconv.FormatInt(b.cfg.Clock.Now().Unix(), 10)
	req.Header.Set(HeaderApp, app)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	if f.Token > 0 {
		req.Header.Set(HeaderFencingToken, strconv.FormatInt(f.Token, 10))
		req.Header.Set(HeaderReplica, f.Holder)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderIdempotency, key)
	}
	resp, err := b.cfg.Client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, 0, fmt.Errorf("no answer within %v: %w", w.EffectiveTimeout(), err)
		}
		return nil, 0, err
	}
	defer func() {
		// read to the end (bounded) so the connection goes back to the
		// pool instead of being closed
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		resp.Body.Close()
	}()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, 0, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		excerpt := string(out)
		if len(excerpt) > 512 {
			excerpt = excerpt[:512] + "..."
		}
		return nil, retryAfter(resp.Header.Get("Retry-After"), b.cfg.Clock.Now()), &StatusError{Method: method, URL: url, Code: resp.StatusCode, Status: resp.Status, Body: excerpt}
	}
	return out, 0, nil
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
