package etcdserver

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// etcd's serving loops log their own listeners closing at a clean stop as
// errors; graylane logs them at debug, and real serving errors as errors.
func TestSlogCoreQuietensACleanStop(t *testing.T) {
	var buf bytes.Buffer
	log := zap.New(&slogCore{h: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}), min: slog.LevelInfo})
	log.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("http: Server closed")))
	log.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("accept tcp 127.0.0.1:1: use of closed network connection")))
	if buf.Len() != 0 {
		t.Fatalf("a clean stop logged at info or above:\n%s", buf.String())
	}
	log.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("listen tcp: address already in use")))
	if !strings.Contains(buf.String(), "level=ERROR") || !strings.Contains(buf.String(), "address already in use") {
		t.Fatalf("a real serving error was not logged as an error:\n%s", buf.String())
	}
}
