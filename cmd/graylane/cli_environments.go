package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/graylane/graylane/client"
	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/hooks"
	"github.com/graylane/graylane/promotion"
)

// Exit codes of promote-env and approve.
const (
	exitRefused = 1
	exitPending = 4
)

// environmentCommands are envs, promote-env, approve, freeze, unfreeze,
// plan and hooks.
func environmentCommands() []*cobra.Command {
	envs := &cobra.Command{
		Use:   "envs [APP]",
		Short: "List the environments; with APP, the app in each: running bundle, phase, Healthy since, what is promotable where",
		Args:  cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd)
			if len(args) == 0 {
				list, err := c.Environments(cmd.Context())
				if err != nil {
					return err
				}
				printEnvironments(cmd.OutOrStdout(), list)
				return nil
			}
			ov, err := c.AppEnvironments(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printAppEnvironments(cmd.OutOrStdout(), args[0], ov, time.Now())
			return nil
		},
	}

	promote := &cobra.Command{
		Use:   "promote-env APP --to ENV [--bundle DIGEST] [--wait]",
		Short: "Promote the bundle running in ENV's source environment into ENV (exit 0 promoted, 4 pending, 1 refused)",
		Long: `Asks graylane to move APP's release bundle — its code version and bound config files, exactly as they run in
ENV's source environment (its from) — into ENV, through ENV's config centre; ENV then rolls it out with its own
strategy and overlay. Every rule of ENV is checked: frozen, the source's bundle Healthy and soaked, its analysis
passed (and the pre-production gate), approvals, windows. A promotion that only waits for soak, approvals or a
window is recorded (exit 4) and carried out by graylane once they allow; any other refusal changes nothing
(exit 1). The answer names the rule.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd)
			to, _ := cmd.Flags().GetString("to")
			bundle, _ := cmd.Flags().GetString("bundle")
			if to == "" {
				return &exitError{code: 2, err: fmt.Errorf("--to: name the environment to promote into")}
			}
			r, err := c.PromoteEnv(cmd.Context(), args[0], to, bundle)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			printResult(cmd.OutOrStdout(), r)
			switch r.Outcome {
			case promotion.Refused:
				return &exitError{code: exitRefused}
			case promotion.Pending:
				return &exitError{code: exitPending}
			}
			if wait, _ := cmd.Flags().GetBool("wait"); wait && r.Request != nil {
				timeout, _ := cmd.Flags().GetDuration("timeout")
				return follow(cmd.Context(), c.InEnv(to), args[0], r.Request.Version, timeout, cmd.OutOrStdout())
			}
			return nil
		},
	}
	promote.Flags().String("to", "", "the environment to promote into")
	promote.Flags().String("bundle", "", "the bundle meant (its digest, at least 12 hex digits): refused if another one runs in the source")
	promote.Flags().Bool("wait", false, "follow the rollout in ENV; exit 0 when Healthy")
	promote.Flags().Duration("timeout", 0, "give up waiting after this long (exit 3)")

	approve := &cobra.Command{
		Use:   "approve APP --env ENV [--bundle DIGEST]",
		Short: "Approve the pending promotion of APP into ENV (not your own request; exit 0 approved or promoted, 1 refused)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, _ := cmd.Flags().GetString("env")
			if env == "" {
				return &exitError{code: 2, err: fmt.Errorf("--env: name the environment the promotion goes into")}
			}
			bundle, _ := cmd.Flags().GetString("bundle")
			r, err := apiClient(cmd).InEnv("").ApproveEnv(cmd.Context(), args[0], env, bundle)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			printResult(cmd.OutOrStdout(), r)
			if r.Outcome == promotion.Refused {
				return &exitError{code: exitRefused}
			}
			return nil
		},
	}
	approve.Flags().String("bundle", "", "the bundle you approve (its digest): refused if the request is for another")

	freeze := &cobra.Command{
		Use:   "freeze ENV --reason TEXT",
		Short: "Freeze an environment: no promotions into it, no releases started in it (the reason is shown everywhere)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reason, _ := cmd.Flags().GetString("reason")
			f, err := apiClient(cmd).InEnv("").Freeze(cmd.Context(), args[0], reason)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s frozen by %s: %s\n", f.Env, f.By, f.Reason)
			return nil
		},
	}
	freeze.Flags().String("reason", "", "why (required)")

	unfreeze := &cobra.Command{
		Use:   "unfreeze ENV",
		Short: "Lift an environment's freeze",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := apiClient(cmd).InEnv("").Unfreeze(cmd.Context(), args[0]); err != nil {
				return &exitError{code: 2, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s unfrozen\n", args[0])
			return nil
		},
	}

	plan := &cobra.Command{
		Use:   "plan",
		Short: "Release plans: several apps promoted into one environment in order",
	}
	create := &cobra.Command{
		Use:   "create --to ENV APP... [--name NAME] [--wait]",
		Short: "Start a release plan: each app promoted once the one before is Healthy; a failure stops it",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd).InEnv("")
			to, _ := cmd.Flags().GetString("to")
			name, _ := cmd.Flags().GetString("name")
			p, err := c.CreatePlan(cmd.Context(), name, to, args)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			printPlan(cmd.OutOrStdout(), p)
			if wait, _ := cmd.Flags().GetBool("wait"); wait {
				return waitPlan(cmd, c, p.ID)
			}
			return nil
		},
	}
	create.Flags().String("to", "", "the environment the apps are promoted into")
	create.Flags().String("name", "", "a name for people")
	create.Flags().Bool("wait", false, "follow the plan; exit 0 when it succeeded, 1 when it failed")
	show := &cobra.Command{
		Use:   "show [ID] [--wait]",
		Short: "Show a release plan's progress (without ID: every plan)",
		Args:  cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := apiClient(cmd).InEnv("")
			if len(args) == 0 {
				ps, err := c.Plans(cmd.Context())
				if err != nil {
					return err
				}
				for _, p := range ps {
					printPlan(cmd.OutOrStdout(), p)
				}
				return nil
			}
			if wait, _ := cmd.Flags().GetBool("wait"); wait {
				return waitPlan(cmd, c, args[0])
			}
			p, err := c.Plan(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printPlan(cmd.OutOrStdout(), p)
			return nil
		},
	}
	show.Flags().Bool("wait", false, "follow the plan until it ends")
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a running release plan (promotions already written stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := apiClient(cmd).InEnv("").CancelPlan(cmd.Context(), args[0])
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			printPlan(cmd.OutOrStdout(), p)
			return nil
		},
	}
	plan.AddCommand(create, show, cancel)

	hooksCmd := &cobra.Command{
		Use:   "hooks APP",
		Short: "Show an app's release hook outcomes per bundle (in --env's environment)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := apiClient(cmd).Hooks(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			printHooks(cmd.OutOrStdout(), recs)
			return nil
		},
	}
	return []*cobra.Command{envs, promote, approve, freeze, unfreeze, plan, hooksCmd}
}

func printEnvironments(w io.Writer, list []promotion.EnvSummary) {
	for _, e := range list {
		def := ""
		if e.Default {
			def = " (default)"
		}
		fmt.Fprintf(w, "%s%s  centre %s  %s\n", e.Name, def, e.Centre, rulesText(e.Rules))
		if e.Frozen != nil {
			fmt.Fprintf(w, "  FROZEN by %s since %s: %s\n", e.Frozen.By, e.Frozen.At.Local().Format("2006-01-02 15:04"), e.Frozen.Reason)
		}
	}
}

func rulesText(r promotion.Rules) string {
	if r.From == "" {
		return "(released into directly)"
	}
	parts := []string{"from " + r.From}
	if r.Soak != "" {
		parts = append(parts, "soak "+r.Soak)
	}
	if r.Approvals > 0 {
		parts = append(parts, fmt.Sprintf("%d approvals", r.Approvals))
	}
	if len(r.Windows) > 0 {
		parts = append(parts, "windows "+strings.Join(r.Windows, "; "))
	}
	if len(r.RequireAnalysis) > 0 {
		parts = append(parts, "passed analysis in "+strings.Join(r.RequireAnalysis, ", "))
	}
	if r.AutoPromote {
		parts = append(parts, "autoPromote")
	}
	return strings.Join(parts, ", ")
}

// printAppEnvironments is `graylane envs APP`.
func printAppEnvironments(w io.Writer, app string, ov []promotion.AppEnv, now time.Time) {
	for _, e := range ov {
		fmt.Fprintf(w, "%s  (%s, %s)\n", e.Name, e.Centre, rulesText(e.Rules))
		if e.Frozen != nil {
			fmt.Fprintf(w, "  FROZEN by %s: %s\n", e.Frozen.By, e.Frozen.Reason)
		}
		if !e.Present {
			fmt.Fprintf(w, "  %s has no release here\n", app)
			continue
		}
		fmt.Fprintf(w, "  phase     %s %s\n", e.Phase, e.Message)
		if b := e.Bundle; b != nil {
			fmt.Fprintf(w, "  running   %s  bundle %s  Healthy since %s (%s)\n", b.Version, environments.Short(b.Bundle), b.HealthySince.Local().Format("2006-01-02 15:04:05"), now.Sub(b.HealthySince).Round(time.Second))
			if b.ConfigDigest != "" {
				fmt.Fprintf(w, "  config    effective %s", environments.Short(b.ConfigDigest))
				if len(e.Reported) > 0 {
					var rs []string
					for d, n := range e.Reported {
						rs = append(rs, fmt.Sprintf("%s×%d", environments.Short(d), n))
					}
					fmt.Fprintf(w, "; instances report %s", strings.Join(rs, ", "))
				}
				fmt.Fprintln(w)
			}
			if b.Analysis != "" {
				fmt.Fprintf(w, "  analysis  %s (%s)\n", b.Analysis, b.AnalysisDetail)
			}
		} else {
			fmt.Fprintf(w, "  running   nothing Healthy yet\n")
		}
		if e.Desired != "" && (e.Bundle == nil || e.Desired != e.Bundle.Bundle) {
			fmt.Fprintf(w, "  desired   %s bundle %s\n", e.Version, environments.Short(e.Desired))
		}
		if e.Failed != nil {
			fmt.Fprintf(w, "  failed    %s (bundle %s): %s\n", e.Failed.Version, environments.Short(e.Failed.Bundle), e.Failed.Reason)
		}
		if v := e.Promotion; v != nil {
			switch {
			case v.Allowed:
				fmt.Fprintf(w, "  %s → %s: promotable now (%s, bundle %s)\n", e.Rules.From, e.Name, v.Candidate.Version, environments.Short(v.Candidate.Bundle))
			default:
				fmt.Fprintf(w, "  %s → %s: not promotable: %s\n", e.Rules.From, e.Name, v.Refusals[0])
				for _, r := range v.Refusals[1:] {
					fmt.Fprintf(w, "      also %s\n", r)
				}
			}
		}
		if r := e.Request; r != nil && r.State == environments.Pending {
			var by []string
			for _, a := range r.Approvals {
				if a.Bundle == r.Bundle {
					by = append(by, a.By)
				}
			}
			fmt.Fprintf(w, "  request   %s by %s, pending (%s); approved by: %s\n", r.Version, r.RequestedBy, r.Rule, strings.Join(by, ", "))
		}
	}
}

func printResult(w io.Writer, r promotion.Result) {
	what := r.App + " into " + r.Env
	switch r.Outcome {
	case promotion.Promoted:
		v := ""
		if r.Request != nil {
			v = fmt.Sprintf(" %s (bundle %s)", r.Request.Version, environments.Short(r.Request.Bundle))
		}
		fmt.Fprintf(w, "%s: promoted%s from %s; written to %s's config centre (document version %s)\n", what, v, r.From, r.Env, r.DocumentVersion)
	case promotion.Approved:
		fmt.Fprintf(w, "%s: approved; still waiting (%s: %s)\n", what, r.Rule, r.Reason)
	case promotion.Pending:
		fmt.Fprintf(w, "%s: requested; waiting (%s: %s)\n", what, r.Rule, r.Reason)
	default:
		fmt.Fprintf(w, "%s: refused by rule %s: %s\n", what, r.Rule, r.Reason)
	}
}

func printPlan(w io.Writer, p promotion.Plan) {
	name := p.ID
	if p.Name != "" {
		name += " (" + p.Name + ")"
	}
	fmt.Fprintf(w, "plan %s into %s by %s: %s %s\n", name, p.Env, p.By, p.State, p.Message)
	for i, s := range p.Steps {
		line := fmt.Sprintf("  %d. %-20s %-12s", i+1, s.App, s.State)
		if s.Version != "" {
			line += " " + s.Version + " bundle " + environments.Short(s.Bundle)
		}
		if s.Reason != "" {
			line += "  (" + s.Rule + ": " + s.Reason + ")"
		}
		fmt.Fprintln(w, line)
	}
}

func waitPlan(cmd *cobra.Command, c *client.Client, id string) error {
	last := ""
	for {
		p, err := c.Plan(cmd.Context(), id)
		if err != nil {
			return err
		}
		if s := fmt.Sprint(p.State, p.Steps); s != last {
			printPlan(cmd.OutOrStdout(), p)
			last = s
		}
		switch p.State {
		case promotion.PlanSucceeded:
			return nil
		case promotion.PlanFailed, promotion.PlanCancelled:
			return &exitError{code: 1}
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(time.Second):
		}
	}
}

func printHooks(w io.Writer, recs []hooks.Record) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "no release hooks ran")
	}
	for _, r := range recs {
		fmt.Fprintf(w, "%s (identity %s, bundle %s)\n", r.Version, r.Identity, environments.Short(r.Bundle))
		for _, kind := range []string{"preRelease", "confirmPromotion", "postRelease"} {
			k := r.Kinds[kind]
			if k == nil {
				continue
			}
			fmt.Fprintf(w, "  %-16s %s (attempt %d) %s\n", kind, k.State, k.Attempt, k.Message)
			for _, o := range k.Outcomes {
				fmt.Fprintf(w, "    %s  %-12s %s  %s\n", o.EndedAt.Local().Format("01-02 15:04:05"), o.Hook, o.Status, firstLine(o.Output))
			}
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
