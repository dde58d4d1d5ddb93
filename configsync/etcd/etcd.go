package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
)

// DefaultPrefix is where release documents live unless New is given another.
const DefaultPrefix = "/graylane/apps/"

// Defaults for the options.
const (
	DefaultRequestTimeout = 5 * time.Second
	DefaultProbeInterval  = 2 * time.Second
	DefaultRetryMin       = 100 * time.Millisecond
	DefaultRetryMax       = 5 * time.Second
)

// Source reads, watches and writes release documents in etcd.
type Source struct {
	client *clientv3.Client
	prefix string
	log    *slog.Logger

	requestTimeout time.Duration
	probeInterval  time.Duration
	retryMin       time.Duration
	retryMax       time.Duration

	ctx    context.Context // ended by Close: ends every watch
	cancel context.CancelFunc
	once   sync.Once
}

// Interface guards.
var (
	_ configsync.Source        = (*Source)(nil)
	_ configsync.Writer        = (*Source)(nil)
	_ configsync.HealthChecker = (*Source)(nil)
)

// Config configures a Source.
type Config struct {
	// Client is the etcd client (required). The caller keeps ownership:
	// Close does not close it, and a client closed before the Source
	// leaves its watches reporting configsync.ErrUnavailable until their
	// ctx ends.
	Client *clientv3.Client
	// Prefix is where the documents live ("" means DefaultPrefix; a
	// missing trailing "/" is added).
	Prefix string
	// Logger defaults to discarding (logx.OrDiscard).
	Logger *slog.Logger
	// RequestTimeout bounds each Get, List, Put, Delete and Healthy call
	// when the caller's ctx allows longer (DefaultRequestTimeout): an etcd
	// that does not answer in time yields an error wrapping
	// configsync.ErrUnavailable.
	RequestTimeout time.Duration
	// ProbeInterval is how long a watch may go without hearing from etcd
	// before it checks that etcd is reachable (DefaultProbeInterval; each
	// check is bounded by the same duration). etcd's client reconnects a
	// broken watch silently, so this check is how a watch notices an
	// outage and reports it.
	ProbeInterval time.Duration
	// RetryMin and RetryMax bound the exponential back-off between a
	// watch's attempts to reach etcd again (DefaultRetryMin,
	// DefaultRetryMax).
	RetryMin, RetryMax time.Duration
}

// New returns a Source over cfg.Client for the documents under
// cfg.Prefix.
func New(cfg Config) *Source {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s := &Source{
		client:         cfg.Client,
		prefix:         prefix,
		log:            logx.OrDiscard(cfg.Logger),
		requestTimeout: DefaultRequestTimeout,
		probeInterval:  DefaultProbeInterval,
		retryMin:       DefaultRetryMin,
		retryMax:       DefaultRetryMax,
	}
	if cfg.RequestTimeout > 0 {
		s.requestTimeout = cfg.RequestTimeout
	}
	if cfg.ProbeInterval > 0 {
		s.probeInterval = cfg.ProbeInterval
	}
	if cfg.RetryMin > 0 && cfg.RetryMax >= cfg.RetryMin {
		s.retryMin, s.retryMax = cfg.RetryMin, cfg.RetryMax
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.log = s.log.With("centre", "etcd", "prefix", prefix)
	return s
}

// Name returns "etcd".
func (s *Source) Name() string { return "etcd" }

// Prefix returns the key prefix, ending in "/".
func (s *Source) Prefix() string { return s.prefix }

// Key returns the etcd key holding app's document.
func (s *Source) Key(app string) string { return s.prefix + app }

// appOf returns the app a key belongs to, or false for keys to ignore.
func (s *Source) appOf(key []byte) (string, bool) {
	k := string(key)
	if !strings.HasPrefix(k, s.prefix) {
		return "", false
	}
	app := k[len(s.prefix):]
	if !spec.AppPattern.MatchString(app) {
		return "", false
	}
	return app, true
}

func (s *Source) entry(app string, kv *mvccpb.KeyValue) configsync.Entry {
	data := kv.Value
	if data == nil {
		data = []byte{}
	}
	return configsync.Entry{App: app, Data: data, Version: strconv.FormatInt(kv.ModRevision, 10), Revision: kv.ModRevision}
}

// call bounds ctx by the request timeout.
func (s *Source) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.requestTimeout)
}

// wrap classifies an etcd error: it names the step and wraps
// configsync.ErrUnavailable when etcd could not be reached (and the
// caller's own ctx has not ended).
func wrap(ctx context.Context, step string, err error) error {
	if ctx.Err() == nil && unavailable(err) {
		return fmt.Errorf("etcd: %s: %w: %w", step, configsync.ErrUnavailable, err)
	}
	return fmt.Errorf("etcd: %s: %w", step, err)
}

// unavailable reports whether err means etcd could not be reached or did
// not answer in time (worth retrying), as opposed to a refusal.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	err = rpctypes.Error(err)
	switch err {
	case rpctypes.ErrNoLeader, rpctypes.ErrNotCapable, rpctypes.ErrStopped, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrUnhealthy,
		rpctypes.ErrLeaderChanged, rpctypes.ErrTooManyRequests, rpctypes.ErrTimeoutWaitAppliedIndex:
		return true
	}
	if ee, ok := err.(rpctypes.EtcdError); ok {
		switch ee.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted, codes.ResourceExhausted:
			return true
		}
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return true
	}
	return false
}

// Get returns app's document or an error wrapping configsync.ErrNotFound.
func (s *Source) Get(ctx context.Context, app string) (configsync.Entry, error) {
	if !spec.AppPattern.MatchString(app) {
		return configsync.Entry{}, fmt.Errorf("etcd: get app %q: not a valid app name: %w", app, configsync.ErrNotFound)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.client.Get(cctx, s.Key(app))
	if err != nil {
		return configsync.Entry{}, wrap(ctx, fmt.Sprintf("get app %q (key %s)", app, s.Key(app)), err)
	}
	if len(resp.Kvs) == 0 {
		return configsync.Entry{}, fmt.Errorf("etcd: get app %q (key %s): %w", app, s.Key(app), configsync.ErrNotFound)
	}
	return s.entry(app, resp.Kvs[0]), nil
}

// List returns every app's document, sorted by app, and the store revision
// they were read at.
func (s *Source) List(ctx context.Context) ([]configsync.Entry, int64, error) {
	return s.list(ctx, 0)
}

// list reads the prefix at rev (0: now).
func (s *Source) list(ctx context.Context, rev int64) ([]configsync.Entry, int64, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.client.Get(cctx, s.prefix, opts...)
	if err != nil {
		step := "list " + s.prefix
		if rev > 0 {
			step += " at revision " + strconv.FormatInt(rev, 10)
		}
		return nil, 0, wrap(ctx, step, err)
	}
	out := make([]configsync.Entry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if app, ok := s.appOf(kv.Key); ok {
			out = append(out, s.entry(app, kv))
		} else {
			s.log.Debug("ignoring key that is not an app document", "key", string(kv.Key))
		}
	}
	if rev == 0 {
		rev = resp.Header.Revision
	}
	return out, rev, nil
}

// Healthy checks that etcd answers a linearizable read (so a member cut off
// from its cluster's leader is unhealthy).
func (s *Source) Healthy(ctx context.Context) error {
	cctx, cancel := s.call(ctx)
	defer cancel()
	if _, err := s.client.Get(cctx, s.prefix, clientv3.WithCountOnly(), clientv3.WithPrefix()); err != nil {
		return wrap(ctx, "health check", err)
	}
	return nil
}

// Put stores data as app's document. expect is "" (unconditional),
// configsync.Absent (the key must not exist: its create revision is 0) or
// a Version read earlier (the key's mod revision must still equal it); a
// lost compare-and-swap writes nothing and returns an error wrapping
// configsync.ErrConflict. A Version that is not a number can never match
// and is reported as a conflict too.
func (s *Source) Put(ctx context.Context, app string, data []byte, expect string) (configsync.Entry, error) {
	key := s.Key(app)
	step := fmt.Sprintf("put app %q (key %s)", app, key)
	if err := spec.CheckApp(app); err != nil {
		return configsync.Entry{}, fmt.Errorf("etcd: %s: app name %w", step, err)
	}
	cmp, err := compare(key, expect)
	if err != nil {
		return configsync.Entry{}, fmt.Errorf("etcd: %s: %w", step, err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	txn := s.client.Txn(cctx)
	if cmp != nil {
		txn = txn.If(*cmp)
	}
	resp, err := txn.Then(clientv3.OpPut(key, string(data))).Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return configsync.Entry{}, wrap(ctx, step, err)
	}
	if !resp.Succeeded {
		return configsync.Entry{}, fmt.Errorf("etcd: %s: expected %s, %s: %w", step, describe(expect), current(resp), configsync.ErrConflict)
	}
	rev := resp.Header.Revision
	data = bytes.Clone(data)
	if data == nil {
		data = []byte{}
	}
	return configsync.Entry{App: app, Data: data, Version: strconv.FormatInt(rev, 10), Revision: rev}, nil
}

// Delete removes app's document (same expect rules as Put). Deleting a
// missing document is not an error, whatever expect says.
func (s *Source) Delete(ctx context.Context, app string, expect string) error {
	key := s.Key(app)
	step := fmt.Sprintf("delete app %q (key %s)", app, key)
	if !spec.AppPattern.MatchString(app) {
		return nil // no such document can exist
	}
	cmp, err := compare(key, expect)
	if err != nil {
		return fmt.Errorf("etcd: %s: %w", step, err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	txn := s.client.Txn(cctx)
	if cmp != nil {
		txn = txn.If(*cmp)
	}
	resp, err := txn.Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return wrap(ctx, step, err)
	}
	if !resp.Succeeded {
		if get := resp.Responses[0].GetResponseRange(); get != nil && len(get.Kvs) == 0 {
			return nil // already gone
		}
		return fmt.Errorf("etcd: %s: expected %s, %s: %w", step, describe(expect), current(resp), configsync.ErrConflict)
	}
	return nil
}

// compare builds the Txn condition for expect (nil: unconditional).
func compare(key, expect string) (*clientv3.Cmp, error) {
	switch expect {
	case "":
		return nil, nil
	case configsync.Absent:
		c := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		return &c, nil
	}
	rev, err := strconv.ParseInt(expect, 10, 64)
	if err != nil || rev <= 0 {
		return nil, fmt.Errorf("expected version %q is not an etcd mod revision: %w", expect, configsync.ErrConflict)
	}
	c := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	return &c, nil
}

func describe(expect string) string {
	if expect == configsync.Absent {
		return "no document"
	}
	return "version " + expect
}

// current describes the document found by the Else branch of a failed Txn.
func current(resp *clientv3.TxnResponse) string {
	if len(resp.Responses) > 0 {
		if get := resp.Responses[0].GetResponseRange(); get != nil && len(get.Kvs) > 0 {
			return "found version " + strconv.FormatInt(get.Kvs[0].ModRevision, 10)
		}
	}
	return "found no document"
}

// Close ends every watch of this Source (their channels close). It does
// not close the client. It is idempotent.
func (s *Source) Close() error {
	s.once.Do(s.cancel)
	return nil
}
