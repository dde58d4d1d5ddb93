package apolloserver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apolloconfig/agollo/v4"
	"github.com/apolloconfig/agollo/v4/env/config"
	"github.com/apolloconfig/agollo/v4/storage"

	"github.com/graylane/graylane/testsupport/testenv"
)

// These tests use the official Go client agollo v4.4.0 as an independent
// party. agollo keeps global state per server URL, so every test has its own
// server; every release happens before a client starts (a 404 would make
// agollo back off for ~30 s).

type agolloOpts struct {
	label     string
	secret    string
	backupDir string
	// readBackupOnly: agollo reads BackupConfigPath whenever the server
	// fails, but writes it only with IsBackupConfig.
	readBackupOnly bool
}

func startAgollo(t *testing.T, s *Server, appID, namespace string, o agolloOpts) *agolloClient {
	t.Helper()
	c, err := agollo.StartWithConfig(func() (*config.AppConfig, error) {
		return &config.AppConfig{
			AppID:            appID,
			Cluster:          "default",
			NamespaceName:    namespace,
			IP:               s.URL(),
			Label:            o.label,
			Secret:           o.secret,
			IsBackupConfig:   o.backupDir != "" && !o.readBackupOnly,
			BackupConfigPath: o.backupDir,
			MustStart:        true,
		}, nil
	})
	if err != nil {
		t.Fatalf("agollo start: %v", err)
	}
	ac := &agolloClient{Client: c, changes: make(chan *storage.ChangeEvent, 64), newest: make(chan struct{}, 1)}
	c.AddChangeListener(ac)
	t.Cleanup(ac.close)
	return ac
}

// agolloClient wraps an agollo client with a listener and a safe close.
type agolloClient struct {
	agollo.Client
	changes chan *storage.ChangeEvent
	newest  chan struct{}
	once    sync.Once
	noClose bool
}

// leak leaves the client running when the test ends.
func (c *agolloClient) leak() { c.noClose = true }

func (c *agolloClient) OnChange(e *storage.ChangeEvent) {
	select {
	case c.changes <- e:
	default:
	}
}

func (c *agolloClient) OnNewestChange(*storage.FullChangeEvent) {
	select {
	case c.newest <- struct{}{}:
	default:
	}
}

// close stops the client's poll loop. agollo v4.4.0 creates the loop's stop
// channel inside the loop goroutine without synchronisation, so Close is only
// race-free once something from that goroutine has reached us: wait for an
// update event it delivered (its first long poll always refetches /configs,
// because the initial load via /configfiles carries no release key). Without
// one, leave the client running (agollo's other goroutine never stops anyway).
func (c *agolloClient) close() {
	c.once.Do(func() {
		if c.noClose {
			return
		}
		select {
		case <-c.newest:
			c.Client.Close()
		case <-time.After(15 * time.Second):
		}
	})
}

// awaitChange waits for a change event that sets key to want.
func awaitChange(t *testing.T, c *agolloClient, key, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-c.changes:
			if ch := e.Changes[key]; ch != nil && ch.NewValue == want {
				return
			}
		case <-deadline:
			t.Fatalf("agollo saw no change of %s to %q", key, want)
		}
	}
}

// The app has an access key, so agollo's signatures are checked on every
// request (configfiles, notifications, configs).
func TestAgolloLoadsAndFollowsOpenAPIPublishes(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{LongPollTimeout: 10 * time.Second})
	must(t, s.CreateApp("agollo-app", "agollo-secret"))
	must(t, s.CreateToken("tok"))
	must(t, s.GrantApp("tok", "agollo-app"))
	publish(t, s, "agollo-app", "default", "application", "v1", "greeting", "hello", "n", "1")

	c := startAgollo(t, s, "agollo-app", "application", agolloOpts{secret: "agollo-secret"})
	if v := c.GetConfig("application").GetValue("greeting"); v != "hello" {
		t.Fatalf("initial load: %q", v)
	}
	p := "/envs/DEV/apps/agollo-app/clusters/default/namespaces/application"
	if r := api(t, s, "PUT", p+"/items/greeting", "tok", map[string]string{"key": "greeting", "value": "bonjour", "dataChangeLastModifiedBy": "apollo"}); r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if r := api(t, s, "POST", p+"/releases", "tok", releaseBody("agollo-app v2", "apollo")); r.status != 200 {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	awaitChange(t, c, "greeting", "bonjour")
	if v := c.GetConfig("application").GetValue("n"); v != "1" {
		t.Fatalf("unchanged key: %q", v)
	}
}

func TestAgolloGrayByLabel(t *testing.T) {
	testenv.IntegrationTest(t)
	s := start(t, Options{LongPollTimeout: 10 * time.Second})
	must(t, s.CreateApp("gray-app", ""))
	publish(t, s, "gray-app", "default", "application", "m", "color", "blue", "size", "L")
	branch, err := s.CreateBranch("gray-app", "default", "application")
	must(t, err)
	must(t, s.SetItem("gray-app", branch, "application", "color", "green"))
	must(t, s.SetGrayRules("gray-app", "default", "application", branch, GrayRuleItem{ClientAppID: "gray-app", ClientLabelList: []string{"canary"}}))
	publish(t, s, "gray-app", branch, "application", "gray")

	canary := startAgollo(t, s, "gray-app", "application", agolloOpts{label: "canary"})
	stable := startAgollo(t, s, "gray-app", "application", agolloOpts{})
	if v := canary.GetConfig("application").GetValue("color"); v != "green" {
		t.Fatalf("canary: %q", v)
	}
	if v := stable.GetConfig("application").GetValue("color"); v != "blue" {
		t.Fatalf("stable: %q", v)
	}
	if v := canary.GetConfig("application").GetValue("size"); v != "L" {
		t.Fatalf("canary inherits master keys: %q", v)
	}

	// Narrowing the rules notifies the master key; the canary falls back.
	must(t, s.SetGrayRules("gray-app", "default", "application", branch, GrayRuleItem{ClientAppID: "gray-app", ClientLabelList: []string{"nobody"}}))
	awaitChange(t, canary, "color", "blue")
}

func TestAgolloBackupFile(t *testing.T) {
	testenv.IntegrationTest(t)
	dir := t.TempDir()
	// This server is never closed: the second client below cannot be closed
	// race-free, and its port must not be handed to another test's server.
	s := New(Options{LongPollTimeout: 10 * time.Second})
	must(t, s.Start())
	must(t, s.CreateApp("bk-app", ""))
	ns, err := s.CreateNamespace("bk-app", "bkns", FormatProperties)
	must(t, err)
	rel := publish(t, s, "bk-app", "default", ns, "r", "k", "from-apollo")

	c := startAgollo(t, s, "bk-app", ns, agolloOpts{backupDir: dir})
	if v := c.GetConfig(ns).GetValue("k"); v != "from-apollo" {
		t.Fatalf("initial: %q", v)
	}
	file := filepath.Join(dir, "bk-app-"+ns+".json")
	var backup struct {
		AppID          string            `json:"appId"`
		NamespaceName  string            `json:"namespaceName"`
		ReleaseKey     string            `json:"releaseKey"`
		Configurations map[string]string `json:"configurations"`
	}
	// agollo's first load goes through /configfiles/json, which carries no
	// release key; its first long poll then fetches /configs and rewrites the
	// backup with the key. agollo truncates then writes: poll until a complete
	// document with the key is there.
	testenv.Eventually(t, 15*time.Second, "the backup file", func() error {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &backup); err != nil {
			return err
		}
		return testenv.Check(backup.ReleaseKey == rel.ReleaseKey, "release key %q", backup.ReleaseKey)
	})
	if backup.AppID != "bk-app" || backup.NamespaceName != ns || backup.Configurations["k"] != "from-apollo" {
		t.Fatalf("backup: %+v", backup)
	}

	// Apollo down: a client starting now falls back to the backup (agollo
	// first retries the dead server for ~10 s).
	c.close()
	s.Stop()
	c2 := startAgollo(t, s, "bk-app", ns, agolloOpts{backupDir: dir, readBackupOnly: true})
	c2.leak() // its loop never reaches the server again, so it cannot be closed race-free
	if v := c2.GetConfig(ns).GetValue("k"); v != "from-apollo" {
		t.Fatalf("from backup: %q", v)
	}
	must(t, s.Start()) // back up, same port, for the leaked client
}
