package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/graylane/graylane/sdk/config"
)

// nacosSource is wired once configsync/nacos offers Documents.
func nacosSource(ctx context.Context, c configFlags, logger *slog.Logger) (config.Source, func(), error) {
	return nil, func() {}, errors.New("--config-nacos: this build has no Nacos client")
}
