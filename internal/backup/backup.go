package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Format names the archive layout; Read refuses any other.
const Format = "graylane-backup/v1"

// maxOps bounds the operations of one restore transaction (etcd's default
// --max-txn-ops is 128).
const maxOps = 100

// ErrNotEmpty is returned (wrapped) by Restore when the target etcd already
// holds keys under the archive's prefixes and Overwrite is not set.
var ErrNotEmpty = errors.New("target etcd is not empty")

// ErrCorrupt is returned (wrapped) by Read for an archive whose checksum
// or format does not match.
var ErrCorrupt = errors.New("backup archive is corrupt")

// Archive is a point-in-time copy of the keys under some prefixes.
type Archive struct {
	Format    string    `json:"format"`
	CreatedAt time.Time `json:"createdAt"`
	// Revision is the etcd revision every key was read at.
	Revision int64    `json:"revision"`
	Prefixes []string `json:"prefixes"`
	// Skipped counts the lease-bound keys left out.
	Skipped int     `json:"skipped"`
	Entries []Entry `json:"entries"`
	// SHA256 is the checksum of Entries (see checksum).
	SHA256 string `json:"sha256"`
}

// Entry is one key and its value.
type Entry struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// Take reads every key under prefixes at one revision (the revision of the
// first read), leaving out lease-bound keys. Overlapping prefixes are
// fine: each key is kept once. It is safe while graylane runs.
func Take(ctx context.Context, kv clientv3.KV, prefixes []string, now time.Time) (*Archive, error) {
	if len(prefixes) == 0 {
		return nil, errors.New("backup: no prefixes")
	}
	a := &Archive{Format: Format, CreatedAt: now.UTC(), Prefixes: slices.Clone(prefixes)}
	seen := map[string]bool{}
	for _, p := range prefixes {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if a.Revision > 0 {
			opts = append(opts, clientv3.WithRev(a.Revision))
		}
		resp, err := kv.Get(ctx, p, opts...)
		if err != nil {
			return nil, fmt.Errorf("backup: read prefix %s: %w", p, err)
		}
		if a.Revision == 0 {
			a.Revision = resp.Header.Revision
		}
		for _, k := range resp.Kvs {
			key := string(k.Key)
			if seen[key] {
				continue
			}
			seen[key] = true
			if k.Lease != 0 {
				a.Skipped++
				continue
			}
			a.Entries = append(a.Entries, Entry{Key: key, Value: k.Value})
		}
	}
	sort.Slice(a.Entries, func(i, j int) bool { return a.Entries[i].Key < a.Entries[j].Key })
	a.SHA256 = checksum(a.Entries)
	return a, nil
}

// checksum hashes every key and value, length-prefixed so that no two
// different entry lists hash alike.
func checksum(entries []Entry) string {
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%d:%s%d:", len(e.Key), e.Key, len(e.Value))
		h.Write(e.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Write writes the archive as indented JSON.
func (a *Archive) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(a); err != nil {
		return fmt.Errorf("backup: write archive: %w", err)
	}
	return nil
}

// Read parses an archive and verifies its format and checksum.
func Read(r io.Reader) (*Archive, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("backup: read archive: %w", err)
	}
	var a Archive
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("backup: %w: %v", ErrCorrupt, err)
	}
	if a.Format != Format {
		return nil, fmt.Errorf("backup: %w: format %q, want %q", ErrCorrupt, a.Format, Format)
	}
	if got := checksum(a.Entries); got != a.SHA256 {
		return nil, fmt.Errorf("backup: %w: checksum %s, archive says %s", ErrCorrupt, got, a.SHA256)
	}
	return &a, nil
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Overwrite replaces keys that already exist instead of refusing.
	Overwrite bool
	// Last lists prefixes whose keys are written after all others (the
	// release specs: graylane acts on a spec, so its state must be there
	// first).
	Last []string
}

// Restore writes the archive's entries into kv and returns how many it
// wrote. Unless Overwrite is set it refuses (ErrNotEmpty, naming a key)
// when any key exists under the archive's prefixes, and each write is
// guarded so that a key created meanwhile is not overwritten. Keys under
// opts.Last go last. Writes are batched in transactions of up to 100 keys.
func Restore(ctx context.Context, kv clientv3.KV, a *Archive, opts RestoreOptions) (int, error) {
	if !opts.Overwrite {
		for _, p := range a.Prefixes {
			resp, err := kv.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithLimit(1), clientv3.WithKeysOnly())
			if err != nil {
				return 0, fmt.Errorf("restore: check prefix %s: %w", p, err)
			}
			if len(resp.Kvs) > 0 {
				return 0, fmt.Errorf("restore: %w: %s exists (restore into a fresh etcd, or overwrite)", ErrNotEmpty, resp.Kvs[0].Key)
			}
		}
	}
	last := func(k string) bool {
		for _, p := range opts.Last {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
		return false
	}
	ordered := slices.Clone(a.Entries)
	sort.SliceStable(ordered, func(i, j int) bool { return !last(ordered[i].Key) && last(ordered[j].Key) })
	n := 0
	for start := 0; start < len(ordered); start += maxOps {
		batch := ordered[start:min(start+maxOps, len(ordered))]
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, e := range batch {
			if !opts.Overwrite {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(e.Key), "=", 0))
			}
			ops = append(ops, clientv3.OpPut(e.Key, string(e.Value)))
		}
		resp, err := kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return n, fmt.Errorf("restore: write keys %s..%s: %w", batch[0].Key, batch[len(batch)-1].Key, err)
		}
		if !resp.Succeeded {
			return n, fmt.Errorf("restore: %w: a key among %s..%s was created during the restore", ErrNotEmpty, batch[0].Key, batch[len(batch)-1].Key)
		}
		n += len(batch)
	}
	return n, nil
}
