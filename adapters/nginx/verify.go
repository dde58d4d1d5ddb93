package nginx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/graylane/graylane/gray"
)

// probe is what the status server's probe location must answer for a
// request with the probe user key: nginx's Lua decided as graylane does.
type probe struct {
	header, key string
	want        string // "<upstream variable value> <n-d-version>"
}

// probeKey is the user key of the probe request.
const probeKey = "graylane-probe"

// probeOf computes the answer the probe location must give for in.
func probeOf(in Input) probe {
	header := DefaultStickyHeader
	if in.Traffic != nil && in.Traffic.StickyHeader != "" {
		header = in.Traffic.StickyHeader
	}
	salt := in.Salt
	if salt == "" {
		salt = "graylane"
	}
	b, _ := gray.Bucket(salt, probeKey)
	app := ident(in.App)
	version, cum := "", 0
	idx := 0
	for _, w := range in.Split.Weights {
		if w.Weight <= 0 {
			continue
		}
		cum += w.Weight * 100
		if b < cum {
			version = w.Version
			break
		}
		idx++
	}
	if version == "" {
		return probe{header: header, key: probeKey, want: app + "_none "}
	}
	return probe{header: header, key: probeKey, want: fmt.Sprintf("%s_%d {\"%s\":\"%s\"}", app, idx, in.App, version)}
}

// verify polls the app's status server, a new connection each time, until
// it answers digest (a worker of the new generation runs), checks that the
// new workers' Lua decides the probe key as graylane does, then waits
// Settle for the old generation to stop accepting.
func (r *Router) verify(parent context.Context, app, digest string, pr probe) error {
	if r.cfg.StatusAddr == "" {
		return nil
	}
	if err := r.poll(parent, app, digest); err != nil {
		return err
	}
	if err := r.checkProbe(parent, app, digest, pr); err != nil {
		return err
	}
	if r.cfg.Settle <= 0 {
		return nil
	}
	t := time.NewTimer(r.cfg.Settle)
	defer t.Stop()
	select {
	case <-parent.Done():
		return parent.Err()
	case <-t.C:
		return nil
	}
}

// checkProbe asks the probe location how nginx routes the probe user key,
// until a worker of the new generation answers (the answer starts with the
// digest; an old worker may still accept for a moment).
func (r *Router) checkProbe(ctx context.Context, app, digest string, pr probe) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.VerifyTimeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.cfg.StatusAddr+ProbePath, nil)
		req.Host = StatusHost(app)
		req.Header.Set(pr.header, pr.key)
		resp, err := r.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			got := strings.TrimSpace(string(b))
			if d, rest, _ := strings.Cut(got, " "); resp.StatusCode == http.StatusOK && d == digest {
				if rest != pr.want {
					return fmt.Errorf("%w: nginx's Lua routes the probe key %q to %q, graylane to %q", ErrNotVerified, pr.key, rest, pr.want)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return parent
			}
			return fmt.Errorf("%w: the probe of the Lua routing did not answer within %v (last error %v)", ErrNotVerified, r.cfg.VerifyTimeout, err)
		case <-tick.C:
		}
	}
}

func (r *Router) poll(ctx context.Context, app, digest string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.VerifyTimeout)
	defer cancel()
	url := "http://" + r.cfg.StatusAddr + StatusPath
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Host = StatusHost(app)
		resp, err := r.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
			resp.Body.Close()
			got := strings.TrimSpace(string(b))
			if resp.StatusCode == http.StatusOK && got == digest {
				return nil
			}
			last = fmt.Sprintf("status %d, digest %q", resp.StatusCode, got)
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return parent
			}
			return fmt.Errorf("%w within %v: %s answered %s, want digest %s (see nginx's error log)", ErrNotVerified, r.cfg.VerifyTimeout, url, last, digest)
		case <-tick.C:
		}
	}
}

func (r *Router) logSize() int64 {
	if r.cfg.ErrorLog == "" {
		return 0
	}
	st, err := os.Stat(r.cfg.ErrorLog)
	if err != nil {
		return 0
	}
	return st.Size()
}

// logSince returns nginx's complaints logged after offset.
func (r *Router) logSince(offset int64) string {
	if r.cfg.ErrorLog == "" {
		return ""
	}
	f, err := os.Open(r.cfg.ErrorLog)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	var msgs []string
	for _, line := range strings.Split(string(b), "\n") {
		if m := logPrefix.FindStringSubmatch(line); m != nil && (m[1] == "[emerg]" || m[1] == "[alert]" || m[1] == "[crit]") {
			if msg := m[1] + " " + line[len(m[0]):]; !contains(msgs, msg) {
				msgs = append(msgs, msg)
			}
		}
	}
	return strings.Join(msgs, "; ")
}

var logPrefix = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: `)

// nginxMessage extracts nginx's own complaint from its output: the
// [emerg]/[alert]/[crit]/[error] lines without timestamp and pid.
func nginxMessage(out []byte, err error) string {
	var msgs []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(line, "nginx: ")
		if m := logPrefix.FindStringSubmatch(line); m != nil {
			line = m[1] + " " + line[len(m[0]):]
		}
		for _, lvl := range []string{"[emerg]", "[alert]", "[crit]", "[error]"} {
			if strings.HasPrefix(line, lvl) {
				msgs = append(msgs, line)
			}
		}
	}
	if len(msgs) == 0 {
		s := strings.TrimSpace(string(out))
		if s == "" {
			return err.Error()
		}
		return s
	}
	return strings.Join(msgs, "; ")
}
