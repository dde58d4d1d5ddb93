package main

import (
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with --debug-addr
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/graylane/graylane/adapters/proxy/proxyd"
)

// newProxyCmd is `graylane proxy`: the built-in proxy's data plane as a
// process of its own. graylane serve starts it (proxy.mode process, the
// default) and adopts it after a restart; it keeps serving with its last
// routes while graylane is down.
func newProxyCmd() *cobra.Command {
	var dir, level, debugAddr string
	var procs, gcBudgetMiB, gcPercent int
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
			if gcBudgetMiB < 0 || gcPercent <= 0 {
				return &exitError{code: 2, err: fmt.Errorf("--gc-budget-mib (%d) must be 0 or more and --gc-percent (%d) more than 0", gcBudgetMiB, gcPercent)}
			}
			tuneRuntime(procs)
			if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
				go proxyd.TuneGC(cmd.Context(), proxyd.GCConfig{Budget: int64(gcBudgetMiB) << 20, Percent: gcPercent})
			}
			if debugAddr != "" {
				// Go's profiler, for diagnosing the data plane (off by default)
				go func() { log.Warn("debug server stopped", "err", http.ListenAndServe(debugAddr, nil)) }()
			}
			return proxyd.Serve(cmd.Context(), proxyd.ServeConfig{Dir: dir, Version: buildVersion(), Logger: log})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "state directory: routes.json, control.sock, proxy.lock (required)")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().IntVar(&procs, "procs", 0, "CPUs the proxy uses at once (GOMAXPROCS; 0: every CPU it may use)")
	cmd.Flags().IntVar(&gcBudgetMiB, "gc-budget-mib", proxyd.DefaultGCBudget>>20, "memory (MiB) the proxy grows to before its GC runs, while its live heap is below half of it (0: GOGC percent alone)")
	cmd.Flags().IntVar(&gcPercent, "gc-percent", proxyd.DefaultGCPercent, "GOGC without a budget, or when the live heap is above half the budget")
	cmd.Flags().StringVar(&debugAddr, "debug-addr", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6061 (off by default)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// tuneRuntime sizes the Go runtime for a data plane: procs threads run Go
// code at once (default: the runtime's, every CPU the process may use).
// Half the CPUs was the default while each socket call cost the runtime's
// system-call hand-offs; with raw socket calls (adapters/proxy/rawconn.go)
// a second P no longer costs CPU per request, and on 2 cores shared with
// wrk and 4 instances it took the proxy from 1.08x to 1.14-1.34x nginx's
// requests per second and its p99 from 1.14x to 0.86-1.06x nginx's
// (docs/benchmarks.md). The GC is paced by proxyd.TuneGC (a heap budget,
// see --gc-budget-mib). GOMAXPROCS, GOGC and GOMEMLIMIT in the
// environment win.
func tuneRuntime(procs int) {
	if os.Getenv("GOMAXPROCS") == "" && procs > 0 {
		runtime.GOMAXPROCS(procs)
	}
}
