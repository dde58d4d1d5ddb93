package main

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/rollout/engine/shard"
)

// memberGone watches replica id's membership key and returns a function
// that waits for its deletion (the replica's lease expired in etcd) and
// returns when it was seen. A takeover figure splits there: kill → key gone
// is etcd's lease expiry (up to the TTL after the last keep-alive, plus
// etcd's expiry check), key gone → first request of the new owner is
// graylane's own takeover. The zero time means it was not seen within
// 5 minutes.
func memberGone(ctx context.Context, cli *clientv3.Client, id string) func() time.Time {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	gone := make(chan time.Time, 1)
	wch := cli.Watch(ctx, shard.DefaultPrefix+"members/"+id)
	go func() {
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					gone <- time.Now()
					return
				}
			}
		}
	}()
	return func() time.Time {
		defer cancel()
		select {
		case at := <-gone:
			return at
		case <-ctx.Done():
			return time.Time{}
		}
	}
}

// reportSplit adds the two parts of a takeover: kill → membership key gone,
// and key gone → first request of the new owner, per app.
func reportSplit(rep *report, label string, killed, goneAt time.Time, after *latencies) {
	if goneAt.IsZero() {
		rep.add(label, "the killed replica's membership key", "not seen deleted within 5 minutes")
		return
	}
	rep.add(label, "of which kill → membership key deleted (etcd's lease expiry)", goneAt.Sub(killed).Round(time.Millisecond).String())
	rep.add(label, "of which key deleted → first request of the new owner, per app", after.String())
}
