package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/adapters/grayrouter"
	"github.com/graylane/graylane/adapters/registry"
)

// errNoNacos: the Nacos parts of gray routing arrive with configsync/nacos.
var errNoNacos = errors.New("Nacos is not available in this build yet (it arrives with configsync/nacos)")

func nacosGrayStore(context.Context, *viper.Viper, *slog.Logger) (grayrouter.Store, func(), error) {
	return nil, nil, errNoNacos
}

func nacosRegistrySource(context.Context, *viper.Viper, *slog.Logger) (registry.Source, instanceLister, func(), error) {
	return nil, nil, nil, errNoNacos
}
