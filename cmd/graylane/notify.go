package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/notify"
	"github.com/graylane/graylane/rollout/engine"
)

// startNotifications reads `notifications` (a list of sinks) and starts
// delivering the engine's events to them.
func startNotifications(ctx context.Context, v *viper.Viper, b *engine.Broker, log *slog.Logger) error {
	if !v.IsSet("notifications") {
		return nil
	}
	var sinks []notify.Sink
	if err := v.UnmarshalKey("notifications", &sinks); err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	for i, s := range sinks {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("notifications[%d]: %w", i, err)
		}
	}
	notify.New(notify.Config{Logger: log}, sinks...).Start(ctx, b)
	log.Info("notifications enabled", "sinks", len(sinks))
	return nil
}
