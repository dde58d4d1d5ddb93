package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/viper"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/audit"
	"github.com/graylane/graylane/internal/redact"
	"github.com/graylane/graylane/records"
)

// recordsDefaults are the configuration keys of release records and the
// audit log (README: Release records).
var recordsDefaults = map[string]any{
	"records.prefix":           records.DefaultPrefix,
	"records.keep":             records.DefaultKeep,                      // revisions kept per app
	"records.deletedRetention": records.DefaultDeletedRetention.String(), // how long a deleted app's revisions stay
	"records.statsRetention":   records.DefaultSummaryRetention.String(), // release summaries for statistics
	"audit.prefix":             audit.DefaultPrefix,
	"audit.retention":          audit.DefaultRetention.String(),
	"audit.pruneInterval":      "10m", // how often expired revisions and audit records are removed
}

// recordsWiring is release records and the audit log over graylane's etcd.
type recordsWiring struct {
	store   *records.Store
	keeper  *records.Keeper
	audit   *audit.Store
	denials *audit.Aggregator
	every   time.Duration
	log     *slog.Logger
}

func buildRecords(v *viper.Viper, cli *clientv3.Client, centre, env string, log *slog.Logger) *recordsWiring {
	for k, d := range recordsDefaults {
		v.SetDefault(k, d)
	}
	log = log.With("component", "records")
	w := &recordsWiring{log: log, every: v.GetDuration("audit.pruneInterval")}
	w.store = records.NewStore(records.StoreConfig{Client: cli, Prefix: v.GetString("records.prefix"), Keep: v.GetInt("records.keep"),
		DeletedRetention: v.GetDuration("records.deletedRetention"), SummaryRetention: v.GetDuration("records.statsRetention")})
	w.audit = audit.NewStore(audit.StoreConfig{Client: cli, Prefix: v.GetString("audit.prefix"), Retention: v.GetDuration("audit.retention")})
	w.denials = audit.NewAggregator(w.audit, nil, log)
	w.keeper = records.NewKeeper(records.KeeperConfig{Store: w.store, Centre: centre,
		CentreEdit: func(ctx context.Context, app string, c records.Cause, diff string) error {
			return w.audit.Append(ctx, audit.Record{Actor: audit.CentrePrefix + centre, Via: "centre", Env: env, App: app,
				Action: "release document edited in " + centre + " (not through graylane's API)", Target: app, Outcome: audit.Allowed,
				Content: map[string]any{"documentVersion": c.DocumentVersion}, Diff: redact.Diff(diff)})
		},
		ConfigEdit: func(ctx context.Context, app, what string) error {
			return w.audit.Append(ctx, audit.Record{Actor: audit.CentrePrefix + "config", Via: "centre", App: app,
				Action: "config edited in a config target (not through graylane)", Target: what, Outcome: audit.Allowed})
		}})
	return w
}

// run aggregates denials and removes expired records until ctx ends. It
// returns once the aggregator has written its last records, so that
// graylane closes its etcd client only after they are in.
func (w *recordsWiring) run(ctx context.Context) error {
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		w.denials.Run(ctx)
	}()
	defer func() { <-flushed }()
	if w.every <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		if n, err := w.store.Expire(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("expire release records", "err", err)
		} else if n > 0 {
			w.log.Info("revisions of deleted apps expired", "apps", n)
		}
		if n, err := w.audit.Prune(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("prune the audit log", "err", err)
		} else if n > 0 {
			w.log.Info("audit records past their retention removed", "records", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
