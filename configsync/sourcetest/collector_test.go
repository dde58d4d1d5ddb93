package sourcetest_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configsync/sourcetest"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}

func put(app, data string, rev int64) configsync.Event {
	return configsync.Event{Type: configsync.Put, Entry: configsync.Entry{App: app, Data: []byte(data), Version: fmt.Sprint(rev), Revision: rev}}
}

func del(app string, rev int64) configsync.Event {
	return configsync.Event{Type: configsync.Delete, Entry: configsync.Entry{App: app, Revision: rev}}
}

func collect(t *testing.T, rs ...configsync.WatchResponse) (*sourcetest.Collector, *recorder) {
	ch := make(chan configsync.WatchResponse)
	rec := &recorder{TB: t}
	c := sourcetest.Collect(rec, ch)
	for _, r := range rs {
		ch <- r
	}
	close(ch)
	c.WaitClosed(t, 5*time.Second)
	return c, rec
}

func TestCollectorFindsViolations(t *testing.T) {
	tests := []struct {
		name string
		rs   []configsync.WatchResponse
		want string // substring of the one problem; "" for none
	}{
		{name: "clean", rs: []configsync.WatchResponse{
			{Reset: true, Revision: 2, Events: []configsync.Event{put("a", "1", 2)}},
			{Revision: 3, Events: []configsync.Event{put("a", "2", 3)}},
			{Revision: 3, Err: fmt.Errorf("down: %w", configsync.ErrUnavailable)},
			{Reset: true, Revision: 5, Events: []configsync.Event{put("a", "2", 3)}}, // restating is fine in a Reset
			{Revision: 6, Events: []configsync.Event{del("a", 6)}},
		}},
		{name: "duplicate put", want: "duplicate delivery of a", rs: []configsync.WatchResponse{
			{Revision: 2, Events: []configsync.Event{put("a", "1", 2)}},
			{Revision: 3, Events: []configsync.Event{put("a", "1", 3)}},
		}},
		{name: "duplicate within a response", want: "duplicate delivery of a", rs: []configsync.WatchResponse{
			{Revision: 3, Events: []configsync.Event{put("a", "1", 2), put("a", "1", 3)}},
		}},
		{name: "delete of nothing", want: "duplicate delete of a", rs: []configsync.WatchResponse{
			{Revision: 2, Events: []configsync.Event{del("a", 2)}},
		}},
		{name: "older state", want: "a at revision 2 after revision 3", rs: []configsync.WatchResponse{
			{Revision: 3, Events: []configsync.Event{put("a", "new", 3)}},
			{Revision: 3, Events: []configsync.Event{put("a", "old", 2)}},
		}},
		{name: "revision backwards", want: "revision 2 after revision 5", rs: []configsync.WatchResponse{
			{Reset: true, Revision: 5},
			{Revision: 2, Events: []configsync.Event{put("b", "1", 2)}},
		}},
		{name: "foreign error", want: "does not wrap configsync.ErrUnavailable", rs: []configsync.WatchResponse{
			{Err: errors.New("boom")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := collect(t, tt.rs...)
			problems := c.Problems()
			if tt.want == "" {
				if len(problems) != 0 {
					t.Fatalf("problems %q, want none", problems)
				}
				return
			}
			if len(problems) != 1 || !strings.Contains(problems[0], tt.want) {
				t.Fatalf("problems %q, want one containing %q", problems, tt.want)
			}
			for _, f := range rec.cleanups {
				f()
			}
			if len(rec.errs) != 1 {
				t.Fatalf("cleanup reported %q, want the problem once", rec.errs)
			}
		})
	}
}

func TestCollectorState(t *testing.T) {
	c, _ := collect(t,
		configsync.WatchResponse{Reset: true, Revision: 2, Events: []configsync.Event{put("a", "1", 1), put("b", "1", 2)}},
		configsync.WatchResponse{Revision: 4, Events: []configsync.Event{put("a", "2", 3), del("b", 4)}},
		configsync.WatchResponse{Reset: true, Revision: 6, Events: []configsync.Event{put("a", "2", 3), put("c", "1", 6)}},
	)
	if got := c.Data("a"); len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("deliveries of a = %q", got)
	}
	if _, ok := c.Get("b"); ok {
		t.Error("b not removed")
	}
	if e, ok := c.Get("c"); !ok || string(e.Data) != "1" {
		t.Errorf("c = %+v", e)
	}
	if c.Revision() != 6 || len(c.Responses()) != 3 || c.Err() != nil {
		t.Errorf("revision %d, %d responses, err %v", c.Revision(), len(c.Responses()), c.Err())
	}
}

func TestCollectorWaitsForLaterResponses(t *testing.T) {
	ch := make(chan configsync.WatchResponse)
	c := sourcetest.Collect(t, ch)
	go func() {
		ch <- configsync.WatchResponse{Reset: true, Revision: 1}
		ch <- configsync.WatchResponse{Revision: 2, Events: []configsync.Event{put("a", "x", 2)}}
	}()
	if e := c.WaitData(t, "a", []byte("x"), 5*time.Second); e.Revision != 2 {
		t.Fatalf("entry %+v", e)
	}
	close(ch)
	c.WaitClosed(t, 5*time.Second)
}

func TestProxyCutAndRestore(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo server
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p := sourcetest.NewProxy(t, ln.Addr().String())
	echo := func() (net.Conn, error) {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return c, err
		}
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		if err == nil && string(buf) != "ping" {
			err = fmt.Errorf("echoed %q", buf)
		}
		return c, err
	}
	open, err := echo()
	if err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	restore := p.Cut()
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Fatal("an open connection survived the cut")
	}
	if _, err := echo(); err == nil {
		t.Fatal("a new connection got through while cut")
	}
	restore()
	if c, err := echo(); err != nil {
		t.Fatalf("after restore: %v", err)
	} else {
		c.Close()
	}
}
