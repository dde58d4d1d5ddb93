package nacos

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	sdklogger "github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Defaults for Config fields left zero.
const (
	// DefaultGroup is the Nacos group graylane keeps release documents in.
	DefaultGroup = "GRAYLANE_RELEASES"
	// DefaultIndexDataID names the index document that lists the apps. It
	// contains a dot, so it can never be an app name (a DNS label).
	DefaultIndexDataID = "graylane.index"
	// DefaultTimeout bounds one request to the server.
	DefaultTimeout = 5 * time.Second
	// DefaultProbeInterval is how often a running watch re-reads the index
	// to notice an unreachable or silently changed centre.
	DefaultProbeInterval = 3 * time.Second
	// DefaultResyncInterval is how often a running watch re-reads every
	// document, in case a change notification was lost.
	DefaultResyncInterval = 30 * time.Second
	// DefaultDeleteConfirm is the default Config.DeleteConfirm.
	DefaultDeleteConfirm = 6 * time.Second
	// grpcPortOffset is Nacos' fixed distance between the HTTP port and
	// the gRPC port (also nacos-sdk-go's default).
	grpcPortOffset = 1000
)

// Config configures a connection to a Nacos cluster. Only Servers is
// required.
type Config struct {
	// Servers are the Nacos servers' HTTP addresses, "host:port" (8848 by
	// default). The client speaks gRPC to port+1000, Nacos' convention.
	Servers []string
	// GRPCPort, if set, is the gRPC port of every server, for clusters
	// reached through a load balancer or proxy that does not keep Nacos'
	// port+1000 convention.
	GRPCPort int
	// Namespace is the Nacos namespace ID; "" is the public namespace.
	Namespace string
	// Group is the group holding release documents (DefaultGroup).
	Group string
	// IndexDataID names the index document in Group (DefaultIndexDataID).
	IndexDataID string

	// Username and Password log in to a Nacos with auth enabled.
	Username, Password string
	// AccessKey and SecretKey sign requests (Alibaba Cloud MSE / ACM).
	AccessKey, SecretKey string

	// CacheDir is where the SDK keeps its snapshot files. "" uses a
	// private temporary directory, removed by Close.
	CacheDir string
	// LogDir, if set, makes the SDK log to LogDir/nacos-sdk.log with its
	// own logger. "" (the default) routes the SDK's log lines to the
	// injected slog.Logger instead (Config.Logger). The SDK's logger is
	// process-wide: with several clients, the last one created wins.
	LogDir string

	// Timeout bounds each request to the server (DefaultTimeout). Calls
	// also honour their context.
	Timeout time.Duration
	// ProbeInterval is how often a running watch checks the centre
	// (DefaultProbeInterval).
	ProbeInterval time.Duration
	// ResyncInterval is how often a running watch re-reads everything
	// (DefaultResyncInterval).
	ResyncInterval time.Duration
	// DeleteConfirm is how long a document (or the index) that a watch
	// saw must keep reading as missing before the watch reports it
	// deleted (DefaultDeleteConfirm). Polaris answers "not found" for a
	// just-updated dataId now and then; real Nacos does not, so a smaller
	// value is safe there. Negative: report at once.
	DeleteConfirm time.Duration
	// TLS, when set, speaks TLS to every server: gRPC (nacos-sdk-go's
	// client and graylane's own connection checks) and HTTP (https). The
	// files are checked when the client is built, so a bad path is an error
	// naming it rather than the SDK's process exit.
	TLS *TLSFiles

	// Logger receives the client's own messages (and, unless LogDir is
	// set, the SDK's). Default: discarded (logx.OrDiscard).
	Logger *slog.Logger
	// IndexLock, if set, is held around every index update (see
	// IndexLocker).
	IndexLock IndexLocker
	// ServiceGroup is the Nacos group of a Registry's services
	// (DefaultServiceGroup); Sources do not use it.
	ServiceGroup string
}

// TLSFiles are PEM files for TLS to Nacos (nacos-sdk-go reads files).
type TLSFiles struct {
	// CAFile is the CA bundle that signed the servers' certificates, added
	// to the system roots (empty: the system roots alone).
	CAFile string
	// CertFile and KeyFile are a client certificate and its key, for
	// servers that require one (both or neither).
	CertFile, KeyFile string
	// ServerName is the name to verify in the servers' certificates
	// (default: the host connected to).
	ServerName string
}

// config loads the files into a client TLS configuration.
func (t *TLSFiles) config() (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("nacos: config: tls.caFile: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nacos: config: tls.caFile: %s holds no PEM certificate", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("nacos: config: tls.certFile and tls.keyFile: set both or neither")
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("nacos: config: tls.certFile/keyFile: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// transportCredentials are graylane's own gRPC connections' credentials:
// TLS as configured, else plaintext.
func (c Config) transportCredentials() (credentials.TransportCredentials, error) {
	if c.TLS == nil {
		return insecure.NewCredentials(), nil
	}
	tc, err := c.TLS.config()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(tc), nil
}

// IndexLocker serialises index updates between graylane processes. Nacos
// servers that honour casMd5 do not need it; on one that ignores it (the
// source then falls back to read, compare, write), two writers can lose
// each other's index entries unless they share a lock. graylane passes a
// mutex in its own etcd, which all its replicas share.
type IndexLocker interface {
	Lock(ctx context.Context) error
	Unlock(ctx context.Context) error
}

// server is one parsed entry of Config.Servers.
type server struct {
	host     string
	httpPort uint64
	grpcPort uint64
}

func (s server) grpcAddr() string {
	return net.JoinHostPort(s.host, strconv.FormatUint(s.grpcPort, 10))
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, []server, error) {
	if len(c.Servers) == 0 {
		return c, nil, errors.New("nacos: config: no servers")
	}
	if c.GRPCPort < 0 || c.GRPCPort > 65535 {
		return c, nil, fmt.Errorf("nacos: config: gRPC port %d out of range", c.GRPCPort)
	}
	var servers []server
	for _, s := range c.Servers {
		host, port, err := net.SplitHostPort(strings.TrimSpace(s))
		if err != nil {
			return c, nil, fmt.Errorf("nacos: config: server %q: want host:port: %w", s, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return c, nil, fmt.Errorf("nacos: config: server %q: bad port", s)
		}
		g := p + grpcPortOffset
		if c.GRPCPort != 0 {
			g = uint64(c.GRPCPort)
		}
		if g > 65535 {
			return c, nil, fmt.Errorf("nacos: config: server %q: gRPC port %d out of range (port+%d; set GRPCPort)", s, g, grpcPortOffset)
		}
		servers = append(servers, server{host: host, httpPort: p, grpcPort: g})
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.IndexDataID == "" {
		c.IndexDataID = DefaultIndexDataID
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	switch {
	case c.DeleteConfirm == 0:
		c.DeleteConfirm = DefaultDeleteConfirm
	case c.DeleteConfirm < 0:
		c.DeleteConfirm = 0
	}
	if (c.Username == "") != (c.Password == "") {
		return c, nil, errors.New("nacos: config: set both username and password, or neither")
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return c, nil, errors.New("nacos: config: set both accessKey and secretKey, or neither")
	}
	if c.TLS != nil {
		if _, err := c.TLS.config(); err != nil {
			return c, nil, err
		}
	}
	return c, servers, nil
}

// sdkParam builds nacos-sdk-go's client parameters. cacheDir is the
// resolved cache directory.
func (c Config) sdkParam(servers []server, cacheDir string, naming bool) vo.NacosClientParam {
	sc := make([]constant.ServerConfig, len(servers))
	for i, s := range servers {
		sc[i] = constant.ServerConfig{IpAddr: s.host, Port: s.httpPort, GrpcPort: s.grpcPort}
		if c.TLS != nil {
			sc[i].Scheme = "https"
		}
	}
	logDir := c.LogDir
	if logDir == "" {
		// Replaced by the slog bridge right after the client is built;
		// point the SDK's file logger somewhere harmless meanwhile.
		logDir = filepath.Join(cacheDir, "log")
	}
	cc := &constant.ClientConfig{
		NamespaceId: c.Namespace,
		TimeoutMs:   uint64(c.Timeout / time.Millisecond),
		Username:    c.Username,
		Password:    c.Password,
		AccessKey:   c.AccessKey,
		SecretKey:   c.SecretKey,
		CacheDir:    cacheDir,
		LogDir:      logDir,
		LogLevel:    "info",
		// Never answer from a local snapshot: an unreachable centre must
		// surface as ErrUnavailable, not as stale content.
		DisableUseSnapShot: true,
		// Start from what the server says, not from a previous run's files.
		NotLoadCacheAtStart: true,
		// Without it the SDK never reports a service's last instance going.
		UpdateCacheWhenEmpty: naming,
		AppName:              "graylane",
	}
	if c.TLS != nil {
		// Appointed: these settings, not the SDK's nacos_remote_client_rpc_tls_* variables
		cc.TLSCfg = constant.TLSConfig{Appointed: true, Enable: true, CaFile: c.TLS.CAFile,
			CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile, ServerNameOverride: c.TLS.ServerName}
	}
	return vo.NacosClientParam{ClientConfig: cc, ServerConfigs: sc}
}

// cacheDir returns the directory for SDK files and whether it was created
// here (and must be removed on close).
func (c Config) cacheDir(kind string) (string, bool, error) {
	if c.CacheDir != "" {
		dir := filepath.Join(c.CacheDir, kind)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", false, fmt.Errorf("nacos: create cache dir: %w", err)
		}
		return dir, false, nil
	}
	dir, err := os.MkdirTemp("", "graylane-nacos-"+kind+"-")
	if err != nil {
		return "", false, fmt.Errorf("nacos: create cache dir: %w", err)
	}
	return dir, true, nil
}

// bridgeSDKLog points nacos-sdk-go's process-wide logger at log, unless the
// operator asked for the SDK's own log files. The SDK re-initialises its
// logger whenever a client is created, so this runs after every creation.
func (c Config) bridgeSDKLog(log *slog.Logger) {
	if c.LogDir != "" {
		return
	}
	sdklogger.SetLogger(sdkLog{log.With("component", "nacos-sdk")})
}

// sdkLog adapts slog to nacos-sdk-go's Logger interface. The SDK logs every
// failed request at error level and routine traffic at info level; graylane
// reports unavailability itself, so levels are shifted down one step.
type sdkLog struct{ l *slog.Logger }

func (s sdkLog) log(level slog.Level, msg string) {
	s.l.Log(context.Background(), level, msg)
}

func (s sdkLog) Info(args ...any)             { s.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (s sdkLog) Warn(args ...any)             { s.log(slog.LevelInfo, fmt.Sprint(args...)) }
func (s sdkLog) Error(args ...any)            { s.log(slog.LevelWarn, fmt.Sprint(args...)) }
func (s sdkLog) Debug(args ...any)            { s.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (s sdkLog) Infof(f string, args ...any)  { s.log(slog.LevelDebug, fmt.Sprintf(f, args...)) }
func (s sdkLog) Warnf(f string, args ...any)  { s.log(slog.LevelInfo, fmt.Sprintf(f, args...)) }
func (s sdkLog) Errorf(f string, args ...any) { s.log(slog.LevelWarn, fmt.Sprintf(f, args...)) }
func (s sdkLog) Debugf(f string, args ...any) { s.log(slog.LevelDebug, fmt.Sprintf(f, args...)) }
