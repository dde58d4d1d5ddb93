package etcdserver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go.uber.org/zap/zapcore"
)

// parseLevel reads debug, info, warn or error.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not a log level (debug, info, warn, error)", s)
}

// slogCore is a zapcore.Core writing etcd's log records into a slog
// handler (graylane's logger), from min up.
type slogCore struct {
	h      slog.Handler
	min    slog.Level
	fields []zapcore.Field
}

var _ zapcore.Core = (*slogCore)(nil)

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	lvl := slogLevel(l)
	return lvl >= c.min && c.h.Enabled(context.Background(), lvl)
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, min: c.min, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	lvl := slogLevel(e.Level)
	if closing(e.Message, enc.Fields["error"]) {
		// etcd reports its own listeners closing at a clean stop as an
		// error; it is not one
		lvl = slog.LevelDebug
		if !c.h.Enabled(context.Background(), lvl) || lvl < c.min {
			return nil
		}
	}
	r := slog.NewRecord(e.Time, lvl, e.Message, 0)
	for k, v := range enc.Fields {
		r.AddAttrs(slog.Any(k, v))
	}
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// closing reports whether an etcd log record is its serving loop noticing
// its own listener closed (a clean stop).
func closing(msg string, err any) bool {
	if !strings.HasPrefix(msg, "setting up serving from embedded etcd failed") {
		return false
	}
	e := fmt.Sprint(err)
	return strings.Contains(e, "http: Server closed") || strings.Contains(e, "use of closed network connection")
}
