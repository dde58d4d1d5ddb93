package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
)

func apiClient(cmd *cobra.Command) *client.Client {
	s, _ := cmd.Flags().GetString("server")
	tok, _ := cmd.Flags().GetString("token")
	env, _ := cmd.Flags().GetString("env")
	return client.New(s).WithToken(tok).InEnv(env)
}

func cliCommands() []*cobra.Command {
	var cmds []*cobra.Command

	setVersion := &cobra.Command{
		Use:   "set-version APP VERSION",
		Short: "Write a new desired version to the config centre (and follow the rollout with --wait)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd)
			app, version := args[0], args[1]
			if dry, _ := cmd.Flags().GetBool("dry-run"); dry {
				res, err := c.DryRunVersion(cmd.Context(), app, version)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				return printDryRun(cmd.OutOrStdout(), res)
			}
			if err := c.SetVersion(cmd.Context(), app, version); err != nil {
				return &exitError{code: 2, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: desired version %s written to the config centre\n", app, version)
			wait, _ := cmd.Flags().GetBool("wait")
			if !wait {
				return nil
			}
			timeout, _ := cmd.Flags().GetDuration("timeout")
			return follow(cmd.Context(), c, app, version, timeout, cmd.OutOrStdout())
		},
	}
	setVersion.Flags().Bool("dry-run", false, "show the plan, the document diff and config changes; write nothing")
	setVersion.Flags().Bool("wait", false, "follow the rollout live; exit 0 when Healthy, 1 when it fails or is aborted")
	setVersion.Flags().Duration("timeout", 0, "give up waiting after this long (exit 3); 0 waits forever")
	cmds = append(cmds, setVersion)

	status := &cobra.Command{
		Use:   "status APP",
		Short: "Show an app's release",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd)
			if w, _ := cmd.Flags().GetBool("watch"); w {
				return follow(cmd.Context(), c, args[0], "", 0, cmd.OutOrStdout())
			}
			v, err := c.App(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printStatus(cmd.OutOrStdout(), v)
			return nil
		},
	}
	status.Flags().Bool("watch", false, "follow changes live until interrupted")
	cmds = append(cmds, status)

	apps := &cobra.Command{
		Use:   "apps",
		Short: "List apps (every page; filter with --phase, --search, --attention)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var o client.ListOptions
			o.Phase, _ = f.GetString("phase")
			o.Search, _ = f.GetString("search")
			o.Limit, _ = f.GetInt("page-size")
			if att, _ := f.GetString("attention"); att != "" {
				o.Attention = att
			}
			c := apiClient(cmd)
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-20s %-10s %-12s %-10s %-10s %-7s %s\n", "APP", "VERSION", "PHASE", "STABLE", "CANARY", "READY", "WEIGHTS")
			for {
				p, err := c.AppsPage(cmd.Context(), o)
				if err != nil {
					return err
				}
				for _, a := range p.Apps {
					fmt.Fprintf(w, "%-20s %-10s %-12s %-10s %-10s %-7s %s\n", a.App, a.Version, a.Phase, a.StableVersion,
						dash(a.CanaryVersion), fmt.Sprintf("%d/%d", a.Ready, a.Instances), fmtWeights(a.Weights))
				}
				if p.Continue == "" {
					return nil
				}
				o.Continue = p.Continue
			}
		},
	}
	apps.Flags().String("phase", "", "only apps in these phases (comma-separated: Progressing,Paused,Healthy,Degraded,RolledBack)")
	apps.Flags().StringP("search", "q", "", "only apps whose name contains this")
	apps.Flags().String("attention", "", "only apps needing attention: true, or one reason (paused, degraded, rolledBack, invalidSpec, configDrift, centreDown, error)")
	apps.Flags().Int("page-size", 0, "apps per request (default: the server's, 100)")
	cmds = append(cmds, apps)

	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Validate a release spec and write it to the config centre",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			app, data, err := specFile(cmd) // cli_records.go
			if err != nil {
				return err
			}
			if dry, _ := cmd.Flags().GetBool("dry-run"); dry {
				return dryRunSpec(cmd, app, data)
			}
			if err := apiClient(cmd).PutSpec(cmd.Context(), app, data); err != nil {
				return &exitError{code: 2, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: release spec written to the config centre\n", app)
			return nil
		},
	}
	apply.Flags().StringP("file", "f", "", "release spec file (YAML or JSON; - for stdin)")
	apply.Flags().String("app", "", "app name (default: the spec's app field)")
	apply.Flags().Bool("dry-run", false, "validate and show the diff, the plan and config changes; write nothing")
	_ = apply.MarkFlagRequired("file")
	cmds = append(cmds, apply)

	for _, c := range []struct {
		cmd   rollout.Command
		short string
	}{
		{rollout.CmdPromote, "Skip the current step (continue a pause; switch a blue-green)"},
		{rollout.CmdPromoteFull, "Skip every remaining step and send all traffic to the new version"},
		{rollout.CmdPause, "Hold the release where it is"},
		{rollout.CmdResume, "Continue a paused release (or retry an aborted one)"},
		{rollout.CmdAbort, "Send all traffic back to the stable version and scale the new one away"},
	} {
		c := c
		cmds = append(cmds, &cobra.Command{
			Use:   string(c.cmd) + " APP",
			Short: c.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				v, err := apiClient(cmd).Command(cmd.Context(), args[0], c.cmd)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				printStatus(cmd.OutOrStdout(), v)
				return nil
			},
		})
	}
	cmds = append(cmds, environmentCommands()...) // cli_environments.go
	return append(cmds, recordsCommands()...)     // cli_records.go
}

func appOf(doc []byte) string {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "app:") {
			return strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "app:")), `"'`)
		}
		if strings.HasPrefix(line, `"app"`) {
			_, v, _ := strings.Cut(line, ":")
			return strings.Trim(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), ",")), `"`)
		}
	}
	return ""
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtWeights(w map[string]int) string {
	if len(w) == 0 {
		return "-"
	}
	var keys []string
	for k := range w {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return w[keys[i]] > w[keys[j]] || (w[keys[i]] == w[keys[j]] && keys[i] < keys[j]) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d%%", k, w[k]))
	}
	return strings.Join(parts, " · ")
}

func printStatus(w io.Writer, v engine.AppView) {
	st := v.Status
	ver := ""
	if v.Spec != nil {
		ver = v.Spec.Version
	}
	fmt.Fprintf(w, "app:      %s\nphase:    %s\ndesired:  %s\nstable:   %s\n", v.App, st.Phase, ver, st.StableVersion)
	if st.CanaryVersion != "" {
		fmt.Fprintf(w, "canary:   %s (step %d/%d)\n", st.CanaryVersion, min(st.Step+1, st.TotalSteps), st.TotalSteps)
	}
	fmt.Fprintf(w, "weights:  %s\n", fmtWeights(st.Weights))
	if st.Message != "" {
		fmt.Fprintf(w, "message:  %s\n", st.Message)
	}
	if st.SpecError != nil {
		fmt.Fprintf(w, "rejected spec (revision %d): %s\n", st.SpecError.Revision, st.SpecError.Error)
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "error:    %s\n", st.LastError)
	}
	fmt.Fprintf(w, "source:   %s (%s)\n", st.Source.Name, map[bool]string{true: "ready", false: "unavailable: " + st.Source.Error}[st.Source.Ready])
	fmt.Fprintf(w, "instances:\n")
	for _, in := range st.Instances {
		r := "ready"
		if !in.Ready {
			r = "not ready"
			if in.Message != "" {
				r += ": " + in.Message
			}
		}
		fmt.Fprintf(w, "  %-24s %-10s %-22s %s\n", in.ID, in.Version, in.Addr, r)
	}
}

// progressLine renders one line: versions, step, a bar of the new
// version's weight, instance readiness and phase.
func progressLine(v engine.AppView) string {
	st := v.Status
	newV := st.CanaryVersion
	if newV == "" {
		newV = st.StableVersion
	}
	w := st.Weights[newV]
	const width = 20
	filled := w * width / 100
	bar := "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
	ready, total := 0, len(st.Instances)
	per := map[string][2]int{}
	for _, in := range st.Instances {
		c := per[in.Version]
		c[1]++
		if in.Ready {
			ready++
			c[0]++
		}
		per[in.Version] = c
	}
	var vs []string
	for k := range per {
		vs = append(vs, k)
	}
	sort.Strings(vs)
	var pv []string
	for _, k := range vs {
		pv = append(pv, fmt.Sprintf("%s %d/%d", k, per[k][0], per[k][1]))
	}
	step := ""
	if st.CanaryVersion != "" && st.TotalSteps > 0 {
		step = fmt.Sprintf(" step %d/%d", min(st.Step+1, st.TotalSteps), st.TotalSteps)
	}
	from := st.StableVersion
	line := fmt.Sprintf("%-11s %s→%s%s %s %3d%%  weights %s  ready %d/%d (%s)", st.Phase, from, newV, step, bar, w,
		fmtWeights(st.Weights), ready, total, strings.Join(pv, ", "))
	if st.Message != "" && st.Phase != rollout.Healthy {
		line += "  — " + st.Message
	}
	return line
}

// follow prints an app's progress until it settles. With a target
// version it returns nil once that version is Healthy and an exitError 1
// when the release fails, is aborted or rolled back.
func follow(ctx context.Context, c *client.Client, app, target string, timeout time.Duration, out io.Writer) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var result error
	last := ""
	started := target == ""
	err := c.Watch(ctx, app, func(m engine.Message) bool {
		if m.Event != nil {
			fmt.Fprintf(out, "  • %s %s: %s\n", m.Event.Time.Format("15:04:05"), m.Event.Reason, m.Event.Message)
			return true
		}
		if m.App == nil {
			return true
		}
		v := *m.App
		st := v.Status
		if line := progressLine(v); line != last {
			fmt.Fprintln(out, line)
			last = line
		}
		if target == "" {
			return true
		}
		if st.CanaryVersion == target || st.StableVersion == target || st.RejectedVersion == target {
			started = true
		}
		if !started {
			return true
		}
		switch {
		case st.RejectedVersion == target:
			result = &exitError{code: 1, err: fmt.Errorf("%s: %s was %s: %s", app, target, phaseWords(st.Phase), st.Message)}
			return false
		case st.StableVersion == target && st.CanaryVersion == "" && st.Phase == rollout.Healthy:
			fmt.Fprintf(out, "%s: %s is Healthy\n", app, target)
			return false
		case st.Phase == rollout.Degraded:
			result = &exitError{code: 1, err: fmt.Errorf("%s: release of %s is Degraded: %s", app, target, st.Message)}
			return false
		case v.Spec != nil && v.Spec.Version != target && st.CanaryVersion != target:
			result = &exitError{code: 1, err: fmt.Errorf("%s: %s was superseded by %s", app, target, v.Spec.Version)}
			return false
		}
		return true
	})
	if result != nil {
		return result
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &exitError{code: 3, err: fmt.Errorf("%s: gave up waiting after %s", app, timeout)}
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// phaseWords is a phase as words in a sentence ("rolled back").
func phaseWords(p rollout.Phase) string {
	if p == rollout.RolledBack {
		return "rolled back"
	}
	return strings.ToLower(string(p))
}
