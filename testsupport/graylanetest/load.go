package graylanetest

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// Sample is one request of a load run.
type Sample struct {
	At      time.Time
	Version string // X-Version of the answer; "" on failure
	Err     string // failure reason
}

// Load sends requests to a URL from several goroutines until stopped and
// records which version served each one. A request fails when it gets no
// answer or a non-200 status.
type Load struct {
	url     string
	workers int
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []Sample
}

// NewLoad starts workers goroutines sending GET url.
func NewLoad(url string, workers int) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{url: url, workers: workers, cancel: cancel}
	tr := &http.Transport{MaxIdleConnsPerHost: workers, IdleConnTimeout: 30 * time.Second}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < workers; i++ {
		l.wg.Add(1)
		go func(user int) {
			defer l.wg.Done()
			for ctx.Err() == nil {
				s := Sample{At: time.Now()}
				resp, err := c.Get(l.url)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					s.Err = err.Error()
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						s.Err = resp.Status
					} else {
						s.Version = resp.Header.Get("X-Version")
					}
				}
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
			}
		}(i)
	}
	return l
}

// Stop ends the load and returns every sample.
func (l *Load) Stop() []Sample {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Sample(nil), l.samples...)
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

// Share returns the fraction of successful samples in [from, to) served
// by version, and how many samples that window held.
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
