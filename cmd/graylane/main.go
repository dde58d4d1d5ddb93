package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "graylane:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "graylane:", err)
	os.Exit(1)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "graylane",
		Short:         "graylane rolls releases kept in etcd, Nacos or Apollo out to processes, hosts, nginx and Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("server", envOr("GRAYLANE_SERVER", "http://127.0.0.1:8080"), "graylane API address (env GRAYLANE_SERVER)")
	root.PersistentFlags().String("token", os.Getenv("GRAYLANE_TOKEN"), "API bearer token (env GRAYLANE_TOKEN)")
	root.PersistentFlags().String("env", os.Getenv("GRAYLANE_ENV"), "environment the app commands act in (env GRAYLANE_ENV; empty: the default one)")
	root.AddCommand(newServe())
	root.AddCommand(newProxyCmd())
	root.AddCommand(newProbe())
	root.AddCommand(cliCommands()...)
	root.AddCommand(backupCommands()...)
	root.AddCommand(newUpgradeStatus())
	return root
}

// version is set at build time (-ldflags "-X main.version=v1.2.3");
// without it buildVersion reads the module version or VCS revision.
var version = ""

// buildVersion names this build of graylane.
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "dev"
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
