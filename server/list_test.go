package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/testenv"
)

func appSpec(app, version string) string {
	return strings.Replace(strings.Replace(goodSpec, "app: demo", "app: "+app, 1), "version: v1", "version: "+version, 1)
}

// waitList polls the list until cond holds.
func (e *env) waitList(query string, what string, cond func(AppList) bool) AppList {
	e.t.Helper()
	var last AppList
	testenv.Eventually(e.t, 10*time.Second, what, func() error {
		resp, err := http.Get(e.url + "/api/v1/apps" + query)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		last = AppList{}
		if err := json.NewDecoder(resp.Body).Decode(&last); err != nil {
			return fmt.Errorf("%s: %w", resp.Status, err)
		}
		return testenv.Check(resp.StatusCode == 200 && cond(last), "%s, list %+v", resp.Status, last)
	})
	return last
}

func appNames(l AppList) string {
	var n []string
	for _, a := range l.Apps {
		n = append(n, a.App)
	}
	return strings.Join(n, ",")
}

func TestListPagesAndFilters(t *testing.T) {
	e := newEnv(t)
	for _, a := range []string{"cart", "shop", "billing", "search", "shop-api"} {
		e.src.Set(a, []byte(appSpec(a, "v1")))
	}
	e.src.Set("broken", []byte("app: broken\nversion: v1\nreplicas: -3\n"))
	e.waitList("", "all healthy", func(l AppList) bool { return l.Counts.Phases["Healthy"] == 5 && l.Total == 6 })
	// shop pauses at its pause step
	if code, _ := e.do("PUT", "/api/v1/apps/shop/version", `{"version":"v2"}`); code != 200 {
		t.Fatal("set version")
	}
	e.waitPhase("shop", "Paused")

	l := e.waitList("?limit=2", "first page", func(l AppList) bool { return true })
	if appNames(l) != "billing,broken" || l.Continue == "" || l.Total != 6 || l.Limit != 2 {
		t.Fatalf("first page: %s continue=%q total=%d", appNames(l), l.Continue, l.Total)
	}
	var all []string
	q := "?limit=2"
	for pages := 0; pages < 10; pages++ {
		l = e.waitList(q, "page", func(AppList) bool { return true })
		all = append(all, appNames(l))
		if l.Continue == "" {
			break
		}
		q = "?limit=2&continue=" + url.QueryEscape(l.Continue)
	}
	if got := strings.Join(all, ","); got != "billing,broken,cart,search,shop,shop-api" {
		t.Fatalf("pages: %s", got)
	}
	for _, c := range []struct{ query, want string }{
		{"?phase=Paused", "shop"},
		{"?phase=healthy,paused&q=SHOP", "shop,shop-api"},
		{"?attention=true", "broken,shop"},
		{"?attention=invalidSpec", "broken"},
		{"?q=ar", "cart,search"},
	} {
		l := e.waitList(c.query, c.query, func(AppList) bool { return true })
		if appNames(l) != c.want || l.Total != len(l.Apps) {
			t.Errorf("%s: %s (total %d), want %s", c.query, appNames(l), l.Total, c.want)
		}
	}
	shop := e.waitList("?q=shop&limit=1", "shop row", func(AppList) bool { return true }).Apps[0]
	if shop.Phase != "Paused" || shop.CanaryVersion != "v2" || shop.Version != "v2" || shop.Backend != "process" ||
		shop.Source != "memory" || len(shop.Versions) != 2 || shop.Versions[0].Version != "v2" || shop.Attention[0] != engine.AttentionPaused {
		t.Fatalf("shop row: %+v", shop)
	}
	for _, c := range []struct{ query, field string }{
		{"?limit=0", "limit"},
		{"?limit=5000", "limit"},
		{"?limit=x", "limit"},
		{"?phase=Sleeping", "phase"},
		{"?attention=maybe", "attention"},
		{"?continue=garbage", "continue"},
	} {
		code, body := e.do("GET", "/api/v1/apps"+c.query, "")
		if code != 400 || body["field"] != c.field {
			t.Errorf("%s: %d %v, want 400 naming %s", c.query, code, body, c.field)
		}
	}
	// a token from one filter is refused under another
	l = e.waitList("?limit=1&q=s", "q=s", func(AppList) bool { return true })
	code, body := e.do("GET", "/api/v1/apps?limit=1&continue="+url.QueryEscape(l.Continue), "")
	if code != 400 || body["field"] != "continue" {
		t.Fatalf("token reused under another filter: %d %v", code, body)
	}
	// without a limit the default page size applies
	if l := e.waitList("", "default", func(AppList) bool { return true }); l.Limit != DefaultPageSize {
		t.Fatalf("default limit %d", l.Limit)
	}
}

// GET /api/v1/events sends the list's counts, then each change as a
// coalesced batch of summaries.
func TestAllAppsEventStream(t *testing.T) {
	e := newEnv(t)
	e.src.Set("cart", []byte(appSpec("cart", "v1")))
	e.waitPhase("cart", "Healthy")
	resp, err := http.Get(e.url + "/api/v1/events?events=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type msg struct {
		kind string
		data string
	}
	got := make(chan msg, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		kind := ""
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				kind = k
			}
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				got <- msg{kind, d}
			}
		}
	}()
	next := func(kind string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-got:
				if m.kind == kind {
					return m.data
				}
			case <-timeout:
				t.Fatalf("no %s message", kind)
			}
		}
	}
	var first engine.Changes
	if err := json.Unmarshal([]byte(next("apps")), &first); err != nil || first.Counts.All != 1 || len(first.Changed) != 0 {
		t.Fatalf("first message: %+v %v", first, err)
	}
	e.src.Set("shop", []byte(appSpec("shop", "v1")))
	if code, _ := e.do("PUT", "/api/v1/apps/cart/version", `{"version":"v2"}`); code != 200 {
		t.Fatal("set version")
	}
	seen := map[string]engine.Summary{}
	sawEvent := false
	timeout := time.After(10 * time.Second)
	for !(seen["shop"].Phase == "Healthy" && seen["cart"].Phase == "Paused" && sawEvent) {
		var m msg
		select {
		case m = <-got:
		case <-timeout:
			t.Fatalf("the stream never showed shop Healthy, cart Paused and a rollout event of cart: %+v, event %v", seen, sawEvent)
		}
		if m.kind == "event" {
			sawEvent = sawEvent || strings.Contains(m.data, `"app":"cart"`)
			continue
		}
		var ch engine.Changes
		if err := json.Unmarshal([]byte(m.data), &ch); err != nil {
			t.Fatal(err)
		}
		if ch.Seq <= first.Seq {
			t.Fatalf("sequence did not grow: %d after %d", ch.Seq, first.Seq)
		}
		for _, s := range ch.Changed {
			seen[s.App] = s
		}
	}
}

func TestSpecValidateAndActions(t *testing.T) {
	e := newEnv(t)
	e.src.Set("demo", []byte(goodSpec))
	e.waitPhase("demo", "Healthy")
	code, body := e.do("GET", "/api/v1/apps/demo/spec", "")
	if code != 200 || body["document"] != goodSpec || body["documentVersion"] == "" {
		t.Fatalf("spec: %d %v", code, body)
	}
	bad := strings.Replace(goodSpec, "setWeight: 50", "setWeight: 150", 1)
	bad = strings.Replace(bad, "replicas: 2", "replicas: -1", 1)
	code, body = e.do("POST", "/api/v1/apps/demo/validate", bad)
	errs, _ := body["errors"].([]any)
	if code != 200 || body["valid"] != false || len(errs) != 2 {
		t.Fatalf("validate bad: %d %v", code, body)
	}
	fields := fmt.Sprint(errs[0].(map[string]any)["field"], " ", errs[1].(map[string]any)["field"])
	if fields != "replicas strategy.steps[0].setWeight" {
		t.Fatalf("fields: %s", fields)
	}
	// a spec of another app is refused on the app field, as PUT does
	code, body = e.do("POST", "/api/v1/apps/demo/validate", strings.Replace(goodSpec, "app: demo", "app: other", 1))
	if errs, _ := body["errors"].([]any); code != 200 || body["valid"] != false || len(errs) != 1 || errs[0].(map[string]any)["field"] != "app" {
		t.Fatalf("validate another app's spec: %d %v", code, body)
	}
	if code, body := e.do("POST", "/api/v1/apps/demo/validate", goodSpec); code != 200 || body["valid"] != true {
		t.Fatalf("validate good: %d %v", code, body)
	}
	// a rejected PUT lists every field too
	if code, body := e.do("PUT", "/api/v1/apps/demo", bad); code != 400 || len(body["errors"].([]any)) != 2 {
		t.Fatalf("PUT bad: %d %v", code, body)
	}
	actions := func() map[string]string {
		_, v := e.do("GET", "/api/v1/apps/demo", "")
		out := map[string]string{}
		for _, a := range v["actions"].([]any) {
			m := a.(map[string]any)
			r, _ := m["reason"].(string)
			if m["allowed"] == true {
				r = "ok"
			}
			out[m["name"].(string)] = r
		}
		return out
	}
	a := actions()
	if a["promote"] != "no rollout in progress" || a["pause"] != "ok" || a["set-version"] != "ok" || a["rollback"] != "no previous version to roll back to" {
		t.Fatalf("healthy app's actions: %v", a)
	}
	e.do("PUT", "/api/v1/apps/demo/version", `{"version":"v2"}`)
	e.waitPhase("demo", "Paused")
	if a := actions(); a["promote"] != "ok" || a["abort"] != "ok" || a["resume"] != "ok" {
		t.Fatalf("paused canary's actions: %v", a)
	}
}

func TestHealthAndConsoleFallback(t *testing.T) {
	e := newEnv(t)
	code, body := e.do("GET", "/api/v1/health", "")
	if code != 200 || body["source"] != "memory" {
		t.Fatalf("health: %d %v", code, body)
	}
	if code, _ := e.do("GET", "/apps/demo", ""); code != 404 {
		t.Fatalf("no console configured: %d", code)
	}
}
