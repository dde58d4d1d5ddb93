package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/testsupport/deploysim"
)

// hookSecret is the webhook secret every replica gets in HOOK_SECRET.
const hookSecret = deploysim.Secret

// steps is the canary every app is released with: two weighted steps
// with short timed pauses, so a rollout takes at least 4 s of pauses
// plus graylane's own passes.
const steps = "[{setWeight: 20}, {pause: {duration: 2s}}, {setWeight: 50}, {pause: {duration: 2s}}, {setWeight: 100}]"

// driver writes specs and reads the API.
type driver struct {
	etcd    *clientv3.Client
	hookURL string
	prefix  string // /graylane/apps/
	http    *http.Client
}

func newDriver(cli *clientv3.Client, hookURL string) *driver {
	return &driver{etcd: cli, hookURL: hookURL, prefix: "/graylane/apps/", http: &http.Client{Timeout: 30 * time.Second}}
}

// put writes the spec of every app at version, 100 apps per transaction.
func (d *driver) put(ctx context.Context, apps []string, version string) error {
	for i := 0; i < len(apps); i += 100 {
		var ops []clientv3.Op
		for _, a := range apps[i:min(i+100, len(apps))] {
			ops = append(ops, clientv3.OpPut(d.prefix+a, deploysim.Spec(d.hookURL, a, version, 2, steps)))
		}
		if _, err := d.etcd.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("write specs: %w", err)
		}
	}
	return nil
}

// summary is the part of a list row the harness reads.
type summary struct {
	App           string `json:"app"`
	Phase         string `json:"phase"`
	StableVersion string `json:"stableVersion"`
}

type appList struct {
	Apps     []summary `json:"apps"`
	Continue string    `json:"continue"`
	Total    int       `json:"total"`
	Counts   struct {
		All    int            `json:"all"`
		Phases map[string]int `json:"phases"`
	} `json:"counts"`
}

// list reads one page.
func (d *driver) list(ctx context.Context, api, query string) (appList, time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/apps?"+query, nil)
	resp, err := d.http.Do(req)
	if err != nil {
		return appList{}, 0, err
	}
	defer resp.Body.Close()
	var l appList
	err = json.NewDecoder(resp.Body).Decode(&l)
	el := time.Since(start)
	if resp.StatusCode != 200 {
		return l, el, fmt.Errorf("GET /api/v1/apps?%s: %s", query, resp.Status)
	}
	return l, el, err
}

// get reads one app and returns how long it took.
func (d *driver) get(ctx context.Context, api, app string) (time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/apps/"+app, nil)
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("GET /api/v1/apps/%s: %s", app, resp.Status)
	}
	return time.Since(start), nil
}

// waitHealthy waits until every app matching q (a name search) is Healthy
// at version and returns when each one was first seen so (polled every
// 500 ms, so each time is up to 500 ms late).
func (d *driver) waitHealthy(ctx context.Context, api, q, version string, apps []string, start time.Time, within time.Duration) (map[string]time.Duration, error) {
	want := make(map[string]bool, len(apps))
	for _, a := range apps {
		want[a] = true
	}
	done := make(map[string]time.Duration, len(apps))
	deadline := time.Now().Add(within)
	for {
		cont := ""
		for {
			query := "limit=1000&q=" + url.QueryEscape(q)
			if cont != "" {
				query += "&continue=" + url.QueryEscape(cont)
			}
			l, _, err := d.list(ctx, api, query)
			if err != nil {
				break
			}
			now := time.Since(start)
			for _, s := range l.Apps {
				if want[s.App] && s.Phase == "Healthy" && s.StableVersion == version {
					if _, ok := done[s.App]; !ok {
						done[s.App] = now
					}
				}
			}
			if cont = l.Continue; cont == "" {
				break
			}
		}
		if len(done) == len(want) {
			return done, nil
		}
		if time.Now().After(deadline) {
			return done, fmt.Errorf("%d of %d apps Healthy at %s after %v", len(done), len(want), version, within)
		}
		select {
		case <-ctx.Done():
			return done, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// latencies collects durations.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return "no samples"
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	p := func(q float64) string { return ms(s[int(float64(len(s)-1)*q)]) }
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", p(0.5), p(0.99), ms(s[len(s)-1]), len(s))
}

func (l *latencies) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*0.99)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// loop calls fn back to back until ctx ends, with pause between calls.
func loop(ctx context.Context, pause time.Duration, fn func()) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			fn()
			if pause > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}
	}()
	return &wg
}

// probeEdits changes the version of one probe app at a time, every
// pause, and records the time from the etcd put to the deploy system's
// first request for the new version.
func (d *driver) probeEdits(ctx context.Context, sim *deploysim.Sim, probes []string, pause time.Duration, lat *latencies) *sync.WaitGroup {
	n := 0
	return loop(ctx, pause, func() {
		app := probes[n%len(probes)]
		n++
		v := fmt.Sprintf("p%d", n)
		got := sim.Expect(app, v)
		defer sim.Forget(app, v)
		start := time.Now()
		if _, err := d.etcd.Put(ctx, d.prefix+app, deploysim.Spec(d.hookURL, app, v, 2, steps)); err != nil {
			return
		}
		select {
		case at := <-got:
			lat.add(at.Sub(start))
		case <-time.After(30 * time.Second):
			lat.add(30 * time.Second)
		case <-ctx.Done():
		}
	})
}

// randomApp picks one of apps.
func randomApp(apps []string) string { return apps[rand.IntN(len(apps))] }

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

// waitCount waits until the list's total for query reaches n.
func (d *driver) waitCount(ctx context.Context, api, query string, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		l, _, err := d.list(ctx, api, query)
		if err == nil && l.Total >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d after %v (?%s)", l.Total, n, within, query)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
