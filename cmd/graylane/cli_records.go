package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/records"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/server"
)

// recordsCommands are history, rollback (the command and to a revision),
// diff, stats and audit.
func recordsCommands() []*cobra.Command {
	history := &cobra.Command{
		Use:   "history APP [REVISION]",
		Short: "List an app's revisions (or show one: its steps, verdicts and spec diff)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd)
			if len(args) == 2 {
				n, err := strconv.Atoi(args[1])
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("revision %q is not a number", args[1])}
				}
				r, err := c.Revision(cmd.Context(), args[0], n)
				if err != nil {
					return err
				}
				printRevision(cmd.OutOrStdout(), r)
				return nil
			}
			revs, err := c.Revisions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printHistory(cmd.OutOrStdout(), revs, time.Now())
			return nil
		},
	}

	rollback := &cobra.Command{
		Use:   "rollback APP [--to-revision N | --to-version V]",
		Short: "Go back to the previous version; with --to-revision or --to-version, to that revision's code and config",
		Long: `Without flags: the rollback command. During a rollout it stops it; after a promotion it goes back to the
previous version without steps (only traffic moves within scaleDownDelay). The config centre is not changed.

With --to-revision N (or --to-version V, the newest kept revision of that version): revision N's code version
and bound config are written to the config centre together, and the engine rolls them out without steps
(rollback.mode fast, the default; steps runs the strategy). Refused, with the reason and nothing written, when
that revision's config no longer validates against today's spec.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd)
			rev, _ := cmd.Flags().GetInt("to-revision")
			ver, _ := cmd.Flags().GetString("to-version")
			if rev == 0 && ver == "" {
				v, err := c.Command(cmd.Context(), args[0], rollout.CmdRollback)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				printStatus(cmd.OutOrStdout(), v)
				return nil
			}
			req := server.RollbackRequest{Version: ver}
			if rev != 0 {
				req.Revision = &rev
			}
			res, err := c.RollbackTo(cmd.Context(), args[0], req)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			cfg := ""
			if res.Config != "" {
				cfg = " with config " + res.Config
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: rolling back to revision %d (%s%s), written to %s; mode %s\n", res.App, res.Revision, res.Version, cfg, res.Centre, res.Mode)
			if w, _ := cmd.Flags().GetBool("wait"); w {
				timeout, _ := cmd.Flags().GetDuration("timeout")
				return follow(cmd.Context(), c, res.App, res.Version, timeout, cmd.OutOrStdout())
			}
			return nil
		},
	}
	rollback.Flags().Int("to-revision", 0, "revision to restore (graylane history APP lists them)")
	rollback.Flags().String("to-version", "", "restore the newest kept revision of this version")
	rollback.Flags().Bool("wait", false, "follow the rollback until Healthy")
	rollback.Flags().Duration("timeout", 0, "give up waiting after this long (exit 3)")
	rollback.MarkFlagsMutuallyExclusive("to-revision", "to-version")

	diff := &cobra.Command{
		Use:   "diff -f FILE",
		Short: "Show what applying a release spec would change (a dry-run: nothing is written)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, data, err := specFile(cmd)
			if err != nil {
				return err
			}
			return dryRunSpec(cmd, app, data)
		},
	}
	diff.Flags().StringP("file", "f", "", "release spec file (YAML or JSON; - for stdin)")
	diff.Flags().String("app", "", "app name (default: the spec's app field)")
	_ = diff.MarkFlagRequired("file")

	stats := &cobra.Command{
		Use:   "stats [APP]",
		Short: "Release statistics over 7 and 30 days: counts, lead time, time to restore, change failure rate",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd)
			w := cmd.OutOrStdout()
			if len(args) == 1 {
				st, err := c.AppStats(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				printStats(w, map[string]map[string]records.Stats{args[0]: st.Windows})
				return nil
			}
			st, err := c.Stats(cmd.Context())
			if err != nil {
				return err
			}
			rows := map[string]map[string]records.Stats{}
			for win, ws := range st.Windows {
				add := func(name string, s records.Stats) {
					if rows[name] == nil {
						rows[name] = map[string]records.Stats{}
					}
					rows[name][win] = s
				}
				add("(all apps)", ws.All)
				for a, s := range ws.Apps {
					add(a, s)
				}
			}
			printStats(w, rows)
			return nil
		},
	}

	auditCmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log: every change, who made it, from where, and how it ended (newest first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := client.AuditQuery{}
			q.App, _ = cmd.Flags().GetString("app")
			q.User, _ = cmd.Flags().GetString("user")
			q.Since, _ = cmd.Flags().GetString("since")
			q.Limit, _ = cmd.Flags().GetInt("limit")
			recs, err := apiClient(cmd).Audit(cmd.Context(), q)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-20s %-14s %-8s %-16s %-10s %-12s %s\n", "TIME", "ACTOR", "VIA", "SOURCE", "OUTCOME", "APP", "ACTION")
			for _, r := range recs {
				action := r.Action
				if r.Count > 1 {
					action += fmt.Sprintf(" ×%d", r.Count)
				}
				if r.Error != "" && r.Outcome != "allowed" {
					action += " — " + r.Error
				}
				fmt.Fprintf(w, "%-20s %-14s %-8s %-16s %-10s %-12s %s\n", r.Time.Local().Format("2006-01-02 15:04:05"), r.Actor, r.Via,
					dash(r.Source), r.Outcome, dash(r.App), action)
			}
			return nil
		},
	}
	auditCmd.Flags().String("app", "", "only this app")
	auditCmd.Flags().String("user", "", "only this caller (token name)")
	auditCmd.Flags().String("since", "", "RFC 3339 time or a duration back from now (24h)")
	auditCmd.Flags().Int("limit", 100, "at most this many records (1..1000)")
	return []*cobra.Command{history, rollback, diff, stats, auditCmd}
}

// specFile reads -f and works out the app.
func specFile(cmd *cobra.Command) (string, []byte, error) {
	f, _ := cmd.Flags().GetString("file")
	var data []byte
	var err error
	if f == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(f)
	}
	if err != nil {
		return "", nil, &exitError{code: 2, err: err}
	}
	app, _ := cmd.Flags().GetString("app")
	if app == "" {
		app = appOf(data)
	}
	return app, data, nil
}

func dryRunSpec(cmd *cobra.Command, app string, data []byte) error {
	res, err := apiClient(cmd).DryRunSpec(cmd.Context(), app, data)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return printDryRun(cmd.OutOrStdout(), res)
}

// printDryRun shows a dry-run; an invalid change exits 2.
func printDryRun(w io.Writer, r server.DryRunResult) error {
	fmt.Fprintf(w, "dry-run of %s (nothing was written)\n", r.App)
	if !r.Valid {
		fmt.Fprintln(w, "INVALID:")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  %s: %s\n", e.Field, e.Message)
		}
		if len(r.Errors) == 0 {
			fmt.Fprintf(w, "  %s\n", r.Error)
		}
	}
	if r.Diff == "" {
		fmt.Fprintf(w, "\ndocument: the same as in %s\n", r.Centre)
	} else {
		fmt.Fprintf(w, "\ndocument (against %s, version %s):\n%s", r.Centre, dash(r.DocumentVersion), r.Diff)
	}
	if p := r.Plan; p != nil {
		fmt.Fprintf(w, "\nplan: %s → %s (%s)\n", dash(p.From), p.To, p.Strategy)
		if p.Note != "" {
			fmt.Fprintf(w, "  %s\n", p.Note)
		}
		fmt.Fprintf(w, "  %-6s %-12s %-5s %-28s %-28s %s\n", "AFTER", "PHASE", "STEP", "INSTANCES", "WEIGHTS", "WAITS FOR")
		for _, s := range p.Steps {
			fmt.Fprintf(w, "  %-6s %-12s %-5d %-28s %-28s %s\n", s.After, s.Phase, s.Step+1, fmtCounts(s.Replicas), fmtWeights(s.Weights), s.Waits)
		}
	}
	if c := r.Config; c != nil {
		fmt.Fprintf(w, "\nconfig: identity %s (%s), bundle %.12s\n", c.Identity, c.Binding, c.Digest)
		if len(c.Writes) == 0 {
			fmt.Fprintln(w, "  no config target changes")
		}
		for _, x := range c.Writes {
			fmt.Fprintf(w, "  %s %s (%s, at %s)\n", x.Action, x.Placement.String(), x.Role, x.When)
			if x.Error != "" {
				fmt.Fprintf(w, "    ! %s\n", x.Error)
			}
			if x.Diff != "" && x.Action != "unchanged" {
				fmt.Fprint(w, indent(x.Diff, "    "))
			}
		}
	}
	for _, g := range r.Gray {
		fmt.Fprintf(w, "\ngray document published at plan step %d:\n%s", g.At+1, indent(g.Diff, "  "))
	}
	if !r.Valid {
		return &exitError{code: 2, err: fmt.Errorf("%s: %s", r.App, r.Error)}
	}
	return nil
}

func indent(s, pre string) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return pre + strings.Join(ls, "\n"+pre) + "\n"
}

func fmtCounts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func printHistory(w io.Writer, revs []records.Revision, now time.Time) {
	fmt.Fprintf(w, "%-4s %-14s %-22s %-34s %-20s %-9s %s\n", "REV", "VERSION", "CONFIG", "OUTCOME", "STARTED", "TOOK", "BY")
	for _, r := range revs {
		cfg := "-"
		if r.Config != nil {
			cfg = r.Config.Identity + " " + fmt.Sprintf("%.8s", r.Config.Digest)
		}
		out := r.Outcome
		if out == "" {
			out = "in progress"
		}
		switch {
		case r.Kind == records.KindRollback && r.RollbackTo > 0:
			out += fmt.Sprintf(" (rollback to #%d)", r.RollbackTo)
		case r.Kind == records.KindRollback:
			out += " (rollback)"
		case r.Kind == records.KindAdopted:
			out += " (adopted)"
		}
		if r.Fast && r.Kind != records.KindRollback {
			out += " (no steps)"
		}
		fmt.Fprintf(w, "%-4d %-14s %-22s %-34s %-20s %-9s %s\n", r.Number, r.Version, cfg, out,
			r.StartedAt.Local().Format("2006-01-02 15:04:05"), r.Took(now).Round(100*time.Millisecond), r.Cause)
	}
}

func printRevision(w io.Writer, r records.Revision) {
	fmt.Fprintf(w, "revision %d of %s: %s %s (%s)\n", r.Number, r.App, r.Kind, r.Version, r.Identity)
	out := r.Outcome
	if out == "" {
		out = "in progress"
	}
	fmt.Fprintf(w, "outcome:  %s %s\n", out, r.Reason)
	fmt.Fprintf(w, "by:       %s\n", r.Cause)
	fmt.Fprintf(w, "seen:     %s\nstarted:  %s\n", r.SeenAt.Local().Format(time.RFC3339), r.StartedAt.Local().Format(time.RFC3339))
	if !r.EndedAt.IsZero() {
		fmt.Fprintf(w, "ended:    %s (took %s)\n", r.EndedAt.Local().Format(time.RFC3339), r.Took(r.EndedAt).Round(time.Millisecond))
	}
	if !r.FailedAt.IsZero() {
		fmt.Fprintf(w, "failed:   %s\n", r.FailedAt.Local().Format(time.RFC3339))
	}
	if !r.RestoredAt.IsZero() {
		fmt.Fprintf(w, "restored: %s (%s after the failure)\n", r.RestoredAt.Local().Format(time.RFC3339), r.RestoredAt.Sub(r.FailedAt).Round(time.Millisecond))
	}
	if r.Config != nil {
		fmt.Fprintf(w, "config:   %s (bundle %.12s)\n", r.Config.Identity, r.Config.Digest)
		for _, f := range r.Config.Files {
			fmt.Fprintf(w, "          %s %s %d bytes sha256 %.12s\n", f.Name, f.Format, f.Bytes, f.SHA256)
		}
	}
	fmt.Fprintf(w, "strategy: %s", r.Strategy)
	if r.Fast {
		fmt.Fprint(w, " (no steps)")
	}
	fmt.Fprintln(w)
	for _, s := range r.Steps {
		took := "running"
		if !s.EndedAt.IsZero() {
			took = s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "  step %d %-24s %s\n", s.Index+1, s.Name, took)
	}
	for _, v := range r.Verdicts {
		fmt.Fprintf(w, "  check %-16s ok=%v runs=%d failures=%d %s\n", v.Check, v.OK, v.Runs, v.Failures, v.Message)
	}
	if r.SpecDiff != "" {
		fmt.Fprintf(w, "spec diff:\n%s", indent(r.SpecDiff, "  "))
	}
}

func printStats(w io.Writer, rows map[string]map[string]records.Stats) {
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "%-20s %-4s %7s %8s %7s %10s %6s %12s %12s %12s %8s\n", "APP", "WIN", "STARTED", "PROMOTED", "ABORTED", "ROLLEDBACK", "FAILED", "LEAD p50", "LEAD p90", "RESTORE p50", "CFR")
	for _, n := range names {
		for _, win := range records.Windows {
			s, ok := rows[n][win.Name]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "%-20s %-4s %7d %8d %7d %10d %6d %12s %12s %12s %7.1f%%\n", n, win.Name, s.Started, s.Promoted, s.Aborted, s.RolledBack, s.Failed,
				secs(s.LeadTime.Median, s.LeadTime.Count), secs(s.LeadTime.P90, s.LeadTime.Count), secs(s.TimeToRestore.Median, s.TimeToRestore.Count), s.ChangeFailureRate*100)
		}
	}
}

func secs(v float64, n int) string {
	if n == 0 {
		return "-"
	}
	return (time.Duration(v * float64(time.Second))).Round(time.Second / 10).String()
}
