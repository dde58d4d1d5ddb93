package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/graylane/graylane/adapters/proxy/proxyd"
)

// newProxyCmd is `graylane proxy`: the built-in proxy's data plane as a
// process of its own. graylane serve starts it (proxy.mode process, the
// default) and adopts it after a restart; it keeps serving with its last
// routes while graylane is down.
func newProxyCmd() *cobra.Command {
	var dir, level string
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the built-in proxy's data plane (graylane serve starts it; it outlives graylane)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(level)); err != nil {
				return &exitError{code: 2, err: err}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			return proxyd.Serve(cmd.Context(), proxyd.ServeConfig{Dir: dir, Version: buildVersion(), Logger: log})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "state directory: routes.json, control.sock, proxy.lock (required)")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// buildVersion is this binary's module version and VCS revision, so that
// graylane can tell an adopted proxy process of another build.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += "+" + s.Value
		}
	}
	return v
}
