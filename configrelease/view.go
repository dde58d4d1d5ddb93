package configrelease

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/graylane/graylane/rollout"
)

// Views: an app's config status for the API.

// View is an app's config status for the API.
type View struct {
	// Identity is the release identity of the spec in force.
	Identity string `json:"identity"`
	// Layout is what the stable locations and version-bound copies should
	// hold now.
	Layout Layout `json:"layout"`
	// Gate is what the planner was told.
	Gate *rollout.ConfigGate `json:"gate"`
	// Placements shows every placement with what it should hold.
	Placements []PlacementStatus `json:"placements"`
	// Pending is the dual-write in progress, if any.
	Pending *Txn `json:"pending,omitempty"`
	// Drift lists placements changed behind graylane's back.
	Drift []Drift `json:"drift,omitempty"`
	// Error is the last pass's error, if it failed.
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// PlacementStatus is one placement in View.
type PlacementStatus struct {
	Placement
	Identity string `json:"identity"`
	// Want is the file digest it should hold ("" = absent).
	Want     string    `json:"want"`
	Verified bool      `json:"verified"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts,omitempty"`
	Retry    time.Time `json:"retryAt,omitempty"`
}

// View returns the app's config status, nil before its first pass.
func (m *Manager) View(app string) *View {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.apps[app] // not m.mem: a view of an app without config keeps nothing
	if a == nil || a.view == nil {
		return nil
	}
	v := *a.view
	return &v
}

// waiting summarises what the layer waits for, for the planner's message.
func (m *Manager) waiting(want map[string]wanted, applied map[string]AppliedPlacement, a *appMem, now time.Time) string {
	var parts []string
	unverified := 0
	for k, w := range want {
		if ap, ok := applied[k]; ok && ap.Verified && ap.SHA256 == w.sha() {
			continue
		}
		if w.file == nil {
			if _, ok := applied[k]; !ok {
				continue
			}
		}
		if r := a.retry[k]; r != nil {
			parts = append(parts, fmt.Sprintf("%s: %s (attempt %d, retry in %s)", w.p, r.err, r.attempts, max(0, r.next.Sub(now)).Round(100*time.Millisecond)))
			continue
		}
		unverified++
	}
	sort.Strings(parts)
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("and %d more", len(parts)-3))
	}
	if unverified > 0 {
		parts = append(parts, fmt.Sprintf("%d placement(s) being written and read back", unverified))
	}
	return strings.Join(parts, "; ")
}

func (m *Manager) setView(in Pass, a *appMem, lay Layout, g *rollout.ConfigGate, want map[string]wanted, state State, now time.Time) {
	v := &View{Identity: in.Identity, Layout: lay, Gate: g, UpdatedAt: now, Pending: state.Txn}
	for k, w := range want {
		ap, ok := state.Applied[k]
		if !ok && w.file == nil {
			continue // deleted
		}
		ps := PlacementStatus{Placement: w.p, Identity: w.identity, Want: w.sha()}
		ps.Verified = ok && ap.Verified && ap.SHA256 == w.sha()
		if r := a.retry[k]; r != nil {
			ps.Error, ps.Attempts, ps.Retry = r.err, r.attempts, r.next
		}
		v.Placements = append(v.Placements, ps)
	}
	sort.Slice(v.Placements, func(i, j int) bool {
		pi, pj := v.Placements[i], v.Placements[j]
		if pi.Role != pj.Role {
			return pi.Role > pj.Role // stable first
		}
		return pi.Key() < pj.Key()
	})
	for _, d := range a.drift {
		v.Drift = append(v.Drift, d)
	}
	sort.Slice(v.Drift, func(i, j int) bool { return v.Drift[i].Placement.Key() < v.Drift[j].Placement.Key() })
	m.mu.Lock()
	a.view = v
	m.mu.Unlock()
}
