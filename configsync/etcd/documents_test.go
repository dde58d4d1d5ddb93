package etcd_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/graylane/graylane/configsync"
	etcdsrc "github.com/graylane/graylane/configsync/etcd"
	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func TestDocumentsConformance(t *testing.T) {
	testenv.IntegrationTest(t)
	s := startServer(t)
	cli := client(t, s.addr())
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
