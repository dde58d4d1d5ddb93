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
)

// MetaChecksum is the Instance.Meta key holding the checksum of the config
// an instance reports it loaded (GET /api/v1/apps/{app}).
const MetaChecksum = "configChecksum"

// MetaReportError is the Instance.Meta key explaining why an instance's
// report could not be read.
const MetaReportError = "configReportError"

// Report is what an instance answers at config.reportPath
// (sdk/config.Loader.Handler serves it): the config it actually loaded.
type Report struct {
	App string `json:"app,omitempty"`
	// Identity is the release identity the instance runs as (its version).
	Identity string `json:"identity"`
	// Checksum is the BundleDigest of the files loaded; "" when a file is
	// missing or the instance's sources disagree.
	Checksum string `json:"checksum"`
	// Files maps each file to the SHA-256 of its canonical content.
	Files map[string]string `json:"files,omitempty"`
	// Sources reports each centre the instance reads, when it reads several.
	Sources  []SourceReport `json:"sources,omitempty"`
	LoadedAt time.Time      `json:"loadedAt"`
	Error    string         `json:"error,omitempty"`
}

// SourceReport is what one centre gave an instance.
type SourceReport struct {
	Centre   string `json:"centre"`
	Checksum string `json:"checksum,omitempty"`
	// Gray lists the files read from a version-bound copy.
	Gray  []string `json:"gray,omitempty"`
	Error string   `json:"error,omitempty"`
}

// prober asks instances which config they loaded.
type prober struct {
	client  *http.Client
	timeout time.Duration
}

// probe asks every instance with an address, in parallel, and returns the
// reports by instance ID (and errors by instance ID).
func (p *prober) probe(ctx context.Context, path string, insts []adapters.Instance) (map[string]Report, map[string]string) {
	reports := map[string]Report{}
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

func (p *prober) one(ctx context.Context, url string) (Report, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Report{}, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return Report{}, fmt.Errorf("config report %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return Report{}, fmt.Errorf("config report %s: HTTP %d", url, resp.StatusCode)
	}
	var r Report
	if err := json.Unmarshal(body, &r); err != nil {
		return Report{}, fmt.Errorf("config report %s: %w", url, err)
	}
	return r, nil
}
