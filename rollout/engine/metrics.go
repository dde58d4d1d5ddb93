package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graylane/graylane/rollout"
)

// Metrics are the engine's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	phase        *prometheus.GaugeVec
	stepDuration *prometheus.HistogramVec
	syncs        *prometheus.CounterVec
	syncSeconds  prometheus.Histogram
	sourceUpG    prometheus.Gauge
	sourceToAct  prometheus.Histogram
	leader       prometheus.Gauge
	releases     *releaseMetrics // records.go
}

// NewMetrics registers the engine's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "graylane_rollout_phase", Help: "1 for the phase each app is in.",
		}, []string{"app", "phase"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "graylane_step_duration_seconds", Help: "Time each canary step took, from start to completion.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}, []string{"app"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graylane_reconcile_total", Help: "Reconcile passes by result.",
		}, []string{"result"}),
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "graylane_reconcile_duration_seconds", Help: "Duration of one reconcile pass.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		sourceUpG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "graylane_source_up", Help: "1 when the config source is reachable.",
		}),
		sourceToAct: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "graylane_source_watch_lag_seconds", Help: "From receiving a changed release document to the first backend action for it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "graylane_leader", Help: "1 while this graylane reconciles releases (leads).",
		}),
	}
	reg.MustRegister(m.phase, m.stepDuration, m.syncs, m.syncSeconds, m.sourceUpG, m.sourceToAct, m.leader)
	m.releases = newReleaseMetrics(reg)
	return m
}

var allPhases = []rollout.Phase{rollout.Progressing, rollout.Paused, rollout.Healthy, rollout.Degraded, rollout.RolledBack}

func (m *Metrics) observeStatus(app string, before, after rollout.Status, now time.Time) {
	if m == nil {
		return
	}
	for _, p := range allPhases {
		v := 0.0
		if p == after.Phase {
			v = 1
		}
		m.phase.WithLabelValues(app, string(p)).Set(v)
	}
	if before.CanaryVersion != "" && before.CanaryVersion == after.CanaryVersion && after.Step > before.Step && !before.StepStartedAt.IsZero() {
		m.stepDuration.WithLabelValues(app).Observe(now.Sub(before.StepStartedAt).Seconds())
	}
}

func (m *Metrics) forget(app string) {
	if m == nil {
		return
	}
	for _, p := range allPhases {
		m.phase.DeleteLabelValues(app, string(p))
	}
	m.stepDuration.DeleteLabelValues(app)
}

func (m *Metrics) observeSync(d time.Duration, err error) {
	if m == nil {
		return
	}
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.syncs.WithLabelValues(r).Inc()
	m.syncSeconds.Observe(d.Seconds())
}

func (m *Metrics) sourceUp(up bool) {
	if m == nil {
		return
	}
	if up {
		m.sourceUpG.Set(1)
	} else {
		m.sourceUpG.Set(0)
	}
}

func (m *Metrics) observeSourceToAction(d time.Duration) {
	if m == nil {
		return
	}
	m.sourceToAct.Observe(d.Seconds())
}

func (m *Metrics) setLeader(on bool) {
	if m == nil {
		return
	}
	if on {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}
