package spec

// WebhookBackend configures the webhook backend. Its fields arrive with the webhook adapter;
// until then the section accepts no fields.
type WebhookBackend struct{}

func (b *WebhookBackend) validate(path string, e *errs) {}
