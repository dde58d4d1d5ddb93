// Package notify sends release events (rollout started, promoted, aborted,
// rolled back, analysis failed, invalid spec...) to chat and incident
// tools: plain JSON webhooks, Slack, DingTalk and Feishu incoming webhooks.
//
// Entry point: New(Config, ...Sink) then (*Notifier).Start(ctx, broker),
// which follows the engine's event stream for every app.
package notify
