package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/graylane/graylane/configsync/nacos"
)

// buildNacosSource connects to Nacos (gRPC, nacos-sdk-go v2): releases
// are one dataId per app in nacos.group, listed by the index dataId
// (docs/nacos.md). It does not wait for Nacos: a Nacos that is down is
// reported on /readyz and in app status.
func buildNacosSource(ctx context.Context, v *viper.Viper, cli *clientv3.Client, dataDir string, log *slog.Logger) (sourceParts, error) {
	cacheDir := v.GetString("nacos.cacheDir")
	if cacheDir == "" {
		cacheDir = filepath.Join(dataDir, "nacos", "cache")
	}
	logDir := v.GetString("nacos.logDir")
	if logDir == "" {
		logDir = filepath.Join(dataDir, "nacos", "log")
	}
	cfg := nacos.Config{
		TLS:         nacosTLS(v),
		Servers:     list(v, "nacos.servers"),
		GRPCPort:    v.GetInt("nacos.grpcPort"),
		Namespace:   v.GetString("nacos.namespace"),
		Group:       v.GetString("nacos.group"),
		IndexDataID: v.GetString("nacos.indexDataId"),
		Username:    v.GetString("nacos.username"),
		Password:    v.GetString("nacos.password"),
		AccessKey:   v.GetString("nacos.accessKey"),
		SecretKey:   v.GetString("nacos.secretKey"),
		CacheDir:    cacheDir,
		LogDir:      logDir,
		Timeout:     v.GetDuration("nacos.timeout"),
	}
	if len(cfg.Servers) == 0 {
		return sourceParts{}, fmt.Errorf("source.type nacos needs nacos.servers (host:port of the Nacos HTTP port; gRPC is +1000)")
	}
	// graylane replicas share etcd: a mutex there serialises their updates
	// of the index dataId, which a server ignoring casMd5 cannot protect
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(15))
	if err != nil {
		return sourceParts{}, fmt.Errorf("etcd session for the nacos index lock: %w", err)
	}
	lock := etcdLock{concurrency.NewMutex(sess, "/graylane/locks/nacos-index/"+cfg.Namespace+"/"+cfg.Group)}
	cfg.Logger = log
	cfg.IndexLock = lock
	s, err := nacos.New(ctx, cfg)
	if err != nil {
		sess.Close()
		return sourceParts{}, fmt.Errorf("source.type nacos: %w", err)
	}
	return sourceParts{source: s, writer: s, ready: s.Healthy, close: func() { _ = s.Close(); sess.Close() }}, nil
}

// etcdLock adapts an etcd mutex to nacos.IndexLocker.
type etcdLock struct{ m *concurrency.Mutex }

func (l etcdLock) Lock(ctx context.Context) error   { return l.m.Lock(ctx) }
func (l etcdLock) Unlock(ctx context.Context) error { return l.m.Unlock(ctx) }

// nacosTLS reads nacos.tls.* (caFile, certFile, keyFile, serverName, or
// enabled: true for the system roots alone); nil: plaintext, as Nacos
// serves by default.
func nacosTLS(v *viper.Viper) *nacos.TLSFiles {
	t := readTLS(v, "nacos.tls")
	if !t.enabled() && !v.GetBool("nacos.tls.enabled") {
		return nil
	}
	return &nacos.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName}
}
