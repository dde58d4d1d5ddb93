package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Paging through GET /api/v1/apps with continue tokens while apps are
// created and deleted through the config centre returns every app present
// for the whole listing exactly once, and no app twice — with and without
// a filter. (The engine's index has the same test without HTTP; this one
// goes through the API's tokens, the engine's passes and deletions.)
func TestListPagingWhileAppsComeAndGo(t *testing.T) {
	e := newEnv(t)
	const stable = 400
	for i := 0; i < stable; i++ {
		a := fmt.Sprintf("app-%04d", i*2)
		e.src.Set(a, []byte(appSpec(a, "v1")))
	}
	e.waitList("?limit=1", "the stable apps are listed", func(l AppList) bool { return l.Total == stable })

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var churned atomic.Int64
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewSource(1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			// odd names come and go between the stable ones, and before
			// all of them
			n := fmt.Sprintf("app-%04d", r.Intn(stable+1)*2+1)
			if r.Intn(20) == 0 {
				n = "aaa-first"
			}
			if r.Intn(2) == 0 {
				e.src.Set(n, []byte(appSpec(n, "v1")))
			} else {
				e.src.Delete(context.Background(), n, "")
			}
			churned.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	list := func(query string) (map[string]int, int) {
		seen := map[string]int{}
		cont, pages := "", 0
		for {
			q := query
			if cont != "" {
				q += "&continue=" + url.QueryEscape(cont)
			}
			resp, err := http.Get(e.url + "/api/v1/apps?" + q)
			if err != nil {
				t.Fatal(err)
			}
			var l AppList
			err = json.NewDecoder(resp.Body).Decode(&l)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET ?%s: %d %v", q, resp.StatusCode, err)
			}
			for _, s := range l.Apps {
				seen[s.App]++
			}
			pages++
			if cont = l.Continue; cont == "" {
				return seen, pages
			}
			if pages > 1000 {
				t.Fatal("the listing never ended")
			}
		}
	}
	// list again and again until apps came and went during many listings
	for round := 0; round < 6 || churned.Load() < 300; round++ {
		if round > 2000 {
			t.Fatalf("only %d apps came or went in %d listings", churned.Load(), round)
		}
		query := "limit=37"
		if round%2 == 1 {
			query = "limit=23&q=app-"
		}
		seen, pages := list(query)
		for i := 0; i < stable; i++ {
			if n := seen[fmt.Sprintf("app-%04d", i*2)]; n != 1 {
				t.Fatalf("round %d (?%s): app-%04d listed %d times", round, query, i*2, n)
			}
		}
		for app, n := range seen {
			if n > 1 {
				t.Fatalf("round %d (?%s): %s listed %d times", round, query, app, n)
			}
		}
		if pages < 2 {
			t.Fatalf("round %d: one page only", round)
		}
	}
	close(stop)
	wg.Wait()
}
