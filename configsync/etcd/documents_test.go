package etcd_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/graylane/graylane/configsync"
	etcdsrc "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/internal/etcdserver"
)

func TestDocumentsConformance(t *testing.T) {
	s := startServer(t)
	cli, err := etcdserver.NewClient([]string{s.addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	var n atomic.Int64
	sourcetest.RunDocuments(t, func(t *testing.T) *sourcetest.DocumentsHarness {
		return &sourcetest.DocumentsHarness{
			Docs: etcdsrc.NewDocuments(cli),
			Location: func(name string) configsync.Location {
				return configsync.Location{Key: fmt.Sprintf("/docs/%s-%d", name, n.Add(1))}
			},
		}
	})
}
