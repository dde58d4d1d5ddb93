package engine

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/graylane/graylane/rollout"
)

// index holds every app's Summary, sorted by name, so that a page of the
// apps list is a binary search and a short walk instead of a load of every
// record (20,000 apps: a page is well under a millisecond).
//
// Two feeds write it: the engine's own passes (put with live=true, after
// every pass on the leader, with the instances it observed) and the store's
// records (live=false, on every replica, so standbys list too). Each row
// keeps the record revision it was built from; a record-fed row replaces a
// row only when its revision is newer, a pass-fed row when it is not older,
// so a standby's record-only view never hides the leader's instances and
// an old listing never overwrites a newer pass.
//
// Every change that alters a row gets a sequence number; Since(seq) returns
// the rows changed after seq, which is how the all-apps event stream sends
// coalesced batches without ever blocking the engine.
type index struct {
	mu     sync.RWMutex
	rows   map[string]*row
	names  []string // sorted
	phases map[rollout.Phase]int
	// attention counts rows needing attention, the centre's health aside
	// (that is applied when read).
	attention int

	seq     uint64
	log     []logEntry // changes, oldest first
	subs    map[chan struct{}]struct{}
	ready   chan struct{}
	isReady bool
	maxLog  int
}

// row is one app's Summary, held encoded (encodeSummary): every replica
// holds a row for every app (any replica answers the whole list), so a
// row is most of what an app another replica drives costs here. Encoded,
// a row takes about 40 % of the memory of the decoded Summary with its
// strings, map and slices (BenchmarkIndexRowMemory); a page decodes only
// the rows it returns. What the filters and counts need is kept decoded
// beside it.
type row struct {
	enc   []byte // the Summary as seen with the centre ready (withSource(true))
	phase rollout.Phase
	// attn has bit i set for AttentionReasons[i] with the centre ready,
	// attnDown the same with the centre down.
	attn, attnDown attentionSet
	rev            int64
	// placeholder: only a document is known so far (no record yet).
	placeholder bool
}

// newRow encodes s (as seen with the centre ready). Equal summaries
// encode to equal bytes.
func newRow(s Summary, rev int64, placeholder bool) *row {
	s = s.withSource(true)
	return &row{enc: encodeSummary(s), phase: s.Phase, attn: attentionSetOf(s.Attention),
		attnDown: attentionSetOf(s.withSource(false).Attention), rev: rev, placeholder: placeholder}
}

// summary decodes the row, as seen with the centre's health sourceReady.
func (r *row) summary(sourceReady bool) Summary {
	s, err := decodeSummary(r.enc)
	if err != nil {
		panic(err) // newRow's own encoding, in memory: a bug, not an input
	}
	return s.withSource(sourceReady)
}

// attention is the row's attention set with the centre's health ready.
func (r *row) attention(sourceReady bool) attentionSet {
	if sourceReady {
		return r.attn
	}
	return r.attnDown
}

// attentionSet has bit i set for AttentionReasons[i].
type attentionSet uint16

func attentionSetOf(reasons []string) attentionSet {
	var a attentionSet
	for _, r := range reasons {
		a |= attentionBit(r)
	}
	return a
}

// attentionBit is reason's bit, 0 for a reason that does not exist.
func attentionBit(reason string) attentionSet {
	for i, r := range AttentionReasons {
		if r == reason {
			return 1 << i
		}
	}
	return 0
}

type logEntry struct {
	seq uint64
	app string
}

const defaultChangeLog = 16384

func newIndex() *index {
	return &index{rows: map[string]*row{}, phases: map[rollout.Phase]int{}, subs: map[chan struct{}]struct{}{},
		ready: make(chan struct{}), maxLog: defaultChangeLog}
}

// markReady is called once the first full listing is in.
func (x *index) markReady() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.isReady {
		x.isReady = true
		close(x.ready)
	}
}

// put stores s (built from the record at rev) unless the row holds newer
// data (see index).
func (x *index) put(s Summary, rev int64, live bool) {
	r := newRow(s, rev, false)
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.rows[s.App]
	if old != nil && !old.placeholder {
		if rev < old.rev || (!live && rev == old.rev) {
			return
		}
		if bytes.Equal(old.enc, r.enc) {
			old.rev = rev
			return
		}
	}
	x.set(s.App, r)
}

// doc records that app's document appeared (present) or vanished. An app
// with only a document shows as a placeholder row until its first pass.
func (x *index) doc(app, source string, present bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.rows[app]
	switch {
	case present && old == nil:
		x.set(app, newRow(Summary{App: app, Source: source, SourceReady: true}, 0, true))
	case !present && old != nil && old.placeholder:
		x.set(app, nil)
	}
}

// remove drops app's row.
func (x *index) remove(app string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rows[app] != nil {
		x.set(app, nil)
	}
}

// set replaces app's row (nil removes it), keeping names, counts and the
// change log in step. Callers hold x.mu.
func (x *index) set(app string, r *row) {
	if old := x.rows[app]; old != nil {
		x.phases[old.phase]--
		if x.phases[old.phase] == 0 {
			delete(x.phases, old.phase)
		}
		if old.attn != 0 {
			x.attention--
		}
		if r == nil {
			delete(x.rows, app)
			i := sort.SearchStrings(x.names, app)
			x.names = append(x.names[:i], x.names[i+1:]...)
		}
	} else if r != nil {
		i := sort.SearchStrings(x.names, app)
		x.names = append(x.names, "")
		copy(x.names[i+1:], x.names[i:])
		x.names[i] = app
	}
	if r != nil {
		x.rows[app] = r
		x.phases[r.phase]++
		if r.attn != 0 {
			x.attention++
		}
	}
	x.seq++
	x.log = append(x.log, logEntry{seq: x.seq, app: app})
	if len(x.log) > x.maxLog {
		x.log = append([]logEntry(nil), x.log[len(x.log)-x.maxLog/2:]...)
	}
	for ch := range x.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Query selects a page of the apps list.
type Query struct {
	// Phases keeps apps in one of these phases (none: every phase).
	Phases []rollout.Phase
	// Search keeps apps whose name contains it, ignoring case.
	Search string
	// Attention keeps apps needing attention: "any", or one reason
	// (Attention* constants); "" keeps all.
	Attention string
	// After starts the page after this app name (a continue token's
	// position): names are unique and sorted, so an app present for the
	// whole listing is returned exactly once however apps come and go.
	After string
	// Limit is the page size (> 0).
	Limit int
}

// Page is one page of the apps list.
type Page struct {
	Apps []Summary `json:"apps"`
	// More says whether apps after the last one match too.
	More bool `json:"more"`
	// Total counts the apps matching the filter (all pages).
	Total int `json:"total"`
	// Counts are over every app, whatever the filter.
	Counts Counts `json:"counts"`
	// Seq is the change sequence the page reflects (for the event stream).
	Seq uint64 `json:"seq"`
}

// Counts are the apps per phase and those needing attention.
type Counts struct {
	All       int                   `json:"all"`
	Phases    map[rollout.Phase]int `json:"phases"`
	Attention int                   `json:"attention"`
}

// Match reports whether s passes q's filters (not its position).
func (q Query) Match(s Summary) bool {
	return q.filter().match(s.App, s.Phase, attentionSetOf(s.Attention))
}

// queryFilter is a Query's filters prepared once for a scan of every row.
type queryFilter struct {
	q         Query
	lowSearch string
	attention attentionSet // q.Attention's bit (a specific reason)
}

func (q Query) filter() queryFilter {
	return queryFilter{q: q, lowSearch: strings.ToLower(q.Search), attention: attentionBit(q.Attention)}
}

// match is Match on what a row keeps decoded.
func (f queryFilter) match(app string, phase rollout.Phase, attn attentionSet) bool {
	if len(f.q.Phases) > 0 && !slices.Contains(f.q.Phases, phase) {
		return false
	}
	if f.lowSearch != "" && !strings.Contains(strings.ToLower(app), f.lowSearch) {
		return false
	}
	switch f.q.Attention {
	case "":
		return true
	case "any":
		return attn != 0
	default:
		return attn&f.attention != 0
	}
}

func (q Query) filtered() bool { return len(q.Phases) > 0 || q.Search != "" || q.Attention != "" }

// page answers q; sourceReady is the config centre's health now. Without
// filters it walks only the page; with them it scans every row once to
// count the matches (20,000 rows: a few milliseconds).
func (x *index) page(q Query, sourceReady bool) Page {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p := Page{Seq: x.seq, Counts: x.counts(sourceReady), Apps: make([]Summary, 0, min(q.Limit, len(x.names)))}
	start := 0
	if q.After != "" {
		start = sort.SearchStrings(x.names, q.After)
		if start < len(x.names) && x.names[start] == q.After {
			start++
		}
	}
	if !q.filtered() {
		p.Total = len(x.names)
		end := min(len(x.names), start+q.Limit)
		for _, name := range x.names[start:end] {
			p.Apps = append(p.Apps, x.rows[name].summary(sourceReady))
		}
		p.More = end < len(x.names)
		return p
	}
	f := q.filter()
	for i, name := range x.names {
		r := x.rows[name]
		if !f.match(name, r.phase, r.attention(sourceReady)) {
			continue
		}
		p.Total++
		if i < start {
			continue
		}
		if len(p.Apps) == q.Limit {
			p.More = true
			continue
		}
		p.Apps = append(p.Apps, r.summary(sourceReady))
	}
	return p
}

func (x *index) counts(sourceReady bool) Counts {
	c := Counts{All: len(x.rows), Phases: make(map[rollout.Phase]int, len(x.phases)), Attention: x.attention}
	for ph, n := range x.phases {
		c.Phases[ph] = n
	}
	if !sourceReady {
		c.Attention = 0
		for _, r := range x.rows {
			if r.attnDown != 0 {
				c.Attention++
			}
		}
	}
	return c
}

// Changes is what changed in the apps list after a sequence number.
type Changes struct {
	// Seq is the sequence the changes bring the reader to.
	Seq uint64 `json:"seq"`
	// Reset means the changes since the reader's sequence are no longer
	// known: re-read the list.
	Reset   bool      `json:"reset,omitempty"`
	Changed []Summary `json:"changed,omitempty"`
	Removed []string  `json:"removed,omitempty"`
	Counts  Counts    `json:"counts"`
}

// since returns the rows changed after seq.
func (x *index) since(seq uint64, sourceReady bool) Changes {
	x.mu.RLock()
	defer x.mu.RUnlock()
	ch := Changes{Seq: x.seq, Counts: x.counts(sourceReady)}
	if seq >= x.seq {
		return ch
	}
	if len(x.log) == 0 || x.log[0].seq > seq+1 {
		ch.Reset = true
		return ch
	}
	i := sort.Search(len(x.log), func(i int) bool { return x.log[i].seq > seq })
	seen := map[string]bool{}
	for _, e := range x.log[i:] {
		if seen[e.app] {
			continue
		}
		seen[e.app] = true
		if r := x.rows[e.app]; r != nil {
			ch.Changed = append(ch.Changed, r.summary(sourceReady))
		} else {
			ch.Removed = append(ch.Removed, e.app)
		}
	}
	sort.Slice(ch.Changed, func(i, j int) bool { return ch.Changed[i].App < ch.Changed[j].App })
	sort.Strings(ch.Removed)
	return ch
}

// subscribe returns a channel that receives (without blocking the
// engine, coalesced) after every change, and a function to stop.
func (x *index) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	x.mu.Lock()
	x.subs[ch] = struct{}{}
	x.mu.Unlock()
	return ch, func() {
		x.mu.Lock()
		delete(x.subs, ch)
		x.mu.Unlock()
	}
}

// appNames returns every app with a row.
func (x *index) appNames() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return append([]string(nil), x.names...)
}

// has reports whether app has a row.
func (x *index) has(app string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.rows[app] != nil
}
