package upgrade

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/graylane/graylane/internal/schema"
)

// Collection is where the records of one kind live in etcd.
type Collection struct {
	Kind schema.Kind
	// Prefix holds the records.
	Prefix string
	// Children keeps only keys directly under Prefix (no further "/"):
	// other keys share the prefix.
	Children bool
}

func (c Collection) match(key string) bool {
	rest, ok := strings.CutPrefix(key, c.Prefix)
	return ok && rest != "" && (!c.Children || !strings.Contains(rest, "/"))
}

// MigrateStats counts what one migration of a collection did.
type MigrateStats struct {
	// Migrated records were rewritten; Current ones already had the
	// version; Skipped ones could not be read (newer, or not a record of
	// the kind) and were left as they are.
	Migrated, Current, Skipped int64
}

// migratePage is how many keys one range request reads.
const migratePage = 500

// migrateWorkers is how many records are rewritten at once.
const migrateWorkers = 8

// Migrate rewrites every record of c below version to at version, each
// with compare-and-swap on its revision (a record saved meanwhile is read
// again and migrated unless it already has the version). It is idempotent
// and may be interrupted at any point: what it left is readable and the
// next run finishes it. kv is any etcd KV (the Gate's client).
func Migrate(ctx context.Context, kv clientv3.KV, c Collection, version int, log *slog.Logger) (MigrateStats, error) {
	var st MigrateStats
	end := clientv3.GetPrefixRangeEnd(c.Prefix)
	key := c.Prefix
	for {
		resp, err := kv.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(migratePage))
		if err != nil {
			return st, fmt.Errorf("list %ss under %s: %w", c.Kind.What, c.Prefix, err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(migrateWorkers)
		for _, item := range resp.Kvs {
			if !c.match(string(item.Key)) {
				continue
			}
			g.Go(func() error { return migrateOne(gctx, kv, c.Kind, item, version, &st, log) })
		}
		if err := g.Wait(); err != nil {
			return st, err
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return st, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func migrateOne(ctx context.Context, kv clientv3.KV, k schema.Kind, item *mvccpb.KeyValue, version int, st *MigrateStats, log *slog.Logger) error {
	key := string(item.Key)
	for {
		from, err := k.Version(item.Value)
		if err == nil && from >= version {
			if from > version {
				log.Warn("record newer than the migration's version left as it is", "key", key, "schema", from, "migrating to", version)
				atomic.AddInt64(&st.Skipped, 1)
			} else {
				atomic.AddInt64(&st.Current, 1)
			}
			return nil
		}
		var out []byte
		if err == nil {
			out, _, err = k.Convert(item.Value, version)
		}
		if err != nil {
			log.Warn("record that cannot be migrated left as it is", "key", key, "err", err)
			atomic.AddInt64(&st.Skipped, 1)
			return nil
		}
		var opts []clientv3.OpOption
		if item.Lease != 0 {
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(item.Lease)))
		}
		resp, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", item.ModRevision)).
			Then(clientv3.OpPut(key, string(out), opts...)).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return fmt.Errorf("migrate %s: %w", key, err)
		}
		if resp.Succeeded {
			atomic.AddInt64(&st.Migrated, 1)
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return nil // deleted meanwhile
		}
		item = kvs[0] // saved meanwhile: look again
	}
}
