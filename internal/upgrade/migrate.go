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

	"github.com/graylane/graylane/internal/logx"
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
const migratePage = 512

// migrateBatch is how many records one transaction rewrites (each with its
// own comparison; etcd allows 128 operations per transaction by default).
const migrateBatch = 64

// migrateWorkers is how many transactions run at once.
const migrateWorkers = 4

// Migrate rewrites every record of c below version to at version, with
// compare-and-swap on each record's revision: in transactions of up to
// migrateBatch records, and record by record when one of them changed
// meanwhile (a record saved since it was read is read again and migrated
// unless it already has the version). It is idempotent and may be
// interrupted at any point: what it left is readable and the next run
// finishes it. kv is any etcd KV (the Gate's client).
func Migrate(ctx context.Context, kv clientv3.KV, c Collection, version int, log *slog.Logger) (MigrateStats, error) {
	log = logx.OrDiscard(log)
	var st MigrateStats
	end := clientv3.GetPrefixRangeEnd(c.Prefix)
	key := c.Prefix
	for {
		resp, err := kv.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(migratePage))
		if err != nil {
			return st, fmt.Errorf("list %ss under %s: %w", c.Kind.What, c.Prefix, err)
		}
		var todo []rewrite
		for _, item := range resp.Kvs {
			if !c.match(string(item.Key)) {
				continue
			}
			if out, ok := convert(c.Kind, item, version, &st, log); ok {
				todo = append(todo, rewrite{item: item, out: out})
			}
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(migrateWorkers)
		for len(todo) > 0 {
			batch := todo[:min(migrateBatch, len(todo))]
			todo = todo[len(batch):]
			g.Go(func() error { return migrateBatchOf(gctx, kv, c.Kind, batch, version, &st, log) })
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

// rewrite is one record to migrate: as read, and converted.
type rewrite struct {
	item *mvccpb.KeyValue
	out  []byte
}

// convert returns item at version when it needs rewriting (ok); records
// already there are counted Current, others that cannot be converted
// Skipped.
func convert(k schema.Kind, item *mvccpb.KeyValue, version int, st *MigrateStats, log *slog.Logger) (out []byte, ok bool) {
	from, err := k.Version(item.Value)
	if err == nil && from >= version {
		if from > version {
			log.Warn("record newer than the migration's version left as it is", "key", string(item.Key), "schema", from, "migrating to", version)
			atomic.AddInt64(&st.Skipped, 1)
		} else {
			atomic.AddInt64(&st.Current, 1)
		}
		return nil, false
	}
	if err == nil {
		out, _, err = k.Convert(item.Value, version)
	}
	if err != nil {
		log.Warn("record that cannot be migrated left as it is", "key", string(item.Key), "err", err)
		atomic.AddInt64(&st.Skipped, 1)
		return nil, false
	}
	return out, true
}

func putOp(item *mvccpb.KeyValue, out []byte) clientv3.Op {
	var opts []clientv3.OpOption
	if item.Lease != 0 {
		opts = append(opts, clientv3.WithLease(clientv3.LeaseID(item.Lease)))
	}
	return clientv3.OpPut(string(item.Key), string(out), opts...)
}

// migrateBatchOf rewrites a batch in one transaction, or record by record
// when a record of it changed since it was read.
func migrateBatchOf(ctx context.Context, kv clientv3.KV, k schema.Kind, batch []rewrite, version int, st *MigrateStats, log *slog.Logger) error {
	cmps := make([]clientv3.Cmp, 0, len(batch))
	ops := make([]clientv3.Op, 0, len(batch))
	for _, r := range batch {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(r.item.Key)), "=", r.item.ModRevision))
		ops = append(ops, putOp(r.item, r.out))
	}
	resp, err := kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("migrate %d %ss from %s: %w", len(batch), k.What, batch[0].item.Key, err)
	}
	if resp.Succeeded {
		atomic.AddInt64(&st.Migrated, int64(len(batch)))
		return nil
	}
	for _, r := range batch {
		if err := migrateOne(ctx, kv, k, r.item, version, st, log); err != nil {
			return err
		}
	}
	return nil
}

func migrateOne(ctx context.Context, kv clientv3.KV, k schema.Kind, item *mvccpb.KeyValue, version int, st *MigrateStats, log *slog.Logger) error {
	key := string(item.Key)
	for {
		out, ok := convert(k, item, version, st, log)
		if !ok {
			return nil
		}
		resp, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", item.ModRevision)).
			Then(putOp(item, out)).
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
