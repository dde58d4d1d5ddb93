package polaris

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// The methods below play an operator at the Nacos console, in the public
// namespace, through a nacos-sdk-go config client (gRPC) that the Server
// owns. They fail the test on any error.
//
// Why not the v1 HTTP API: Polaris trims leading and trailing whitespace
// from content published over HTTP, so "a: 1\n" would come back as "a: 1".
// Why the Server owns the client: nacos-sdk-go v2.3.2 reconnects with
// unsynchronised writes (a data race the race detector reports; upstream
// issues #741, #905), so Kill closes the console client before the server
// goes down and the next call after Restart connects a new one.

type console struct {
	mu  sync.Mutex
	c   config_client.IConfigClient
	seq int
}

func (s *Server) consoleClient(t testing.TB) config_client.IConfigClient {
	t.Helper()
	s.console.mu.Lock()
	defer s.console.mu.Unlock()
	if s.console.c != nil {
		return s.console.c
	}
	s.console.seq++
	dir := filepath.Join(s.dir, fmt.Sprintf("console-%d", s.console.seq))
	c, err := clients.NewConfigClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			TimeoutMs: 5000, CacheDir: dir, LogDir: dir, LogLevel: "warn",
			NotLoadCacheAtStart: true, DisableUseSnapShot: true, AppName: "polaris-console",
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: s.Host(), Port: uint64(s.Port())}},
	})
	if err != nil {
		t.Fatalf("polaris console: new client: %v", err)
	}
	s.console.c = c
	return c
}

// closeConsole shuts the console client down (before the server goes away).
func (s *Server) closeConsole() {
	s.console.mu.Lock()
	defer s.console.mu.Unlock()
	if s.console.c != nil {
		s.console.c.CloseClient()
		s.console.c = nil
	}
}

// PublishConfig publishes content (type yaml) as dataID in group, exactly
// as given.
func (s *Server) PublishConfig(t testing.TB, group, dataID, content string) {
	t.Helper()
	c := s.consoleClient(t)
	retry(t, "publish "+group+"/"+dataID, func() (bool, error) {
		return c.PublishConfig(vo.ConfigParam{DataId: dataID, Group: group, Content: content, Type: "yaml"})
	})
}

// retry runs an idempotent console request up to 3 times: nacos-sdk-go
// gives publishes and deletes a fixed 3 s, which a loaded test machine can
// exceed.
func retry(t testing.TB, what string, req func() (bool, error)) {
	t.Helper()
	var ok bool
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if ok, err = req(); err == nil && ok {
			return
		}
		t.Logf("polaris console: %s: attempt %d: ok=%v, %v", what, attempt, ok, err)
	}
	t.Fatalf("polaris console: %s: ok=%v, %v", what, ok, err)
}

// GetConfig reads dataID in group; ok is false when it does not exist (or
// is empty, which Nacos cannot store). Like every read from Polaris it may
// lag a write by about a second.
func (s *Server) GetConfig(t testing.TB, group, dataID string) (content string, ok bool) {
	t.Helper()
	c := s.consoleClient(t)
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("polaris console: get %s/%s", group, dataID), func() error {
		var err error
		content, err = c.GetConfig(vo.ConfigParam{DataId: dataID, Group: group})
		if err != nil && !strings.Contains(err.Error(), "is limited") {
			t.Fatalf("polaris console: get %s/%s: %v", group, dataID, err)
		}
		// nacos-sdk-go allows 5 reads per second per dataId per process:
		// "is limited" passes with the next token.
		return err
	})
	return content, content != ""
}

// DeleteConfig deletes dataID in group (deleting a missing one is fine).
func (s *Server) DeleteConfig(t testing.TB, group, dataID string) {
	t.Helper()
	c := s.consoleClient(t)
	retry(t, "delete "+group+"/"+dataID, func() (bool, error) {
		return c.DeleteConfig(vo.ConfigParam{DataId: dataID, Group: group})
	})
}
