package etcd

import (
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/configsync"
)

// Documents reads and writes documents at arbitrary etcd keys
// (Location.Key), with compare-and-swap on the mod revision.
type Documents struct {
	client *clientv3.Client
}

var _ configsync.Documents = (*Documents)(nil)

// NewDocuments returns a Documents over client (the caller keeps it).
func NewDocuments(client *clientv3.Client) *Documents { return &Documents{client: client} }

// Centre returns "etcd".
func (d *Documents) Centre() string { return "etcd" }

// Read implements configsync.Documents.
func (d *Documents) Read(ctx context.Context, loc configsync.Location) (configsync.Doc, error) {
	if err := configsync.CheckLocation("etcd", loc); err != nil {
		return configsync.Doc{}, err
	}
	resp, err := d.client.Get(ctx, loc.Key)
	if err != nil {
		return configsync.Doc{}, wrap(ctx, "read "+loc.Key, err)
	}
	if len(resp.Kvs) == 0 {
		return configsync.Doc{}, fmt.Errorf("etcd key %s: %w", loc.Key, configsync.ErrNotFound)
	}
	kv := resp.Kvs[0]
	return configsync.Doc{Data: kv.Value, Version: strconv.FormatInt(kv.ModRevision, 10)}, nil
}

// Write implements configsync.Documents.
func (d *Documents) Write(ctx context.Context, loc configsync.Location, data []byte, expect string) (configsync.Doc, error) {
	if err := configsync.CheckLocation("etcd", loc); err != nil {
		return configsync.Doc{}, err
	}
	txn := d.client.Txn(ctx)
	if expect != "" {
		cmp, err := compare(loc.Key, expect)
		if err != nil {
			return configsync.Doc{}, err
		}
		txn = txn.If(*cmp)
	}
	resp, err := txn.Then(clientv3.OpPut(loc.Key, string(data))).Commit()
	if err != nil {
		return configsync.Doc{}, wrap(ctx, "write "+loc.Key, err)
	}
	if !resp.Succeeded {
		return configsync.Doc{}, fmt.Errorf("write etcd key %s expecting version %s: %w", loc.Key, expect, configsync.ErrConflict)
	}
	return configsync.Doc{Data: data, Version: strconv.FormatInt(resp.Header.Revision, 10)}, nil
}

// Delete implements configsync.Documents.
func (d *Documents) Delete(ctx context.Context, loc configsync.Location, expect string) error {
	if err := configsync.CheckLocation("etcd", loc); err != nil {
		return err
	}
	txn := d.client.Txn(ctx)
	if expect != "" && expect != configsync.Absent {
		cmp, err := compare(loc.Key, expect)
		if err != nil {
			return err
		}
		txn = txn.If(*cmp)
	}
	resp, err := txn.Then(clientv3.OpDelete(loc.Key)).Commit()
	if err != nil {
		return wrap(ctx, "delete "+loc.Key, err)
	}
	if !resp.Succeeded {
		// the document changed, or is already gone
		if _, rerr := d.Read(ctx, loc); rerr != nil {
			return nil
		}
		return fmt.Errorf("delete etcd key %s expecting version %s: %w", loc.Key, expect, configsync.ErrConflict)
	}
	return nil
}
