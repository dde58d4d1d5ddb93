package records

import (
	"math"
	"sort"
	"time"
)

// Windows of release statistics.
var Windows = []Window{{"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// Window is a statistics period ending now.
type Window struct {
	Name string
	Span time.Duration
}

// Stats are release statistics over one window, for one app or all.
//
//   - Started counts releases (kind release or rollback, not adopted)
//     started in the window; the outcome counts are over those releases.
//   - RolledBack counts releases rolled back during their rollout and
//     promoted releases a later rollback replaced.
//   - LeadTime: promoted releases, from the desired version seen to
//     Healthy.
//   - TimeToRestore: failed releases (aborted, rolled back, failed), from
//     the failure detected to all traffic back on the stable version; and
//     rollbacks to a revision, from the request seen to Healthy.
//   - ChangeFailureRate: releases that failed (aborted, rolled back,
//     failed, or promoted and later replaced by a rollback) over releases
//     that finished (superseded and in-progress ones excluded).
type Stats struct {
	Window            string    `json:"window"`
	Since             time.Time `json:"since"`
	Until             time.Time `json:"until"`
	Started           int       `json:"started"`
	Promoted          int       `json:"promoted"`
	Aborted           int       `json:"aborted"`
	RolledBack        int       `json:"rolledBack"`
	Superseded        int       `json:"superseded"`
	Failed            int       `json:"failed"`
	InProgress        int       `json:"inProgress"`
	Rollbacks         int       `json:"rollbacks"`
	LeadTime          Durations `json:"leadTime"`
	TimeToRestore     Durations `json:"timeToRestore"`
	ChangeFailureRate float64   `json:"changeFailureRate"`
}

// Durations summarises a set of durations (seconds).
type Durations struct {
	Count  int     `json:"count"`
	Median float64 `json:"medianSeconds"`
	P90    float64 `json:"p90Seconds"`
}

// Compute returns the statistics of the releases in sums started within
// w before now (app "" for every app). It is pure.
func Compute(sums []Summary, app string, now time.Time, w Window) Stats {
	since := now.Add(-w.Span)
	st := Stats{Window: w.Name, Since: since, Until: now}
	replaced := map[string]map[int]bool{}
	for _, s := range sums {
		if s.Kind == KindRollback && s.Replaces > 0 && s.RollbackTo > 0 {
			if replaced[s.App] == nil {
				replaced[s.App] = map[int]bool{}
			}
			replaced[s.App][s.Replaces] = true
		}
	}
	var lead, restore []float64
	finished, failures := 0, 0
	for _, s := range sums {
		if (app != "" && s.App != app) || s.Kind == KindAdopted || s.StartedAt.Before(since) || s.StartedAt.After(now) {
			continue
		}
		st.Started++
		if s.Kind == KindRollback {
			st.Rollbacks++
		}
		release := s.Kind == KindRelease
		switch s.Outcome {
		case "":
			st.InProgress++
		case Promoted:
			st.Promoted++
			if release {
				lead = append(lead, seconds(s.EndedAt.Sub(start(s))))
				finished++
				if replaced[s.App][s.Number] {
					st.RolledBack++
					failures++
				}
			} else if s.RollbackTo > 0 {
				restore = append(restore, seconds(s.EndedAt.Sub(start(s))))
			}
		case Aborted, RolledBack, Failed:
			switch s.Outcome {
			case Aborted:
				st.Aborted++
			case RolledBack:
				st.RolledBack++
			default:
				st.Failed++
			}
			if release {
				finished++
				failures++
			}
			if !s.RestoredAt.IsZero() && !s.FailedAt.IsZero() {
				restore = append(restore, seconds(s.RestoredAt.Sub(s.FailedAt)))
			}
		case Superseded:
			st.Superseded++
		}
	}
	st.LeadTime = summarize(lead)
	st.TimeToRestore = summarize(restore)
	if finished > 0 {
		st.ChangeFailureRate = math.Round(float64(failures)/float64(finished)*1000) / 1000
	}
	return st
}

func start(s Summary) time.Time {
	if s.SeenAt.IsZero() || s.SeenAt.After(s.StartedAt) {
		return s.StartedAt
	}
	return s.SeenAt
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// summarize gives the count, median and 90th percentile (nearest rank).
func summarize(xs []float64) Durations {
	if len(xs) == 0 {
		return Durations{}
	}
	sort.Float64s(xs)
	return Durations{Count: len(xs), Median: Percentile(xs, 50), P90: Percentile(xs, 90)}
}

// Percentile is the nearest-rank percentile p of sorted xs: the smallest
// value with at least p% of the values at or below it.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(0, min(len(sorted)-1, rank-1))]
}
