package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/graylane/graylane/configsync/nacos"
	"github.com/graylane/graylane/sdk/config"
	"github.com/graylane/graylane/spec"
)

// nacosSource reads config from Nacos: the dataId bound to the version
// (base-version.ext) when it exists, else the stable dataId.
func nacosSource(ctx context.Context, c configFlags, logger *slog.Logger) (config.Source, func(), error) {
	d, err := nacos.NewDocuments(nacos.Config{Servers: strings.Split(c.nacos, ","), Timeout: 5 * time.Second, Logger: logger})
	if err != nil {
		return nil, func() {}, err
	}
	src := config.FromDocuments(d, spec.ConfigTarget{Nacos: &spec.NacosConfigTarget{Namespace: c.nacosNamespace, Group: c.nacosGroup, DataID: tmpl(c.nacosDataID)}})
	return src, func() { _ = d.Close() }, nil
}
