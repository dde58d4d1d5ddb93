package shard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/rollout/engine"
)

// DefaultClaimBatch is Config.ClaimBatch's default, fitted to etcd's
// default --max-txn-ops (128): a transaction of n nested transactions of
// one operation each is accepted while n + 1 <= max-txn-ops (etcd checks
// each nested transaction against what the outer one leaves), so 127.
const DefaultClaimBatch = 127

// Claim implements engine.Shard: it takes the ownership keys of those of
// apps that nobody holds, up to Config.ClaimBatch apps per etcd
// transaction instead of one transaction per app.
//
// Each app is one nested transaction inside the batch — If the key's
// create revision is 0, Then put it bound to this replica's lease, Else
// read it — so a key that exists fails only its own app, never the batch:
// the claim is exclusive per key exactly as Acquire's is. Up to
// claimsInFlight transactions run at once. The apps taken in one batch
// share one fencing token (the batch's revision, which is
// each new key's create revision). A key found bound to this replica's
// own lease is held with its create revision, as Acquire does. Apps held
// elsewhere are left out of the answer: their keys' deletions will be
// reported by the ownership watch.
//
// It returns the apps this call added to the held set (not those already
// held), also when it fails part-way (then with the error).
func (s *Shard) Claim(ctx context.Context, apps []string) ([]string, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	lease := s.lease
	todo := make([]string, 0, len(apps))
	for _, app := range apps {
		if _, held := s.held[app]; !held {
			todo = append(todo, app)
		}
	}
	s.mu.RUnlock()
	// one op per key: etcd refuses a transaction that puts a key twice
	sort.Strings(todo)
	todo = dedupSorted(todo)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		taken []string
		errs  []error
		slots = make(chan struct{}, claimsInFlight)
	)
	for len(todo) > 0 {
		n := min(len(todo), s.cfg.ClaimBatch)
		batch := todo[:n]
		todo = todo[n:]
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			got, err := s.claimBatch(ctx, lease, batch)
			if err == nil {
				var mine []string
				mine, err = s.hold(lease, batch, got)
				mu.Lock()
				taken = append(taken, mine...)
				mu.Unlock()
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return taken, errors.Join(errs...)
}

// claimsInFlight is how many claim transactions one Claim runs at once:
// each waits for etcd's fsync, and a takeover of a few thousand apps
// should not wait for a dozen of them in a row.
const claimsInFlight = 4

// hold records the fences a claim transaction of lease got and returns the
// apps newly held (not those an Acquire recorded meanwhile).
func (s *Shard) hold(lease clientv3.LeaseID, batch []string, got map[string]engine.Fence) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active || s.lease != lease {
		return nil, ErrLeaseExpired
	}
	var taken []string
	for _, app := range batch {
		f, ok := got[app]
		if !ok {
			continue
		}
		if _, held := s.held[app]; held {
			continue
		}
		s.held[app] = f
		taken = append(taken, app)
	}
	return taken, nil
}

// claimBatch runs one claim transaction and returns the fences of the apps
// whose keys are now this lease's.
func (s *Shard) claimBatch(ctx context.Context, lease clientv3.LeaseID, apps []string) (map[string]engine.Fence, error) {
	ops := make([]clientv3.Op, len(apps))
	for i, app := range apps {
		key := s.ownerKey(app)
		ops[i] = clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(key, s.cfg.ID, clientv3.WithLease(lease))},
			[]clientv3.Op{clientv3.OpGet(key)})
	}
	resp, err := s.cfg.Client.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("take %d apps' ownership keys (%s…): %w", len(apps), s.ownerKey(apps[0]), err)
	}
	if len(resp.Responses) != len(apps) {
		return nil, fmt.Errorf("take %d apps' ownership keys: %d answers", len(apps), len(resp.Responses))
	}
	got := make(map[string]engine.Fence, len(apps))
	for i, r := range resp.Responses {
		tr := r.GetResponseTxn()
		if tr == nil {
			return nil, fmt.Errorf("take %s: the answer is not a transaction's", s.ownerKey(apps[i]))
		}
		f := engine.Fence{Key: s.ownerKey(apps[i]), Token: resp.Header.Revision, Holder: s.cfg.ID}
		if !tr.Succeeded {
			if len(tr.Responses) == 0 {
				continue
			}
			kvs := tr.Responses[0].GetResponseRange().GetKvs()
			if len(kvs) == 0 || clientv3.LeaseID(kvs[0].Lease) != lease {
				continue // held elsewhere
			}
			f.Token = kvs[0].CreateRevision // ours already (this term)
		}
		got[apps[i]] = f
	}
	return got, nil
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
