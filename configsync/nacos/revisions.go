package nacos

import "sync"

// revisions hands out the source's local revisions: one counter, bumped
// whenever the source learns of a change to an app (its own Put, or the
// watch hub seeing new content or a deletion).
type revisions struct {
	mu    sync.Mutex
	n     int64
	byApp map[string]*revHistory
}

// revHistory is what the source knows of one app: the latest content's MD5
// ("" = absent) and revision, and the revisions of a few earlier contents.
type revHistory struct {
	md5  string
	rev  int64
	past map[string]int64
	keys []string // insertion order of past, oldest first
}

const revHistoryLen = 8

func (r *revisions) init() { r.byApp = map[string]*revHistory{} }

// mint records a change of app to md5 ("" = absent) and returns its
// revision: the current one if md5 is already the latest, else a new one.
func (r *revisions) mint(app, md5 string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.byApp[app]
	if h == nil {
		if md5 == "" {
			return r.n // never seen and still absent: nothing changed
		}
		h = &revHistory{past: map[string]int64{}}
		r.byApp[app] = h
	} else if h.md5 == md5 {
		return h.rev
	}
	if h.rev > 0 && h.md5 != "" {
		if _, ok := h.past[h.md5]; !ok {
			h.keys = append(h.keys, h.md5)
		}
		h.past[h.md5] = h.rev
		if len(h.keys) > revHistoryLen {
			delete(h.past, h.keys[0])
			h.keys = h.keys[1:]
		}
	}
	r.n++
	h.md5, h.rev = md5, r.n
	return r.n
}

// lookup returns the revision for content a read returned. Reads may lag
// (Polaris' cache, Nacos replication), so content the source saw before
// keeps the revision it had; unknown content is a change (minted).
func (r *revisions) lookup(app, md5 string) int64 {
	r.mu.Lock()
	if h := r.byApp[app]; h != nil {
		if h.md5 == md5 {
			r.mu.Unlock()
			return h.rev
		}
		if rev, ok := h.past[md5]; ok {
			r.mu.Unlock()
			return rev
		}
	}
	r.mu.Unlock()
	return r.mint(app, md5)
}

// atLeast raises the counter to n, so revisions never go back below one a
// caller hands back (for example after graylane restarts).
func (r *revisions) atLeast(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n = max(r.n, n)
}

func (r *revisions) current() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
