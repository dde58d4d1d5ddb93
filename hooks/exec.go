package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/graylane/graylane/spec"
)

// Payload is the JSON body of an HTTP hook.
type Payload struct {
	App      string `json:"app"`
	Env      string `json:"env,omitempty"`
	Version  string `json:"version"`
	Identity string `json:"identity"`
	Bundle   string `json:"bundle"`
	// Kind is preRelease, confirmPromotion or postRelease.
	Kind string `json:"kind"`
	Hook string `json:"hook"`
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b         bytes.Buffer
	n         int
	truncated bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
			l.truncated = true
		} else {
			l.b.Write(p)
		}
	} else if len(p) > 0 {
		l.truncated = true
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	if l.truncated {
		return l.b.String() + "\n[output truncated]"
	}
	return l.b.String()
}

// run runs one hook (already rendered) and says how it went.
func (r *Runner) run(ctx context.Context, h spec.Hook, p Payload) Outcome {
	out := Outcome{Hook: h.Name, StartedAt: r.cfg.Clock.Now()}
	timeout := h.EffectiveTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if len(h.Command) > 0 {
		out.OK, out.Status, out.Output = r.runCommand(ctx, h, p)
	} else {
		out.OK, out.Status, out.Output = r.runHTTP(ctx, h, p)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		out.OK, out.Status = false, fmt.Sprintf("timeout after %s", timeout)
	}
	out.EndedAt = r.cfg.Clock.Now()
	return out
}

// hookEnv is graylane's environment without its own GRAYLANE_* variables
// (they can hold API tokens and centre passwords), plus the hook's.
func hookEnv(h spec.Hook, p Payload) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRAYLANE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "GRAYLANE_HOOK_APP="+p.App, "GRAYLANE_HOOK_ENV="+p.Env, "GRAYLANE_HOOK_VERSION="+p.Version,
		"GRAYLANE_HOOK_IDENTITY="+p.Identity, "GRAYLANE_HOOK_BUNDLE="+p.Bundle, "GRAYLANE_HOOK_KIND="+p.Kind)
	for k, v := range h.Env {
		env = append(env, k+"="+v)
	}
	return env
}

func (r *Runner) runCommand(ctx context.Context, h spec.Hook, p Payload) (bool, string, string) {
	cmd := exec.CommandContext(ctx, h.Command[0], h.Command[1:]...)
	cmd.Dir = h.Dir
	cmd.Env = hookEnv(h, p)
	var buf limitedBuffer
	buf.n = MaxOutput
	cmd.Stdout, cmd.Stderr = &buf, &buf
	// its own process group, killed whole on timeout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, "exit 0", buf.String()
	case errors.As(err, &ee) && ee.Exited():
		return false, fmt.Sprintf("exit %d", ee.ExitCode()), buf.String()
	default:
		return false, err.Error(), buf.String()
	}
}

func (r *Runner) runHTTP(ctx context.Context, h spec.Hook, p Payload) (bool, string, string) {
	body, _ := json.Marshal(p)
	method := strings.ToUpper(h.HTTP.Method)
	if method == "" {
		method = http.MethodPost
	}
	var rd io.Reader
	if method != http.MethodGet {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.HTTP.URL, rd)
	if err != nil {
		return false, err.Error(), ""
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "graylane-hooks")
	for k, v := range h.HTTP.Headers {
		req.Header.Set(k, v)
	}
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return false, err.Error(), ""
	}
	defer resp.Body.Close()
	var buf limitedBuffer
	buf.n = MaxOutput
	_, _ = io.Copy(&buf, resp.Body)
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	return ok, "HTTP " + fmt.Sprint(resp.StatusCode), buf.String()
}
