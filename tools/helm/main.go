package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/getter"
	release "helm.sh/helm/v4/pkg/release/v1"
)

const usage = `usage:
  graylane-helm lint CHART [--strict] [-f values.yaml]... [--set k=v]...
  graylane-helm template CHART [--name NAME] [--namespace NS] [-f values.yaml]... [--set k=v]...
                [--kube-version vX.Y.Z] [--api-versions group/version[/Kind]]...
`

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if len(os.Args) < 3 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, chartPath := os.Args[1], os.Args[2]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var files, sets, apis multi
	fs.Var(&files, "f", "values file (repeatable)")
	fs.Var(&sets, "set", "value key=value (repeatable)")
	fs.Var(&apis, "api-versions", "extra API version the cluster is taken to serve (repeatable)")
	name := fs.String("name", "graylane", "release name")
	ns := fs.String("namespace", "graylane", "release namespace")
	strict := fs.Bool("strict", false, "lint: fail on warnings too")
	kubeVersion := fs.String("kube-version", "", "Kubernetes version to render for")
	if err := fs.Parse(os.Args[3:]); err != nil {
		os.Exit(2)
	}
	opts := values.Options{ValueFiles: files, Values: sets}
	vals, err := opts.MergeValues(getter.All(cli.New()))
	if err != nil {
		fail(fmt.Errorf("values: %w", err))
	}
	// Helm logs through slog; keep its debug chatter off stdout.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	switch cmd {
	case "lint":
		err = lint(os.Stdout, chartPath, *ns, *strict, vals)
	case "template":
		err = template(os.Stdout, chartPath, *name, *ns, *kubeVersion, apis, vals)
	default:
		fmt.Fprintf(os.Stderr, "graylane-helm: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "graylane-helm:", err)
	os.Exit(1)
}

// lint runs Helm's linter and prints every message; it fails on errors
// (and on warnings with strict).
func lint(out io.Writer, chartPath, ns string, strict bool, vals map[string]any) error {
	l := action.NewLint()
	l.Strict = strict
	l.Namespace = ns
	res := l.Run([]string{chartPath}, vals)
	for _, m := range res.Messages {
		fmt.Fprintln(out, m.Error())
	}
	if len(res.Errors) > 0 {
		var msgs []string
		for _, e := range res.Errors {
			msgs = append(msgs, e.Error())
		}
		return fmt.Errorf("lint %s: %d error(s):\n  %s", chartPath, len(res.Errors), strings.Join(msgs, "\n  "))
	}
	fmt.Fprintf(out, "1 chart(s) linted, 0 chart(s) failed\n")
	return nil
}

// template renders the chart as `helm template` does and prints the
// manifest (hooks included).
func template(out io.Writer, chartPath, name, ns, kubeVersion string, apis []string, vals map[string]any) error {
	ch, err := loader.Load(chartPath)
	if err != nil {
		return fmt.Errorf("load chart %s: %w", chartPath, err)
	}
	cfg := action.NewConfiguration()
	inst := action.NewInstall(cfg)
	inst.DryRunStrategy = action.DryRunClient
	inst.ReleaseName = name
	inst.Namespace = ns
	inst.Replace = true
	inst.IncludeCRDs = true
	inst.APIVersions = common.VersionSet(apis)
	if kubeVersion != "" {
		kv, err := common.ParseKubeVersion(kubeVersion)
		if err != nil {
			return fmt.Errorf("--kube-version %q: %w", kubeVersion, err)
		}
		inst.KubeVersion = kv
	}
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return fmt.Errorf("render %s: %w", chartPath, err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return fmt.Errorf("render %s: unexpected release type %T", chartPath, rel)
	}
	manifest := strings.TrimSpace(r.Manifest)
	if manifest == "" {
		return errors.New("the chart rendered no objects")
	}
	fmt.Fprintln(out, manifest)
	for _, h := range r.Hooks {
		fmt.Fprintf(out, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	return nil
}
