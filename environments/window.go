package environments

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	// Windows name IANA time zones (Asia/Shanghai): the zone database is
	// embedded so a minimal image without /usr/share/zoneinfo knows them.
	_ "time/tzdata"
)

// Window is a weekly time window in which promotions into an
// environment may happen:
//
//	"Mon-Thu 10:00-16:00 Asia/Shanghai"   Monday to Thursday, 10:00 to 16:00 Shanghai time
//	"Mon,Wed,Fri 09:30-11:00"             those days, UTC
//	"daily 22:00-02:00 Europe/Berlin"     every night across midnight (the days are the start's)
//
// Days are Mon Tue Wed Thu Fri Sat Sun, a range (Fri-Mon wraps), a
// comma-separated list of days and ranges, or daily / "*". Times are
// HH:MM, the end excluded; an end at or before the start crosses
// midnight. The zone is an IANA name (default UTC).
type Window struct {
	// Text is the window as written.
	Text string
	days [7]bool // by time.Weekday
	// start and end are minutes after midnight.
	start, end int
	loc        *time.Location
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseWindow parses a window (see Window).
func ParseWindow(s string) (Window, error) {
	w := Window{Text: s, loc: time.UTC}
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return w, fmt.Errorf("%q is not \"DAYS HH:MM-HH:MM [ZONE]\" (e.g. \"Mon-Thu 10:00-16:00 Asia/Shanghai\")", s)
	}
	if err := w.parseDays(f[0]); err != nil {
		return w, fmt.Errorf("%q: %w", s, err)
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return w, fmt.Errorf("%q: %q is not HH:MM-HH:MM", s, f[1])
	}
	var err error
	if w.start, err = clockMinutes(from); err != nil {
		return w, fmt.Errorf("%q: %w", s, err)
	}
	if w.end, err = clockMinutes(to); err != nil {
		return w, fmt.Errorf("%q: %w", s, err)
	}
	if len(f) == 3 {
		if w.loc, err = time.LoadLocation(f[2]); err != nil || f[2] == "Local" {
			return w, fmt.Errorf("%q: %q is not an IANA time zone (e.g. Asia/Shanghai, UTC)", s, f[2])
		}
	}
	return w, nil
}

func (w *Window) parseDays(s string) error {
	if l := strings.ToLower(s); l == "daily" || l == "*" {
		for i := range w.days {
			w.days[i] = true
		}
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, "-")
		from, ok := dayNames[strings.ToLower(a)]
		if !ok {
			return fmt.Errorf("%q is not a day (Mon Tue Wed Thu Fri Sat Sun, daily)", a)
		}
		to := from
		if isRange {
			if to, ok = dayNames[strings.ToLower(b)]; !ok {
				return fmt.Errorf("%q is not a day (Mon Tue Wed Thu Fri Sat Sun, daily)", b)
			}
		}
		for d := from; ; d = (d + 1) % 7 {
			w.days[d] = true
			if d == to {
				break
			}
		}
	}
	return nil
}

func clockMinutes(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return hh*60 + mm, nil
}

// crosses reports whether the window runs past midnight.
func (w Window) crosses() bool { return w.end <= w.start }

// Contains reports whether t is inside the window.
func (w Window) Contains(t time.Time) bool {
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	day := lt.Weekday()
	if !w.crosses() {
		return w.days[day] && m >= w.start && m < w.end
	}
	prev := (day + 6) % 7
	return (w.days[day] && m >= w.start) || (w.days[prev] && m < w.end)
}

// Next returns when the window next opens at or after t (t itself when
// it is open), and false when it never opens (no days).
func (w Window) Next(t time.Time) (time.Time, bool) {
	if w.Contains(t) {
		return t, true
	}
	lt := t.In(w.loc)
	for i := 0; i <= 7; i++ {
		d := lt.AddDate(0, 0, i)
		if !w.days[d.Weekday()] {
			continue
		}
		open := time.Date(d.Year(), d.Month(), d.Day(), w.start/60, w.start%60, 0, 0, w.loc)
		if !open.Before(t) {
			return open, true
		}
	}
	return time.Time{}, false
}

// String is the window as written.
func (w Window) String() string { return w.Text }

// Windows is a set of windows: open when any is.
type Windows []Window

// Open reports whether t is inside one of the windows; no windows means
// always open.
func (ws Windows) Open(t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

// Next returns when the first window opens at or after t.
func (ws Windows) Next(t time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for _, w := range ws {
		if n, ok := w.Next(t); ok && (!found || n.Before(best)) {
			best, found = n, true
		}
	}
	return best, found
}

// String lists the windows.
func (ws Windows) String() string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.Text
	}
	return strings.Join(s, ", ")
}
