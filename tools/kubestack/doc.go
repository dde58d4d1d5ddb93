// Command kubestack is one multi-call binary holding a Kubernetes control
// plane for graylane's integration tests: etcd v3.6.4, kube-apiserver,
// kube-controller-manager and kube-scheduler from k8s.io/kubernetes v1.34.2.
// The first argument (or the name the binary is invoked under) selects the
// component; the remaining arguments are that component's own flags:
//
//	kubestack etcd --data-dir=... --unsafe-no-fsync
//	kubestack kube-apiserver --etcd-servers=...
//
// It lives in its own module so that Kubernetes' dependency graph and its
// staging replace directives stay out of graylane's go.mod. Tests do not
// build it by hand: testsupport/kubestack builds it once through
// testenv.BuildTool (with the version ldflags that package passes) and caches
// the binary. Entry point: main.
package main
