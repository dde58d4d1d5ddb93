package etcdserver_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graylane/graylane/internal/etcdserver"
	"github.com/graylane/graylane/testsupport/testenv"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func start(t *testing.T, dir string) *etcdserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := etcdserver.Start(ctx, etcdserver.Config{
		Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true,
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func client(t *testing.T, s *etcdserver.Server) *clientv3.Client {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTwoServersRestartKeepsData(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := start(t, t.TempDir())
	b := start(t, t.TempDir())
	if a.ClientAddr() == b.ClientAddr() {
		t.Fatalf("both servers on %s", a.ClientAddr())
	}
	if _, err := client(t, a).Put(ctx, "k", "in-a"); err != nil {
		t.Fatal(err)
	}
	if r, err := client(t, b).Get(ctx, "k"); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("server b sees a's key: %v %v", r, err)
	}

	cfg := a.Config()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	select {
	case <-a.Stopped():
	default:
		t.Fatal("Stopped not closed after Close")
	}
	ctxShort, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := client(t, a).Get(ctxShort, "k"); err == nil {
		t.Fatal("get from a stopped server succeeded")
	}
	cancelShort()

	a2, err := etcdserver.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { a2.Close() })
	if a2.ClientAddr() != cfg.ClientAddr {
		t.Fatalf("restarted on %s, want %s", a2.ClientAddr(), cfg.ClientAddr)
	}
	r, err := client(t, a2).Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "in-a" {
		t.Fatalf("after restart get k = %v, %v; want in-a", r, err)
	}
}

func TestCompact(t *testing.T) {
	testenv.IntegrationTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := start(t, t.TempDir())
	c := client(t, s)
	var revs []int64
	for _, v := range []string{"1", "2", "3"} {
		r, err := c.Put(ctx, "k", v)
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, r.Header.Revision)
	}
	if err := s.Compact(ctx, revs[2]); err != nil {
		t.Fatal(err)
	}
	_, err := c.Get(ctx, "k", clientv3.WithRev(revs[0]))
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("get at compacted revision: err = %v, want ErrCompacted", err)
	}
	r, err := c.Get(ctx, "k")
	if err != nil || string(r.Kvs[0].Value) != "3" {
		t.Fatalf("get = %v, %v", r, err)
	}
}

func TestStartRequiresDir(t *testing.T) {
	testenv.IntegrationTest(t)
	if _, err := etcdserver.Start(context.Background(), etcdserver.Config{}); err == nil {
		t.Fatal("Start without Dir succeeded")
	}
}

func TestStartPortTaken(t *testing.T) {
	testenv.IntegrationTest(t)
	a := start(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := etcdserver.Start(ctx, etcdserver.Config{Dir: t.TempDir(), ClientAddr: a.ClientAddr(), PeerAddr: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("second server on a taken client port started")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestEtcdLogRoutedToWriter(t *testing.T) {
	testenv.IntegrationTest(t)
	var buf lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := etcdserver.Start(ctx, etcdserver.Config{
		Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true, EtcdLog: &buf,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !strings.Contains(buf.String(), "closed etcd server") {
		t.Fatalf("etcd log lacks its shutdown message:\n%s", buf.String())
	}
}
