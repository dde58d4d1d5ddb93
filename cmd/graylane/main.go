package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
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
	root.AddCommand(newServe())
	root.AddCommand(newProxyCmd())
	root.AddCommand(cliCommands()...)
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
