package configrelease

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/configwire"
)

// MetaChecksum is the Instance.Meta key holding the checksum of the config
// an instance reports it loaded (GET /api/v1/apps/{app}).
const MetaChecksum = "configChecksum"

// MetaReportError is the Instance.Meta key explaining why an instance's
// report could not be read.
const MetaReportError = "configReportError"

// prober asks instances which config they loaded.
type prober struct {
	client  *http.Client
	timeout time.Duration
}

// probe asks every instance with an address, in parallel, and returns the
// reports by instance ID (and errors by instance ID).
func (p *prober) probe(ctx context.Context, path string, insts []adapters.Instance) (map[string]configwire.Report, map[string]string) {
	reports := map[string]configwire.Report{}
	errs := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, in := range insts {
		if in.Addr == "" {
			continue
		}
		wg.Add(1)
		go func(in adapters.Instance) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := p.one(ctx, "http://"+in.Addr+path)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[in.ID] = err.Error()
				return
			}
			reports[in.ID] = r
		}(in)
	}
	wg.Wait()
	return reports, errs
}

func (p *prober) one(ctx context.Context, url string) (configwire.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return configwire.Report{}, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return configwire.Report{}, fmt.Errorf("config report %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return configwire.Report{}, fmt.Errorf("config report %s: HTTP %d", url, resp.StatusCode)
	}
	var r configwire.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return configwire.Report{}, fmt.Errorf("config report %s: %w", url, err)
	}
	return r, nil
}
