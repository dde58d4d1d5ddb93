package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graylane/graylane/internal/logx"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults for Config.
const (
	DefaultClientAddr   = "127.0.0.1:2379"
	DefaultPeerAddr     = "127.0.0.1:2380"
	DefaultName         = "graylane"
	DefaultStartTimeout = time.Minute
	// DefaultCompactionRetention keeps five minutes of history, as
	// Kubernetes' API server does (--etcd-compaction-interval): a watch
	// that fell further behind re-lists (graylane's watches do). Each
	// write keeps its whole value until compacted, so at 20,000 apps an
	// hour of history was a 260 MB database, mapped into graylane.
	DefaultCompactionRetention = "5m"
	// DefaultQuotaBackendBytes is etcd's own default quota, 2 GiB: past it
	// etcd raises the NOSPACE alarm and refuses writes.
	DefaultQuotaBackendBytes = int64(2 << 30)
	// DefaultWarnRequestDuration is etcd's own slow-request threshold.
	DefaultWarnRequestDuration = embed.DefaultWarningUnaryRequestDuration
	// DefaultDefragInterval is how often the database's free space is
	// checked.
	DefaultDefragInterval = 5 * time.Minute
	// DefaultDefragMinFree is the least free space worth a
	// defragmentation (it also needs half of the file to be free).
	DefaultDefragMinFree = int64(64 << 20)
	// DefaultEtcdLogLevel is the lowest level of etcd's own log passed on.
	DefaultEtcdLogLevel = "warn"
)

// Config configures an embedded etcd member.
type Config struct {
	// Dir is the data directory (required). Starting again on the same Dir
	// keeps the data.
	Dir string
	// Name is the member name (default "graylane").
	Name string
	// ClientAddr is the host:port clients connect to (default
	// 127.0.0.1:2379). Port 0 picks a free port; Server.Config reports the
	// one chosen.
	ClientAddr string
	// PeerAddr is the host:port of the raft peer listener (default
	// 127.0.0.1:2380; port 0 picks a free port).
	PeerAddr string
	// Logger receives graylane's messages about the server and etcd's own
	// log from EtcdLogLevel up (default: discarded).
	Logger *slog.Logger
	// EtcdLogLevel is the lowest level of etcd's own log passed to Logger:
	// debug, info, warn (default) or error.
	EtcdLogLevel string
	// EtcdLog, if set, receives etcd's own log instead of Logger, at info
	// level (tests).
	EtcdLog io.Writer
	// UnsafeNoFsync disables fsync: much faster, loses data on a machine
	// crash. For tests only.
	UnsafeNoFsync bool
	// AutoCompactionRetention is etcd's auto-compaction-retention: history
	// older than this is compacted away (default "5m"; with
	// AutoCompactionMode "revision" a number of revisions, e.g. "1000").
	// "0" turns auto-compaction off: the history then grows for ever.
	AutoCompactionRetention string
	// AutoCompactionMode is "periodic" (default) or "revision".
	AutoCompactionMode string
	// QuotaBackendBytes is the database size at which etcd raises its
	// NOSPACE alarm and refuses writes (default 2 GiB, etcd's). The alarm
	// shows in Check (graylane's /readyz) and in the metrics.
	QuotaBackendBytes int64
	// WarnRequestDuration: etcd logs requests slower than this (default
	// 300 ms, etcd's own; embed leaves it at 0, which logs every request).
	WarnRequestDuration time.Duration
	// DefragInterval is how often the database's free space is checked;
	// it is defragmented when at least DefragMinFree bytes and half of the
	// file are free (defaults 10 m and 64 MiB). Negative: never.
	DefragInterval time.Duration
	DefragMinFree  int64
	// StartTimeout bounds how long Start waits for the member to be ready
	// (default one minute).
	StartTimeout time.Duration
}

// Server is a running embedded etcd member.
type Server struct {
	cfg     Config
	etcd    *embed.Etcd
	log     *slog.Logger
	once    sync.Once
	stopped chan struct{}
	// stopMaint ends maintain, which closes maintDone.
	stopMaint chan struct{}
	maintDone chan struct{}
}

// Start starts an embedded etcd member and waits until it serves clients
// or ctx ends. Ports given as 0 are resolved to free ones first; if such a
// port is taken in the meantime Start tries again with new ones.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("etcdserver: Config.Dir is required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = DefaultClientAddr
	}
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = DefaultPeerAddr
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	if cfg.AutoCompactionRetention == "" {
		cfg.AutoCompactionRetention = DefaultCompactionRetention
	}
	if cfg.QuotaBackendBytes <= 0 {
		cfg.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if cfg.WarnRequestDuration <= 0 {
		cfg.WarnRequestDuration = DefaultWarnRequestDuration
	}
	if cfg.DefragInterval == 0 {
		cfg.DefragInterval = DefaultDefragInterval
	}
	if cfg.DefragMinFree <= 0 {
		cfg.DefragMinFree = DefaultDefragMinFree
	}
	if cfg.EtcdLogLevel == "" {
		cfg.EtcdLogLevel = DefaultEtcdLogLevel
	}
	if _, err := parseLevel(cfg.EtcdLogLevel); err != nil {
		return nil, fmt.Errorf("etcdserver: EtcdLogLevel: %w", err)
	}
	dynamic := isPortZero(cfg.ClientAddr) || isPortZero(cfg.PeerAddr)
	attempts := 1
	if dynamic {
		attempts = 5
	}
	var lastErr error
	for range attempts {
		resolved := cfg
		var err error
		if resolved.ClientAddr, err = resolvePort(cfg.ClientAddr); err != nil {
			return nil, fmt.Errorf("etcdserver: client address %q: %w", cfg.ClientAddr, err)
		}
		if resolved.PeerAddr, err = resolvePort(cfg.PeerAddr); err != nil {
			return nil, fmt.Errorf("etcdserver: peer address %q: %w", cfg.PeerAddr, err)
		}
		s, err := start(ctx, resolved)
		if err == nil {
			return s, nil
		}
		lastErr = err
		// Retry only when a port we picked was taken meanwhile.
		picked := (isPortZero(cfg.ClientAddr) && strings.Contains(err.Error(), resolved.ClientAddr)) ||
			(isPortZero(cfg.PeerAddr) && strings.Contains(err.Error(), resolved.PeerAddr))
		if !picked || !isAddrInUse(err) || ctx.Err() != nil {
			break
		}
		cfg.Logger.Debug("etcd port taken, retrying with new ports", "err", err)
	}
	return nil, lastErr
}

func start(ctx context.Context, cfg Config) (*Server, error) {
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	cu := url.URL{Scheme: "http", Host: cfg.ClientAddr}
	pu := url.URL{Scheme: "http", Host: cfg.PeerAddr}
	ec.ListenClientUrls = []url.URL{cu}
	ec.AdvertiseClientUrls = []url.URL{cu}
	ec.ListenPeerUrls = []url.URL{pu}
	ec.AdvertisePeerUrls = []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.AutoCompactionRetention = cfg.AutoCompactionRetention
	if cfg.AutoCompactionMode != "" {
		ec.AutoCompactionMode = cfg.AutoCompactionMode
	}
	ec.QuotaBackendBytes = cfg.QuotaBackendBytes
	ec.WarningUnaryRequestDuration = cfg.WarnRequestDuration
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(cfg))
	// No metrics or pprof listeners: the client port is all graylane needs.
	ec.ListenMetricsUrls = nil

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("etcdserver: start member %s in %s: %w", cfg.Name, cfg.Dir, err)
	}
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcdserver: member %s failed while starting: %w", cfg.Name, err)
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("etcdserver: member %s not ready after %s", cfg.Name, cfg.StartTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("etcdserver: start member %s: %w", cfg.Name, ctx.Err())
	}
	s := &Server{cfg: cfg, etcd: e, log: cfg.Logger, stopped: make(chan struct{}), stopMaint: make(chan struct{}), maintDone: make(chan struct{})}
	s.log.Info("embedded etcd ready", "name", cfg.Name, "dir", cfg.Dir, "client", cfg.ClientAddr,
		"compactionRetention", cfg.AutoCompactionRetention, "quotaBytes", cfg.QuotaBackendBytes)
	go s.maintain()
	return s, nil
}

// Config returns the configuration the server runs with, ports resolved:
// passing it to Start again restarts the member on the same data and
// address.
func (s *Server) Config() Config { return s.cfg }

// Endpoints returns the client URLs, for clientv3.Config.Endpoints.
func (s *Server) Endpoints() []string { return []string{"http://" + s.cfg.ClientAddr} }

// ClientAddr returns the resolved host:port clients connect to.
func (s *Server) ClientAddr() string { return s.cfg.ClientAddr }

// Client connects a new client to the server; the caller closes it. See
// NewClient.
func (s *Server) Client() (*clientv3.Client, error) {
	return NewClient(s.Endpoints())
}

// NewClient connects a client to endpoints with settings suited to a
// long-lived graylane process: its zap logs are discarded, it does not wait
// for the connection at dial time, and it reconnects within about a second
// once the server is back (gRPC's default back-off grows to two minutes).
func NewClient(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  50 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   time.Second,
				},
				MinConnectTimeout: 2 * time.Second,
			}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("etcdserver: connect to %s: %w", strings.Join(endpoints, ","), err)
	}
	return c, nil
}

// Compact compacts the store's history up to rev (physically, waiting for
// it), for tests of watchers that fall behind compaction.
func (s *Server) Compact(ctx context.Context, rev int64) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("etcdserver: compact at revision %d: %w", rev, err)
	}
	return nil
}

// Stopped is closed once Close has stopped the member.
func (s *Server) Stopped() <-chan struct{} { return s.stopped }

// Close stops the member and releases its ports and data directory. It is
// idempotent. etcd stops gracefully: it waits for open client streams (a
// watch, for instance) to end, up to its request timeout (about 7 s), so
// close clients first when a quick stop matters.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.stopMaint)
		<-s.maintDone
		s.etcd.Close()
		<-s.etcd.Server.StopNotify()
		close(s.stopped)
		s.log.Info("embedded etcd stopped", "name", s.cfg.Name, "client", s.cfg.ClientAddr)
	})
	return nil
}

// etcdLogger is etcd's zap logger: into EtcdLog when set, else into
// graylane's Logger from EtcdLogLevel up.
func etcdLogger(cfg Config) *zap.Logger {
	if cfg.EtcdLog != nil {
		enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
		return zap.New(zapcore.NewCore(enc, zapcore.AddSync(cfg.EtcdLog), zap.InfoLevel))
	}
	lvl, _ := parseLevel(cfg.EtcdLogLevel)
	return zap.New(&slogCore{h: cfg.Logger.With("source", "etcd").Handler(), min: lvl})
}

func isPortZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// resolvePort replaces port 0 with a port that was free a moment ago.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		if _, err := strconv.Atoi(port); err != nil {
			return "", fmt.Errorf("port %q is not a number", port)
		}
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func isAddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}
