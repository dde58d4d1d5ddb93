package configrelease

// Drift: verified placements re-read now and then.

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/configwire"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/spec"
)

// Drift is a placement whose content changed behind graylane's back.
type Drift struct {
	Placement Placement `json:"placement"`
	Identity  string    `json:"identity"`
	// Want is the SHA-256 graylane wrote; Got what the centre serves now
	// ("" when the file is gone).
	Want  string    `json:"want"`
	Got   string    `json:"got"`
	Diff  string    `json:"diff,omitempty"`
	Since time.Time `json:"since"`
}

// missingConfirm is how long a placement must keep reading as missing
// before that counts as drift.
const missingConfirm = 4 * time.Second

// checkDrift re-reads every verified placement that should hold a file.
func (m *Manager) checkDrift(ctx context.Context, app string, cfg *spec.Config, want map[string]wanted, applied map[string]AppliedPlacement, a *appMem) []rollout.Event {
	var events []rollout.Event
	type found struct {
		key string
		w   wanted
		got string
		doc configsync.Doc
		err error
	}
	var mu sync.Mutex
	var fs []found
	var wg sync.WaitGroup
	for k, w := range want {
		ap, ok := applied[k]
		if w.file == nil || !ok || !ap.Verified || ap.SHA256 != w.sha() {
			continue
		}
		docs, ok := m.centres[w.p.Centre]
		if !ok {
			continue
		}
		wg.Add(1)
		go func(k string, w wanted) {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, m.cfg.OpTimeout)
			defer cancel()
			doc, err := m.read(rctx, docs, w.p)
			if err != nil && !isNotFound(err) {
				return // unreachable: not drift
			}
			got := ""
			if err == nil {
				got, _ = configwire.FileDigest(w.p.Format, doc.Data)
			}
			mu.Lock()
			fs = append(fs, found{key: k, w: w, got: got, doc: doc, err: err})
			mu.Unlock()
		}(k, w)
	}
	wg.Wait()
	sort.Slice(fs, func(i, j int) bool { return fs[i].key < fs[j].key })
	repair := cfg.DriftPolicy() == spec.DriftRepair
	now := m.cfg.Clock.Now()
	for _, f := range fs {
		if f.err == nil {
			delete(a.missing, f.key)
		} else if _, was := a.drift[f.key]; !was {
			// a file that reads as missing is drift only if it stays
			// missing: some servers (Polaris) answer "not found" for a
			// dataId being updated
			first, seen := a.missing[f.key]
			if !seen {
				a.missing[f.key] = now
				continue
			}
			if now.Sub(first) < missingConfirm {
				continue
			}
		}
		if f.got == f.w.sha() {
			if _, was := a.drift[f.key]; was {
				delete(a.drift, f.key)
				events = append(events, rollout.Event{Type: rollout.Normal, Reason: "ConfigDriftResolved", Message: fmt.Sprintf("%s of %s holds the config graylane wrote again", f.w.p, f.w.identity)})
			}
			continue
		}
		d := Drift{Placement: f.w.p, Identity: f.w.identity, Want: f.w.sha(), Got: f.got, Since: m.cfg.Clock.Now()}
		gotText := ""
		if f.err == nil {
			gotText = string(f.doc.Data)
		}
		d.Diff = Diff(f.w.file.Content, gotText)
		prev, seen := a.drift[f.key]
		if seen && prev.Got == d.Got {
			d.Since = prev.Since
		}
		a.drift[f.key] = d
		if !seen || prev.Got != d.Got {
			what := "changed"
			if f.err != nil {
				what = "deleted"
			}
			msg := fmt.Sprintf("%s (%s config of %s) was %s behind graylane's back: want %s, found %s", f.w.p, f.w.p.Role, f.w.identity, what, configwire.Short(d.Want), orNone(configwire.Short(d.Got)))
			if repair {
				msg += "; repairing"
			}
			events = append(events, rollout.Event{Type: rollout.Warning, Reason: "ConfigDrift", Message: msg + "\n" + d.Diff})
			m.log.Warn("config drift", "app", app, "placement", f.w.p.String(), "want", configwire.Short(d.Want), "got", configwire.Short(d.Got), "repair", repair)
		}
		if repair {
			ap := applied[f.key]
			ap.Verified = false
			applied[f.key] = ap
		}
	}
	return events
}
