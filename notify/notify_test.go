package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
)

// receiver is an HTTP endpoint that records what it is sent and can fail
// the first n requests.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	fail   int
	got    chan struct{}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	r.bodies = append(r.bodies, b)
	r.got <- struct{}{}
}

func ev(app, reason string, typ rollout.EventType) engine.Message {
	return engine.Message{Kind: "event", Event: &engine.EventView{App: app, Time: time.Unix(1700000000, 0).UTC(),
		Event: rollout.Event{Type: typ, Reason: reason, Message: "v2 promoted; v1 kept for 30s"}}}
}

func TestSinksReceiveFilteredEventsInTheirFormats(t *testing.T) {
	recv := map[string]*receiver{}
	var sinks []Sink
	for _, f := range []string{FormatJSON, FormatSlack, FormatDingTalk, FormatFeishu} {
		r := &receiver{got: make(chan struct{}, 10)}
		srv := httptest.NewServer(r)
		defer srv.Close()
		recv[f] = r
		sinks = append(sinks, Sink{Name: f, URL: srv.URL, Format: f, Apps: []string{"shop"}})
	}
	recv[FormatSlack].fail = 2 // retried until it works
	b := engine.NewBroker()
	n := New(Config{Backoff: time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, sinks...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.Start(ctx, b)
	b.Publish("shop", ev("shop", "StepCompleted", rollout.Normal)) // not in the default events
	b.Publish("cart", ev("cart", "Promoted", rollout.Normal))      // not an app of these sinks
	b.Publish("shop", ev("shop", "Promoted", rollout.Normal))
	for f, r := range recv {
		select {
		case <-r.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s sink got nothing", f)
		}
	}
	want := map[string]string{
		FormatJSON:     `{"app":"shop","message":"v2 promoted; v1 kept for 30s","reason":"Promoted","time":"2023-11-14T22:13:20Z","type":"Normal"}`,
		FormatSlack:    `{"text":"ℹ️ graylane shop: Promoted — v2 promoted; v1 kept for 30s"}`,
		FormatDingTalk: `{"msgtype":"text","text":{"content":"ℹ️ graylane shop: Promoted — v2 promoted; v1 kept for 30s"}}`,
		FormatFeishu:   `{"content":{"text":"ℹ️ graylane shop: Promoted — v2 promoted; v1 kept for 30s"},"msg_type":"text"}`,
	}
	for f, r := range recv {
		r.mu.Lock()
		if len(r.bodies) != 1 || string(r.bodies[0]) != want[f] {
			t.Errorf("%s sink got %q, want exactly %s", f, r.bodies, want[f])
		}
		var any map[string]any
		if json.Unmarshal(r.bodies[0], &any) != nil {
			t.Errorf("%s payload is not JSON", f)
		}
		r.mu.Unlock()
	}
}

func TestSendGivesUpOnClientErrors(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		http.Error(w, "bad token", http.StatusForbidden)
	}))
	defer srv.Close()
	n := New(Config{Backoff: time.Millisecond})
	err := n.Send(context.Background(), Sink{Name: "chat", URL: srv.URL}, *ev("shop", "Promoted", rollout.Normal).Event)
	if err == nil || calls != 1 {
		t.Fatalf("err %v after %d calls; a 403 must not be retried", err, calls)
	}
	if (Sink{Name: "x", URL: "http://h", Format: "carrier-pigeon"}).Validate() == nil {
		t.Fatal("unknown format accepted")
	}
}
