package etcdserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Alarms returns the member's active alarms by name (NOSPACE when the
// database reached QuotaBackendBytes, CORRUPT), sorted.
func (s *Server) Alarms() []string {
	var out []string
	for _, a := range s.etcd.Server.Alarms() {
		if a.Alarm != pb.AlarmType_NONE {
			out = append(out, a.Alarm.String())
		}
	}
	sort.Strings(out)
	return out
}

// DBSize returns the database file's size and the part of it in use.
func (s *Server) DBSize() (size, inUse int64) {
	be := s.etcd.Server.Backend()
	return be.Size(), be.SizeInUse()
}

// Check reports a problem that keeps graylane from working: an active
// alarm. With NOSPACE etcd refuses every write (graylane cannot save
// release state) until space is freed and the alarm disarmed. For
// graylane's /readyz.
func (s *Server) Check(ctx context.Context) error {
	alarms := s.Alarms()
	if len(alarms) == 0 {
		return nil
	}
	size, inUse := s.DBSize()
	msg := fmt.Sprintf("embedded etcd alarm %s: database %d bytes (%d in use) against a quota of %d", strings.Join(alarms, ","), size, inUse, s.cfg.QuotaBackendBytes)
	if contains(alarms, pb.AlarmType_NOSPACE.String()) {
		msg += "; writes are refused: raise etcd.embedded.quotaBackendBytes or free space (graylane compacts, defragments and disarms the alarm once the database is below 80% of the quota)"
	}
	return fmt.Errorf("%s", msg)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// maintain defragments the database every DefragInterval when it has much
// free space, and disarms a NOSPACE alarm once compaction and
// defragmentation brought it well below the quota. It ends with Close.
func (s *Server) maintain() {
	defer close(s.maintDone)
	if s.cfg.DefragInterval < 0 {
		<-s.stopMaint
		return
	}
	t := time.NewTicker(s.cfg.DefragInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopMaint:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s.maintainOnce(ctx)
		cancel()
	}
}

func (s *Server) maintainOnce(ctx context.Context) {
	size, inUse := s.DBSize()
	free := size - inUse
	alarmed := contains(s.Alarms(), pb.AlarmType_NOSPACE.String())
	if free < s.cfg.DefragMinFree || 2*free < size {
		if !alarmed {
			return
		}
	}
	c, err := s.Client()
	if err != nil {
		s.log.Warn("embedded etcd maintenance: connect", "err", err)
		return
	}
	defer c.Close()
	if free >= s.cfg.DefragMinFree && 2*free >= size {
		start := time.Now()
		if _, err := c.Defragment(ctx, s.Endpoints()[0]); err != nil {
			s.log.Warn("embedded etcd defragmentation failed", "err", err, "size", size, "inUse", inUse)
			return
		}
		after, _ := s.DBSize()
		s.log.Info("embedded etcd defragmented", "before", size, "after", after, "took", time.Since(start).Round(time.Millisecond))
		size = after
	}
	if alarmed && size < s.cfg.QuotaBackendBytes/10*8 {
		if _, err := c.AlarmDisarm(ctx, &clientv3.AlarmMember{Alarm: pb.AlarmType_NOSPACE}); err != nil {
			s.log.Warn("embedded etcd: disarm NOSPACE", "err", err)
			return
		}
		s.log.Warn("embedded etcd NOSPACE alarm disarmed: the database is below 80% of its quota again", "size", size, "quota", s.cfg.QuotaBackendBytes)
	}
}

// Collector returns the member's metrics: database size and size in use,
// the quota, and one gauge per alarm (1 while active).
func (s *Server) Collector() prometheus.Collector { return &collector{s: s} }

type collector struct{ s *Server }

var (
	dbSizeDesc  = prometheus.NewDesc("graylane_etcd_db_size_bytes", "Size of the embedded etcd's database file.", nil, nil)
	dbInUseDesc = prometheus.NewDesc("graylane_etcd_db_size_in_use_bytes", "Part of the embedded etcd's database file in use (the rest is freed by defragmentation).", nil, nil)
	quotaDesc   = prometheus.NewDesc("graylane_etcd_quota_bytes", "The embedded etcd's backend quota: past it, the NOSPACE alarm refuses writes.", nil, nil)
	alarmDesc   = prometheus.NewDesc("graylane_etcd_alarm", "1 while the embedded etcd has this alarm active (NOSPACE: writes refused).", []string{"alarm"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dbSizeDesc
	ch <- dbInUseDesc
	ch <- quotaDesc
	ch <- alarmDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	size, inUse := c.s.DBSize()
	ch <- prometheus.MustNewConstMetric(dbSizeDesc, prometheus.GaugeValue, float64(size))
	ch <- prometheus.MustNewConstMetric(dbInUseDesc, prometheus.GaugeValue, float64(inUse))
	ch <- prometheus.MustNewConstMetric(quotaDesc, prometheus.GaugeValue, float64(c.s.cfg.QuotaBackendBytes))
	active := c.s.Alarms()
	for _, a := range []string{pb.AlarmType_NOSPACE.String(), pb.AlarmType_CORRUPT.String()} {
		v := 0.0
		if contains(active, a) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(alarmDesc, prometheus.GaugeValue, v, a)
	}
}
