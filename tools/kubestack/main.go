package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	_ "time/tzdata" // for CronJob time zone support, as in the upstream mains

	"github.com/spf13/cobra"
	etcdmain "go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = `usage: kubestack COMPONENT [flags...]

COMPONENT is one of:
  etcd                     etcd server v3.6.4 (etcdmain)
  kube-apiserver           (alias apiserver)
  kube-controller-manager  (alias controller-manager)
  kube-scheduler           (alias scheduler)

The component may also be chosen by invoking the binary through a link
named after it (argv[0]).
`

func main() {
	component, args := pick(os.Args)
	switch component {
	case "etcd":
		// etcdmain parses args[1:] as etcd flags.
		etcdmain.Main(append([]string{"etcd"}, args...))
	case "kube-apiserver", "apiserver":
		os.Exit(run(apiserver.NewAPIServerCommand(), args))
	case "kube-controller-manager", "controller-manager":
		os.Exit(run(controllermanager.NewControllerManagerCommand(), args))
	case "kube-scheduler", "scheduler":
		os.Exit(run(scheduler.NewSchedulerCommand(), args))
	case "", "help", "-h", "--help":
		fmt.Fprint(os.Stderr, usage)
		if component == "" {
			os.Exit(2)
		}
	default:
		fmt.Fprintf(os.Stderr, "kubestack: unknown component %q\n\n%s", component, usage)
		os.Exit(2)
	}
}

// pick returns the component named by argv[0] (when the binary is invoked
// through a link named after a component) or else by the first argument,
// together with the component's own arguments.
func pick(argv []string) (string, []string) {
	if len(argv) == 0 {
		return "", nil
	}
	switch base := strings.TrimSuffix(filepath.Base(argv[0]), ".exe"); base {
	case "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler":
		return base, argv[1:]
	}
	if len(argv) < 2 {
		return "", nil
	}
	return argv[1], argv[2:]
}

func run(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	return cli.Run(cmd)
}
