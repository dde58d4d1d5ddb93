package spec

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults of the webhook backend.
const (
	DefaultWebhookTimeout = 10 * time.Second
	DefaultWebhookRetries = 3
	MaxWebhookRetries     = 10
)

var (
	webhookEnvPattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	webhookHeaderPattern = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
)

// WebhookReservedHeaders are set by graylane on every webhook request and
// cannot be overridden by webhook.headers.
var WebhookReservedHeaders = []string{"Content-Type", "Idempotency-Key", "X-Graylane-Signature", "X-Graylane-Timestamp", "X-Graylane-App", "Host", "Content-Length"}

// WebhookBackend hands an app's desired state to an external system (a
// deploy API, a CI pipeline, a PaaS) and reads back what runs.
type WebhookBackend struct {
	// URL receives the desired state as a signed JSON POST (http or https).
	URL string `json:"url"`
	// StatusURL answers GET with the observed instances as JSON. It is a
	// template with {{.App}}, e.g. https://deploy.example/apps/{{.App}}.
	StatusURL string `json:"statusURL"`
	// SecretEnv names the environment variable of the graylane process that
	// holds the HMAC-SHA256 key (the key itself never goes in a spec).
	// Empty means the key graylane was configured with.
	SecretEnv string `json:"secretEnv,omitempty"`
	// Headers are extra request headers (e.g. a tenant id).
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout bounds each attempt (default 10s).
	Timeout *Duration `json:"timeout,omitempty"`
	// Retries is how many times a failed attempt (network error, timeout,
	// 408, 429, 5xx) is retried with exponential back-off (default 3).
	Retries *int `json:"retries,omitempty"`
}

// EffectiveTimeout returns Timeout with its default.
func (w *WebhookBackend) EffectiveTimeout() time.Duration {
	if w.Timeout == nil {
		return DefaultWebhookTimeout
	}
	return w.Timeout.Duration
}

// EffectiveRetries returns Retries with its default.
func (w *WebhookBackend) EffectiveRetries() int {
	if w.Retries == nil {
		return DefaultWebhookRetries
	}
	return *w.Retries
}

// RenderStatusURL returns the status URL for an app.
func (w *WebhookBackend) RenderStatusURL(app string) (string, error) {
	return Render(w.StatusURL, TemplateData{App: app})
}

func checkWebhookURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "is not a URL: " + err.Error()
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http or https URL"
	case u.Host == "":
		return "has no host"
	case u.User != nil:
		return "must not carry credentials (use secretEnv and headers)"
	case u.Fragment != "":
		return "must not have a #fragment"
	}
	return ""
}

func (w *WebhookBackend) validate(p string, e *errs) {
	if w.URL == "" {
		e.add(join(p, "url"), "is required")
	} else if msg := checkWebhookURL(w.URL); msg != "" {
		e.add(join(p, "url"), "%q %s", w.URL, msg)
	}
	if w.StatusURL == "" {
		e.add(join(p, "statusURL"), "is required")
	} else if u, err := w.RenderStatusURL("app"); err != nil {
		e.add(join(p, "statusURL"), "%v", err)
	} else if msg := checkWebhookURL(u); msg != "" {
		e.add(join(p, "statusURL"), "%q %s", w.StatusURL, msg)
	}
	if w.SecretEnv != "" && !webhookEnvPattern.MatchString(w.SecretEnv) {
		e.add(join(p, "secretEnv"), "%q is not an environment variable name", w.SecretEnv)
	}
	for name, v := range w.Headers {
		hp := join(join(p, "headers"), name)
		if !webhookHeaderPattern.MatchString(name) {
			e.add(hp, "%q is not a header name", name)
			continue
		}
		for _, r := range WebhookReservedHeaders {
			if strings.EqualFold(r, name) {
				e.add(hp, "is set by graylane and cannot be overridden")
			}
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			e.add(hp, "value contains a line break or NUL")
		}
	}
	if w.Timeout != nil && w.Timeout.Duration <= 0 {
		e.add(join(p, "timeout"), "must be positive")
	}
	if w.Retries != nil && (*w.Retries < 0 || *w.Retries > MaxWebhookRetries) {
		e.add(join(p, "retries"), "%d is outside 0..%d", *w.Retries, MaxWebhookRetries)
	}
}
