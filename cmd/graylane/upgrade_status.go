package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/graylane/graylane/internal/schema"
	"github.com/graylane/graylane/internal/upgrade"
)

// newUpgradeStatus is `graylane upgrade-status`: the running graylanes,
// the schema version each reads, and where the migration stands
// (docs/upgrades.md).
func newUpgradeStatus() *cobra.Command {
	v := viper.New()
	cmd := &cobra.Command{
		Use:   "upgrade-status",
		Short: "Show the running graylanes, the schema versions they read and whether records were migrated",
		Long: `Read graylane's etcd and show every running graylane (its id, release and
the schema version of each record kind it reads), graylanes of releases
before schema versions (known by their leader-election key), the version
each kind is written at and migrated to, and what a migration waits for.
Safe while graylane runs; with the embedded etcd, graylane must be running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := loadConfig(v, cmd); err != nil {
				return &exitError{code: 2, err: err}
			}
			return runUpgradeStatus(cmd.Context(), v, cmd.OutOrStdout())
		},
	}
	stateFlags(cmd)
	return cmd
}

func runUpgradeStatus(ctx context.Context, v *viper.Viper, out io.Writer) error {
	for k, d := range upgradeDefaults {
		v.SetDefault(k, d)
	}
	cli, err := stateClient(v)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer cli.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := upgrade.Inspect(tctx, cli, v.GetString("upgrade.prefix"), []string{electionPrefix(v)})
	if err != nil {
		return fmt.Errorf("%w (is etcd at %v reachable? with the embedded etcd, graylane must be running)", err, cli.Endpoints())
	}
	var kinds []schema.Kind
	seen := map[string]bool{}
	for _, c := range collections(v) {
		if !seen[c.Kind.Name] {
			seen[c.Kind.Name] = true
			kinds = append(kinds, c.Kind)
		}
	}
	printUpgradeStatus(out, buildVersion(), kinds, rep)
	return nil
}

func printUpgradeStatus(out io.Writer, release string, kinds []schema.Kind, rep upgrade.Report) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "running graylanes\n")
	for _, m := range rep.Members {
		var reads []string
		for _, k := range slices.Sorted(maps.Keys(m.Reads)) {
			reads = append(reads, fmt.Sprintf("%s=%d", k, m.Reads[k]))
		}
		fmt.Fprintf(w, "  %s\t%s\tsince %s\treads %s\n", m.ID, m.Release, m.Since.Format(time.RFC3339), strings.Join(reads, " "))
	}
	for _, id := range rep.Older {
		fmt.Fprintf(w, "  %s\t(released before schema versions)\t\treads 0 of every kind\n", id)
	}
	if len(rep.Members)+len(rep.Older) == 0 {
		fmt.Fprintf(w, "  none\n")
	}
	fmt.Fprintf(w, "\nrecord kind\twritten at\tmigrated to\tthis graylane (%s) reads\n", release)
	for _, k := range kinds {
		at, ok := rep.Storage.Kinds[k.Name]
		if !ok {
			at = k.Oldest()
		}
		mig, ok := rep.Storage.Migrated[k.Name]
		if !ok {
			mig = k.Oldest()
		}
		fmt.Fprintf(w, "  %s\t%d\t%d\t%d\n", k.Name, at, mig, k.Current)
	}
	w.Flush()
	d := upgrade.Decide(upgrade.View{Kinds: kinds, Members: rep.Members, Older: rep.Older, Storage: rep.Storage})
	switch {
	case d.Refuse != nil:
		fmt.Fprintf(out, "\nthis graylane cannot run here: %v\n", d.Refuse)
	case len(d.Waiting) > 0:
		fmt.Fprintf(out, "\nwaiting:\n")
		for _, s := range d.Waiting {
			fmt.Fprintf(out, "  %s\n", s)
		}
	case len(d.Raise)+len(d.Migrate) > 0:
		fmt.Fprintf(out, "\nevery running graylane reads the new versions: one of them raises and migrates them now (unless upgrade.migration is hold)\n")
	default:
		fmt.Fprintf(out, "\nevery record is at the version every running graylane writes: the upgrade is complete\n")
	}
	if rep.Storage.RaisedBy != "" {
		fmt.Fprintf(out, "last raised by %s at %s\n", rep.Storage.RaisedBy, rep.Storage.RaisedAt.Format(time.RFC3339))
	}
}
