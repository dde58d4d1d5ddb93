package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/rollout/engine"
)

// Formats of a sink's payload.
const (
	FormatJSON     = "json"
	FormatSlack    = "slack"
	FormatDingTalk = "dingtalk"
	FormatFeishu   = "feishu"
)

// DefaultEvents are the event reasons sent when a sink names none.
var DefaultEvents = []string{"RolloutStarted", "Promoted", "Aborted", "RolledBack", "AnalysisFailed",
	"ProgressDeadlineExceeded", "InvalidSpec", "ApplyFailed", "Superseded"}

// Sink is one destination.
type Sink struct {
	Name   string   `mapstructure:"name"`
	URL    string   `mapstructure:"url"`
	Format string   `mapstructure:"format"` // json (default), slack, dingtalk, feishu
	Events []string `mapstructure:"events"` // reasons to send (default DefaultEvents; "*" = all)
	Apps   []string `mapstructure:"apps"`   // apps to send for (default all)
}

// Validate checks a sink.
func (s Sink) Validate() error {
	if s.Name == "" || s.URL == "" {
		return fmt.Errorf("notification sink needs a name and a url")
	}
	switch s.Format {
	case "", FormatJSON, FormatSlack, FormatDingTalk, FormatFeishu:
	default:
		return fmt.Errorf("notification sink %s: format %q is not json, slack, dingtalk or feishu", s.Name, s.Format)
	}
	return nil
}

func (s Sink) wants(m engine.Message) bool {
	if m.Event == nil {
		return false
	}
	if len(s.Apps) > 0 && !slices.Contains(s.Apps, m.Event.App) {
		return false
	}
	events := s.Events
	if len(events) == 0 {
		events = DefaultEvents
	}
	return slices.Contains(events, "*") || slices.Contains(events, m.Event.Reason)
}

// Config configures a Notifier.
type Config struct {
	Client  *http.Client  // default: 10s timeout
	Logger  *slog.Logger  // default: discarded (logx.OrDiscard)
	Retries int           // attempts after the first (default 3)
	Backoff time.Duration // first retry delay, doubling (default 500ms)
	// Queue bounds the events waiting to be sent per sink (default 256);
	// past it the oldest is dropped and logged.
	Queue int
}

// Notifier delivers events to sinks.
type Notifier struct {
	cfg   Config
	sinks []Sink
}

// New returns a Notifier for sinks.
func New(cfg Config, sinks ...Sink) *Notifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 256
	}
	return &Notifier{cfg: cfg, sinks: sinks}
}

// Start subscribes to the broker's events for every app and delivers them
// in the background until ctx ends. Each sink has its own queue, so a slow
// one delays no other. Events published after Start returns are seen.
func (n *Notifier) Start(ctx context.Context, b *engine.Broker) {
	if len(n.sinks) == 0 {
		return
	}
	ch, cancel := b.Subscribe("")
	go func() {
		defer cancel()
		n.run(ctx, ch)
	}()
}

func (n *Notifier) run(ctx context.Context, ch <-chan engine.Message) {
	queues := make([]chan engine.EventView, len(n.sinks))
	for i, s := range n.sinks {
		queues[i] = make(chan engine.EventView, n.cfg.Queue)
		go n.deliver(ctx, s, queues[i])
	}
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-ch:
			for i, s := range n.sinks {
				if !s.wants(m) {
					continue
				}
				select {
				case queues[i] <- *m.Event:
				default:
					dropped := <-queues[i]
					n.cfg.Logger.Warn("notification queue full: dropped the oldest event", "sink", s.Name, "app", dropped.App, "reason", dropped.Reason)
					queues[i] <- *m.Event
				}
			}
		}
	}
}

func (n *Notifier) deliver(ctx context.Context, s Sink, q <-chan engine.EventView) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-q:
			if err := n.Send(ctx, s, ev); err != nil && ctx.Err() == nil {
				n.cfg.Logger.Error("notification not delivered", "sink", s.Name, "app", ev.App, "reason", ev.Reason, "err", err)
			}
		}
	}
}

// Send delivers one event to one sink, retrying with back-off on network
// errors, 429 and 5xx answers.
func (n *Notifier) Send(ctx context.Context, s Sink, ev engine.EventView) error {
	body, err := Payload(s.Format, ev)
	if err != nil {
		return err
	}
	delay := n.cfg.Backoff
	var last error
	for attempt := 0; attempt <= n.cfg.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay *= 2
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("sink %s: %w", s.Name, err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := n.cfg.Client.Do(req)
		if err != nil {
			last = fmt.Errorf("sink %s: %w", s.Name, err)
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode == 429 || resp.StatusCode >= 500:
			last = fmt.Errorf("sink %s: HTTP %d: %s", s.Name, resp.StatusCode, bytes.TrimSpace(msg))
		default:
			return fmt.Errorf("sink %s: HTTP %d: %s", s.Name, resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", n.cfg.Retries+1, last)
}

// Text is the one-line rendering chat tools show.
func Text(ev engine.EventView) string {
	icon := "ℹ️"
	if ev.Type == "Warning" {
		icon = "⚠️"
	}
	app := ev.App
	if ev.Env != "" {
		app = ev.Env + "/" + ev.App
	}
	return fmt.Sprintf("%s graylane %s: %s — %s", icon, app, ev.Reason, ev.Message)
}

// Payload renders an event in a sink's format:
//
//	json      {"app","env","type","reason","message","time"} (env only with environments)
//	slack     {"text": Text(ev)}
//	dingtalk  {"msgtype":"text","text":{"content": Text(ev)}}
//	feishu    {"msg_type":"text","content":{"text": Text(ev)}}
func Payload(format string, ev engine.EventView) ([]byte, error) {
	switch format {
	case "", FormatJSON:
		m := map[string]any{"app": ev.App, "type": ev.Type, "reason": ev.Reason, "message": ev.Message, "time": ev.Time}
		if ev.Env != "" {
			m["env"] = ev.Env
		}
		return json.Marshal(m)
	case FormatSlack:
		return json.Marshal(map[string]any{"text": Text(ev)})
	case FormatDingTalk:
		return json.Marshal(map[string]any{"msgtype": "text", "text": map[string]string{"content": Text(ev)}})
	case FormatFeishu:
		return json.Marshal(map[string]any{"msg_type": "text", "content": map[string]string{"text": Text(ev)}})
	}
	return nil, fmt.Errorf("unknown notification format %q", format)
}
