package etcdreg_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/sdk/etcdreg"
	"github.com/graylane/graylane/sdk/sdktest"
	"github.com/graylane/graylane/testsupport/etcdtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func inst(app, version, id string) gray.Instance {
	return gray.Instance{App: app, Version: version, ID: id, Addr: "127.0.0.1:" + strconv.Itoa(9000+int(id[0])), Ready: true, Meta: map[string]string{"zone": "z"}}
}

func ids(l []gray.Instance) string {
	s := ""
	for _, in := range l {
		s += in.App + "/" + in.Version + "/" + in.ID + " "
	}
	return s
}

// TestRegisterOutlivesTheTTLAndComesBack: a registration stays while its
// owner lives (past several TTLs), comes back by itself when its lease is
// lost, and goes at once on Deregister.
func TestRegisterOutlivesTheTTLAndComesBack(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	reg := etcdreg.New(etcdreg.Config{Client: cli, TTL: 2 * time.Second, Logger: sdktest.Logger(t, slog.LevelInfo)})
	ctx := sdktest.Ctx(t, time.Minute)
	watch := reg.Watch(ctx, "shop")
	next := func(what string) []gray.Instance {
		t.Helper()
		select {
		case l := <-watch:
			return l
		case <-time.After(15 * time.Second):
			t.Fatalf("no instance list %s", what)
			return nil
		}
	}
	if l := next("at start"); len(l) != 0 {
		t.Fatalf("first list %v, want empty", ids(l))
	}
	r, err := reg.Register(ctx, inst("shop", "v1", "1"))
	sdktest.Must(t, "register", err)
	if l := next("after registering"); len(l) != 1 || l[0].ID != "1" || l[0].Meta["zone"] != "z" || l[0].RegisteredAt.IsZero() {
		t.Fatalf("after registering: %+v", l)
	}
	// three TTLs later it is still there (the lease is renewed) and no
	// change was delivered
	select {
	case l := <-watch:
		t.Fatalf("the list changed while the owner lived: %v", ids(l))
	case <-time.After(6 * time.Second):
	}
	// lose the lease (as after a long partition): it registers again
	resp, err := cli.Get(ctx, gray.InstanceKey(gray.DefaultInstancePrefix, "shop", "v1", "1"))
	sdktest.Must(t, "get", err)
	_, err = cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	sdktest.Must(t, "revoke", err)
	if l := next("after the lease was revoked"); len(l) != 0 {
		t.Fatalf("after revoking: %v", ids(l))
	}
	if l := next("after registering again"); len(l) != 1 {
		t.Fatalf("not registered again: %v", ids(l))
	}
	sdktest.Must(t, "deregister", r.Deregister(ctx))
	if l := next("after deregistering"); len(l) != 0 {
		t.Fatalf("after deregistering: %v", ids(l))
	}
	sdktest.Must(t, "deregister twice", r.Deregister(ctx))
}

func TestPutHeartbeatDelete(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	reg := etcdreg.New(etcdreg.Config{Client: cli})
	ctx := sdktest.Ctx(t, time.Minute)
	if _, err := reg.Put(ctx, inst("shop", "v1", "a"), time.Second); err == nil {
		t.Fatal("a TTL under the minimum was accepted")
	}
	if _, err := reg.Put(ctx, gray.Instance{App: "shop", Version: "v1", ID: "a/b", Addr: "x"}, 5*time.Second); err == nil {
		t.Fatal("a bad instance was accepted")
	}
	_, err := reg.Put(ctx, inst("shop", "v1", "a"), 2*time.Second)
	sdktest.Must(t, "put a", err)
	_, err = reg.Put(ctx, inst("shop", "v1", "b"), 2*time.Second)
	sdktest.Must(t, "put b", err)
	_, err = reg.Put(ctx, inst("cart", "v3", "c"), 2*time.Second)
	sdktest.Must(t, "put c", err)
	// b moves to v2: the old key goes
	_, err = reg.Put(ctx, inst("shop", "v2", "b"), 2*time.Second)
	sdktest.Must(t, "move b", err)
	l, err := reg.List(ctx, "")
	sdktest.Must(t, "list", err)
	if got := ids(l); got != "cart/v3/c shop/v1/a shop/v2/b " {
		t.Fatalf("List = %q", got)
	}
	// heartbeats keep a alive past its TTL; b and c expire (they were put
	// after a with the same TTL, so by then a's own TTL has passed too)
	testenv.Eventually(t, 10*time.Second, "b and c expired, a kept by its heartbeats", func() error {
		if _, err := reg.Heartbeat(ctx, "shop", "a"); err != nil {
			return testenv.Stop(fmt.Errorf("heartbeat a: %w", err))
		}
		l, err := reg.List(ctx, "")
		if err != nil {
			return err
		}
		return testenv.Check(ids(l) == "shop/v1/a ", "list %q", ids(l))
	})
	if _, err := reg.Heartbeat(ctx, "shop", "b"); !errors.Is(err, configsync.ErrNotFound) {
		t.Fatalf("heartbeat of an expired registration = %v, want ErrNotFound", err)
	}
	sdktest.Must(t, "delete a", reg.Delete(ctx, "shop", "a"))
	sdktest.Must(t, "delete missing", reg.Delete(ctx, "shop", "zz"))
	if l, _ := reg.List(ctx, "shop"); len(l) != 0 {
		t.Fatalf("after delete: %v", ids(l))
	}
}

func TestWatchIgnoresMalformedKeys(t *testing.T) {
	testenv.IntegrationTest(t)
	cli := etcdtest.Start(t).Client()
	reg := etcdreg.New(etcdreg.Config{Client: cli})
	ctx := sdktest.Ctx(t, time.Minute)
	for k, v := range map[string]string{
		"/graylane/instances/shop/v1":        `{}`,
		"/graylane/instances/shop/v1/x/y":    `{}`,
		"/graylane/instances/shop/v1/broken": `{`,
		"/graylane/instances/shop/v1/ok":     `{"addr":"127.0.0.1:1","ready":true,"app":"ignored","version":"ignored"}`,
	} {
		_, err := cli.Put(ctx, k, v)
		sdktest.Must(t, "put "+k, err)
	}
	l := <-reg.Watch(ctx, "")
	if len(l) != 1 || l[0].App != "shop" || l[0].Version != "v1" || l[0].ID != "ok" {
		t.Fatalf("watch listed %+v, want only shop/v1/ok (the key decides app, version and ID)", l)
	}
}
