package nacos_test

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/graylane/graylane/configsync/sourcetest"
	"github.com/graylane/graylane/testsupport/polaris"
	"github.com/graylane/graylane/testsupport/testenv"
)

// TestSDKReconnectsUnderLoad keeps one nacos-sdk-go config client (the
// library graylane's source is built on) reading through three cuts of its
// connection to a real server. Each cut makes the SDK's gRPC client
// reconnect from its own goroutine while the readers' requests retry; the
// released SDK replaces its connection there with no synchronisation, which
// `go test -race` reports here (upstream #833/#905). graylane builds a
// patched copy (third_party/nacos-sdk-go/GRAYLANE.md); this test is what
// shows the patch is needed and is enough. After each cut the client must
// read the published content again.
func TestSDKReconnectsUnderLoad(t *testing.T) {
	testenv.IntegrationTest(t)
	srv := polaris.Start(t)
	group := testGroup(t)
	httpProxy := sourcetest.NewProxy(t, srv.NacosAddr())
	grpcProxy := sourcetest.NewProxy(t, net.JoinHostPort(srv.Host(), strconv.Itoa(srv.GRPCPort())))
	host, httpPort := splitHostPort(t, httpProxy.Addr())
	_, grpcPort := splitHostPort(t, grpcProxy.Addr())

	const readers = 6
	ids := make([]string, readers)
	for i := range ids {
		ids[i] = fmt.Sprintf("reconnect-%d", i)
		srv.PublishConfig(t, group, ids[i], "v1-"+ids[i])
	}
	client := bareSDKClient(t, constant.ServerConfig{IpAddr: host, Port: uint64(httpPort), GrpcPort: uint64(grpcPort)})

	// Each reader follows its own dataId: the SDK rate-limits reads to
	// five a second per dataId across the process.
	var (
		mu     sync.Mutex
		last   = make(map[string]time.Time) // dataId -> last successful read
		failed = make(map[string]time.Time) // dataId -> last failed read
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				got, err := client.GetConfig(vo.ConfigParam{DataId: id, Group: group})
				mu.Lock()
				if err == nil && got == "v1-"+id {
					last[id] = time.Now()
				} else {
					failed[id] = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	// every reader has seen an outcome since the given time
	seenSince := func(seen map[string]time.Time, what string, since time.Time) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if !seen[id].After(since) {
					return fmt.Errorf("no %s of %s since %s", what, id, since.Format(time.StampMilli))
				}
			}
			return nil
		}
	}
	since := time.Now()
	for cut := range 3 {
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("reads before cut %d", cut+1), seenSince(last, "read", since))
		since = time.Now()
		restoreHTTP, restoreGRPC := httpProxy.Cut(), grpcProxy.Cut()
		// Every reader's requests fail and retry while the SDK reconnects.
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("failures in cut %d", cut+1), seenSince(failed, "failed read", since))
		restoreHTTP()
		restoreGRPC()
		since = time.Now()
	}
	testenv.Eventually(t, 30*time.Second, "reads after the last cut", seenSince(last, "read", since))
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, n
}
