package engine

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graylane/graylane/rollout"
)

// Metrics are the engine's Prometheus metrics. Every series carries the
// label env, the engine's environment ("default" without environments),
// so the engines of one graylane share the metrics without colliding. A
// nil *Metrics records nothing.
type Metrics struct {
	*metricVecs
	env string
}

type metricVecs struct {
	phase        *prometheus.GaugeVec
	stepDuration *prometheus.HistogramVec
	syncs        *prometheus.CounterVec
	syncSeconds  *prometheus.HistogramVec
	sourceUpG    *prometheus.GaugeVec
	sourceToAct  *prometheus.HistogramVec
	leader       *prometheus.GaugeVec
	releases     *releaseMetrics // records.go
	shardMembers *prometheus.GaugeVec
	shardApps    *prometheus.GaugeVec

	mu     sync.Mutex
	phases map[phaseKey]rollout.Phase // the phase series set per environment and app
}

type phaseKey struct{ env, app string }

// DefaultEnv is the env label of an engine without an environment.
const DefaultEnv = "default"

// NewMetrics registers the engine's metrics with reg, for the
// environment DefaultEnv (For gives another environment's).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	v := &metricVecs{phases: map[phaseKey]rollout.Phase{},
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "graylane_rollout_phase", Help: "1 for the phase each app is in (one series per app, its current phase).",
		}, []string{"env", "app", "phase"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "graylane_step_duration_seconds", Help: "Time each canary step took, from start to completion (every app's steps: per app, GET /api/v1/apps/{app}/revisions).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}, []string{"env"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graylane_reconcile_total", Help: "Reconcile passes by result.",
		}, []string{"env", "result"}),
		syncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "graylane_reconcile_duration_seconds", Help: "Duration of one reconcile pass.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"env"}),
		sourceUpG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "graylane_source_up", Help: "1 when the config source is reachable.",
		}, []string{"env"}),
		sourceToAct: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "graylane_source_watch_lag_seconds", Help: "From receiving a changed release document to the first backend action for it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"env"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "graylane_leader", Help: "1 while this graylane reconciles releases (leads).",
		}, []string{"env"}),
		shardMembers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "graylane_shard_members", Help: "Live replicas this one sees (ha.mode shard)."}, []string{"env"}),
		shardApps:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "graylane_shard_apps", Help: "Apps this replica drives (ha.mode shard)."}, []string{"env"}),
	}
	reg.MustRegister(v.shardMembers, v.shardApps)
	reg.MustRegister(v.phase, v.stepDuration, v.syncs, v.syncSeconds, v.sourceUpG, v.sourceToAct, v.leader)
	v.releases = newReleaseMetrics(reg)
	return &Metrics{metricVecs: v, env: DefaultEnv}
}

// For returns the metrics of environment env (same series, label env).
func (m *Metrics) For(env string) *Metrics {
	if m == nil {
		return nil
	}
	if env == "" {
		env = DefaultEnv
	}
	return &Metrics{metricVecs: m.metricVecs, env: env}
}

var allPhases = []rollout.Phase{rollout.Progressing, rollout.Paused, rollout.Healthy, rollout.Degraded, rollout.RolledBack}

// observeStatus keeps one phase series per app, the current phase's (set
// to 1), touched only when the phase changes: at 20,000 apps a series per
// phase would be 100,000 series and five map updates per pass.
func (m *Metrics) observeStatus(app string, before, after rollout.Status, now time.Time) {
	if m == nil {
		return
	}
	k := phaseKey{m.env, app}
	m.mu.Lock()
	was, known := m.phases[k]
	if !known || was != after.Phase {
		m.phases[k] = after.Phase
	}
	m.mu.Unlock()
	if !known || was != after.Phase {
		if known {
			m.phase.DeleteLabelValues(m.env, app, string(was))
		}
		m.phase.WithLabelValues(m.env, app, string(after.Phase)).Set(1)
	}
	if before.CanaryVersion != "" && before.CanaryVersion == after.CanaryVersion && after.Step > before.Step && !before.StepStartedAt.IsZero() {
		m.stepDuration.WithLabelValues(m.env).Observe(now.Sub(before.StepStartedAt).Seconds())
	}
}

func (m *Metrics) forget(app string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.phases, phaseKey{m.env, app})
	m.mu.Unlock()
	for _, p := range allPhases {
		m.phase.DeleteLabelValues(m.env, app, string(p))
	}
}

func (m *Metrics) observeSync(d time.Duration, err error) {
	if m == nil {
		return
	}
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.syncs.WithLabelValues(m.env, r).Inc()
	m.syncSeconds.WithLabelValues(m.env).Observe(d.Seconds())
}

func (m *Metrics) sourceUp(up bool) {
	if m == nil {
		return
	}
	if up {
		m.sourceUpG.WithLabelValues(m.env).Set(1)
	} else {
		m.sourceUpG.WithLabelValues(m.env).Set(0)
	}
}

func (m *Metrics) observeSourceToAction(d time.Duration) {
	if m == nil {
		return
	}
	m.sourceToAct.WithLabelValues(m.env).Observe(d.Seconds())
}

func (m *Metrics) setLeader(on bool) {
	if m == nil {
		return
	}
	if on {
		m.leader.WithLabelValues(m.env).Set(1)
	} else {
		m.leader.WithLabelValues(m.env).Set(0)
	}
}

func (m *Metrics) setShard(st ShardStatus) {
	if m == nil {
		return
	}
	m.shardMembers.WithLabelValues(m.env).Set(float64(len(st.Members)))
	m.shardApps.WithLabelValues(m.env).Set(float64(st.Held))
}
