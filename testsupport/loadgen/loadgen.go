package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

// Headers read from every answer.
const (
	VersionHeader  = "X-Version"           // the version that served the request
	UpstreamHeader = "X-Graylane-Upstream" // the instance a graylane proxy chose
)

// maxErrors is how many distinct failure messages Result keeps.
const maxErrors = 5

// Config configures a load run.
type Config struct {
	// URL is requested with GET (required).
	URL string
	// Workers is the number of concurrent senders (default 4).
	Workers int
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// PhaseByConnection counts a successful response towards a phase only
	// when its connection was opened during that phase (failures always
	// count). Without it a response counts towards the phase current when
	// its request was sent.
	PhaseByConnection bool
}

// Sample is one request.
type Sample struct {
	At       time.Time // when it was sent
	Phase    int64     // the phase it counts towards; -1 when it counts towards none
	Version  string    // VersionHeader of a 200 answer; "" on failure
	Upstream string    // UpstreamHeader, when the answer carried one
	Err      string    // why it failed (no answer, or a non-200 status); "" on success
}

// Result is what a stopped run saw.
type Result struct {
	Samples []Sample
	OK      int
	Failed  int
	Errors  []string // the first few failure messages
	Elapsed time.Duration
}

// Load is a running load generator.
type Load struct {
	cfg    Config
	begin  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	phase  atomic.Int64

	mu      sync.Mutex
	samples []Sample
	counts  map[int64]map[string]int // successes by phase and version
	ok      int
	failed  int
	errs    []string
	end     time.Time
}

// Start starts the workers; the run stops when t ends if Stop was not
// called. It starts no server, so it does not need an integration test by
// itself.
func Start(t testing.TB, cfg Config) *Load {
	t.Helper()
	if cfg.URL == "" {
		t.Fatal("loadgen: Config.URL is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cfg: cfg, begin: time.Now(), cancel: cancel, counts: map[int64]map[string]int{}}
	var d net.Dialer
	tr := &http.Transport{
		Proxy:               nil, // never an HTTP_PROXY from the environment
		MaxIdleConnsPerHost: cfg.Workers,
		IdleConnTimeout:     30 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stampedConn{Conn: c, phase: l.phase.Load()}, nil
		},
	}
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}
	for range cfg.Workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.once(ctx, client)
			}
		}()
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

type stampedConn struct {
	net.Conn
	phase int64
}

func (l *Load) once(ctx context.Context, c *http.Client) {
	s := Sample{At: time.Now(), Phase: l.phase.Load()}
	connPhase := int64(-1)
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if sc, ok := info.Conn.(*stampedConn); ok {
			connPhase = sc.phase
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, l.cfg.URL, nil)
	if err != nil {
		s.Err = err.Error()
		l.record(s)
		return
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return // stopped: not a failure of the system under test
		}
		s.Err = err.Error()
		l.record(s)
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.Upstream = resp.Header.Get(UpstreamHeader)
	switch {
	case resp.StatusCode != http.StatusOK:
		s.Err = resp.Status
		if s.Upstream != "" {
			s.Err += " from " + s.Upstream
		}
	case err != nil && ctx.Err() == nil:
		s.Err = "reading the body: " + err.Error()
	case err != nil:
		return
	default:
		s.Version = resp.Header.Get(VersionHeader)
		if l.cfg.PhaseByConnection && connPhase != s.Phase {
			s.Phase = -1
		}
	}
	l.record(s)
}

func (l *Load) record(s Sample) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.samples = append(l.samples, s)
	if s.Err != "" {
		l.failed++
		if len(l.errs) < maxErrors {
			l.errs = append(l.errs, s.Err)
		}
		return
	}
	l.ok++
	if s.Phase >= 0 {
		if l.counts[s.Phase] == nil {
			l.counts[s.Phase] = map[string]int{}
		}
		l.counts[s.Phase][s.Version]++
	}
}

// Next starts a new phase and returns its number (the first run is phase
// 0).
func (l *Load) Next() int64 { return l.phase.Add(1) }

// PhaseCounts returns the successful answers of phase so far, by version.
func (l *Load) PhaseCounts(phase int64) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for v, n := range l.counts[phase] {
		out[v] = n
	}
	return out
}

// Counts returns every successful answer so far, by version.
func (l *Load) Counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, byVersion := range l.counts {
		for v, n := range byVersion {
			out[v] += n
		}
	}
	return out
}

// Totals returns how many requests succeeded and failed so far, and the
// first failure messages.
func (l *Load) Totals() (ok, failed int, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.failed, append([]string(nil), l.errs...)
}

// WaitPhase waits (testenv.Eventually) until phase has n successful
// answers and returns them by version. It fails t after within, or at once
// when more than maxFailures requests have failed in the run (a negative
// maxFailures never fails early).
func (l *Load) WaitPhase(t testing.TB, phase int64, n int, within time.Duration, maxFailures int) map[string]int {
	t.Helper()
	var got map[string]int
	testenv.Eventually(t, within, fmt.Sprintf("%d answers in phase %d", n, phase), func() error {
		got = l.PhaseCounts(phase)
		total := 0
		for _, c := range got {
			total += c
		}
		ok, failed, errs := l.Totals()
		if maxFailures >= 0 && failed > maxFailures {
			return testenv.Stop(fmt.Errorf("%d requests failed (%d succeeded), first: %v", failed, ok, errs))
		}
		return testenv.Check(total >= n, "%d of %d answers (run: %d ok, %d failed: %v)", total, n, ok, failed, errs)
	})
	return got
}

// Measure starts a new phase and waits for n answers in it (WaitPhase).
func (l *Load) Measure(t testing.TB, n int, within time.Duration, maxFailures int) map[string]int {
	t.Helper()
	return l.WaitPhase(t, l.Next(), n, within, maxFailures)
}

// Stop ends the run, waits for the workers, and returns what it saw. It
// may be called more than once.
func (l *Load) Stop() Result {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end.IsZero() {
		l.end = time.Now()
	}
	return Result{
		Samples: append([]Sample(nil), l.samples...),
		OK:      l.ok,
		Failed:  l.failed,
		Errors:  append([]string(nil), l.errs...),
		Elapsed: l.end.Sub(l.begin),
	}
}

// Failures returns the failed samples.
func Failures(samples []Sample) []Sample {
	var out []Sample
	for _, s := range samples {
		if s.Err != "" {
			out = append(out, s)
		}
	}
	return out
}

// Share returns the fraction of successful samples sent in [from, to) that
// version served, and how many samples that window held.
func Share(samples []Sample, version string, from, to time.Time) (float64, int) {
	n, hit := 0, 0
	for _, s := range samples {
		if s.Err != "" || s.At.Before(from) || !s.At.Before(to) {
			continue
		}
		n++
		if s.Version == version {
			hit++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return float64(hit) / float64(n), n
}
