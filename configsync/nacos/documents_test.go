package nacos_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

func newDocuments(t *testing.T, srv *polaris.Server) *nacos.Documents {
	t.Helper()
	d, err := nacos.NewDocuments(nacos.Config{Servers: []string{srv.NacosAddr()}, Timeout: 5 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestDocumentsConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := polaris.Start(t)
	var n atomic.Int64
	sourcetest.RunDocuments(t, func(t *testing.T) *sourcetest.DocumentsHarness {
		return &sourcetest.DocumentsHarness{
			Docs: newDocuments(t, srv),
			Location: func(name string) configsync.Location {
				// a group of the test's own (the SDK rate-limits reads per
				// dataId and group process-wide) in a non-public namespace
				return configsync.Location{Namespace: "docs", Group: testGroup(t), DataID: fmt.Sprintf("%s-%d.yaml", name, n.Add(1))}
			},
			Eventually: within,
		}
	})
}

// TestDocumentsSeenByAnotherClient checks writes with an independent
// client of the server (the console's), and that ReadBack reports what
// the server serves, not this process's own recent write.
func TestDocumentsSeenByAnotherClient(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := polaris.Start(t)
	d := newDocuments(t, srv)
	group := testGroup(t)
	loc := configsync.Location{Group: group, DataID: "shop-app.yaml"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.Write(ctx, loc, []byte("greeting: hello\n"), configsync.Absent); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, within, "the Polaris console reads the write", func() error {
		if got, ok := srv.GetConfig(t, group, "shop-app.yaml"); !ok || got != "greeting: hello\n" {
			return fmt.Errorf("console reads %q (%v)", got, ok)
		}
		return nil
	})
	// an edit made in the console is what ReadBack reports
	srv.PublishConfig(t, group, "shop-app.yaml", "greeting: edited\n")
	testenv.Eventually(t, within, "ReadBack shows the console's edit", func() error {
		doc, err := d.ReadBack(ctx, loc)
		if err != nil || string(doc.Data) != "greeting: edited\n" {
			return fmt.Errorf("%q %v", doc.Data, err)
		}
		return nil
	})
	if _, err := d.Write(ctx, loc, nil, ""); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty write: %v", err)
	}
	srv.Kill()
	if _, err := d.ReadBack(ctx, loc); !errors.Is(err, configsync.ErrUnavailable) {
		t.Fatalf("read with Nacos down: %v", err)
	}
}
