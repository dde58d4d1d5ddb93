package spec

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Release hook limits.
const (
	// MaxHooks bounds the hooks of one kind.
	MaxHooks = 10
	// DefaultHookTimeout bounds one hook run.
	DefaultHookTimeout = 5 * time.Minute
	// MaxHookTimeout is the longest a hook may be given.
	MaxHookTimeout = 2 * time.Hour
)

var hookNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Hooks are a release's hooks, gates run by graylane itself (whatever the
// backend, including those that start nothing, like registry): Flagger's
// pre-rollout, confirm-promotion and post-rollout webhooks.
//
//	hooks:
//	  preRelease:        # once per bundle, before any instance of it starts (a migration)
//	    - {name: migrate, command: ["./bin/migrate", "--to={{.Version}}"], timeout: 10m}
//	  confirmPromotion:  # must answer 2xx before the release's last step
//	    - {name: change-ticket, http: {url: "https://cm.example/check?app={{.App}}&version={{.Version}}"}}
//	  postRelease:       # notifications once the release is Healthy
//	    - {name: tell-qa, http: {url: "https://qa.example/released"}}
//
// A failing pre-release or confirm-promotion hook stops the release where
// it is (nothing else changes) until resume retries it. Each hook's
// outcome and output are recorded with the release (GET
// /api/v1/apps/{app}/hooks). Templates see {{.App}}, {{.Env}},
// {{.Version}}, {{.Identity}} and {{.Bundle}}.
type Hooks struct {
	PreRelease       []Hook `json:"preRelease,omitempty"`
	ConfirmPromotion []Hook `json:"confirmPromotion,omitempty"`
	PostRelease      []Hook `json:"postRelease,omitempty"`
}

// Hook is one release hook: a command graylane runs, or an HTTP call it
// makes. Exactly one of Command and HTTP is set.
type Hook struct {
	// Name identifies the hook in outcomes and messages.
	Name string `json:"name"`
	// Command is run directly (never through a shell) by graylane; exit
	// status 0 passes.
	Command []string `json:"command,omitempty"`
	// Dir is the command's working directory (default graylane's).
	Dir string `json:"dir,omitempty"`
	// Env adds to the command's environment (graylane's own GRAYLANE_*
	// variables are never passed on).
	Env map[string]string `json:"env,omitempty"`
	// HTTP is a request graylane makes; a 2xx answer passes.
	HTTP *HTTPHook `json:"http,omitempty"`
	// Timeout bounds one run (DefaultHookTimeout).
	Timeout *Duration `json:"timeout,omitempty"`
}

// HTTPHook is an HTTP request: POST (by default) with a JSON body naming
// the app, environment, version, identity, bundle and hook kind.
type HTTPHook struct {
	URL     string            `json:"url"`
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// HookData is what hook templates see.
type HookData struct {
	App, Env, Version, Identity, Bundle string
}

// EffectiveTimeout is the hook's timeout with its default.
func (h *Hook) EffectiveTimeout() time.Duration {
	if h.Timeout == nil {
		return DefaultHookTimeout
	}
	return h.Timeout.Duration
}

// Kind returns the hooks of one kind ("preRelease", "confirmPromotion",
// "postRelease").
func (h *Hooks) Kind(kind string) []Hook {
	if h == nil {
		return nil
	}
	switch kind {
	case "preRelease":
		return h.PreRelease
	case "confirmPromotion":
		return h.ConfirmPromotion
	case "postRelease":
		return h.PostRelease
	}
	return nil
}

// Render returns the hook with its templates executed over d.
func (h Hook) Render(d HookData) (Hook, error) {
	out := h
	out.Command = make([]string, len(h.Command))
	for i, a := range h.Command {
		s, err := renderTemplate(a, d)
		if err != nil {
			return h, fmt.Errorf("command[%d]: %w", i, err)
		}
		out.Command[i] = s
	}
	if len(h.Env) > 0 {
		out.Env = map[string]string{}
		for k, v := range h.Env {
			s, err := renderTemplate(v, d)
			if err != nil {
				return h, fmt.Errorf("env.%s: %w", k, err)
			}
			out.Env[k] = s
		}
	}
	if h.HTTP != nil {
		hh := *h.HTTP
		var err error
		if hh.URL, err = renderTemplate(h.HTTP.URL, d); err != nil {
			return h, fmt.Errorf("http.url: %w", err)
		}
		if len(h.HTTP.Headers) > 0 {
			hh.Headers = map[string]string{}
			for k, v := range h.HTTP.Headers {
				if hh.Headers[k], err = renderTemplate(v, d); err != nil {
					return h, fmt.Errorf("http.headers.%s: %w", k, err)
				}
			}
		}
		out.HTTP = &hh
	}
	return out, nil
}

func (h *Hooks) validate(p string, e *errs) {
	sample := HookData{App: "app", Env: "env", Version: "v1", Identity: "v1", Bundle: "0123456789ab"}
	for _, kind := range []string{"preRelease", "confirmPromotion", "postRelease"} {
		hs := h.Kind(kind)
		kp := join(p, kind)
		if len(hs) > MaxHooks {
			e.add(kp, "%d hooks, over the limit of %d", len(hs), MaxHooks)
		}
		names := map[string]bool{}
		for i, hk := range hs {
			hp := index(kp, i)
			if !hookNamePattern.MatchString(hk.Name) {
				e.add(join(hp, "name"), "%q is not a hook name (lower-case letters, digits and '-')", hk.Name)
			} else if names[hk.Name] {
				e.add(join(hp, "name"), "%q is used twice", hk.Name)
			}
			names[hk.Name] = true
			switch {
			case len(hk.Command) > 0 && hk.HTTP != nil:
				e.add(hp, "set exactly one of command, http")
				continue
			case len(hk.Command) == 0 && hk.HTTP == nil:
				e.add(hp, "set command or http")
				continue
			}
			if hk.Timeout != nil && (hk.Timeout.Duration <= 0 || hk.Timeout.Duration > MaxHookTimeout) {
				e.add(join(hp, "timeout"), "%s is outside (0, %s]", hk.Timeout.Duration, MaxHookTimeout)
			}
			if hk.HTTP != nil {
				switch m := strings.ToUpper(hk.HTTP.Method); m {
				case "", "GET", "POST", "PUT":
				default:
					e.add(join(hp, "http.method"), "%q is not GET, POST or PUT", hk.HTTP.Method)
				}
				for k := range hk.HTTP.Headers {
					if k == "" || strings.ContainsAny(k, " \t\r\n:") {
						e.add(join(hp, "http.headers"), "%q is not a header name", k)
					}
				}
			}
			r, err := hk.Render(sample)
			if err != nil {
				e.add(hp, "%v", err)
				continue
			}
			if r.HTTP != nil {
				u, err := url.Parse(r.HTTP.URL)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					e.add(join(hp, "http.url"), "%q is not an http(s) URL", hk.HTTP.URL)
				}
			}
			if len(hk.Command) > 0 && hk.Command[0] == "" {
				e.add(join(hp, "command[0]"), "is empty")
			}
			for k := range hk.Env {
				if k == "" || strings.ContainsAny(k, "=\x00") || strings.HasPrefix(k, "GRAYLANE_") {
					e.add(join(hp, "env"), "%q is not an environment variable a hook may set", k)
				}
			}
		}
	}
}
