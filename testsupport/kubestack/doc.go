// Package kubestack runs a real, throwaway Kubernetes control plane for
// graylane's integration tests: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler (k8s.io/kubernetes v1.34.2,
// etcd v3.6.4, one multi-call binary from tools/kubestack) plus kwok v0.7.0
// (tools/kwok), which plays the kubelet for fake Nodes so pods become
// Running and Ready without containers. Deployments roll out exactly as in a
// real cluster (the real deployment and replicaset controllers), in about a
// second, on loopback only.
//
// Entry point: Start.
//
//	func TestRollout(t *testing.T) {
//		c := kubestack.Start(t)          // ~4 s (up to ~8 s on a busy machine) once binaries are cached
//		ns := c.NewNamespace(t)
//		cs := c.Clientset()              // or c.RESTConfig(), c.Kubeconfig()
//		...
//	}
//
// Start builds both binaries on first use through testenv.BuildToolPath and
// caches them under testenv.CacheDir()/bin, keyed on the tool modules'
// sources; a cold build takes several minutes, so prebuild with BuildBinaries
// (go run ./testsupport/kubestack/prebuild, or TestMain before m.Run, where
// go test's -timeout does not yet count). Under GRAYLANE_INTEGRATION=1 a build
// or start failure fails the test; otherwise it skips it.
//
// Each Start gets free 127.0.0.1 ports and a fresh directory: pki/ (a CA, the
// apiserver's serving certificate, service-account keys, the admin token),
// admin.kubeconfig, etcd/ and logs/<component>.log. The admin user is in
// system:masters; authorization is RBAC. When the test ends the components
// are stopped by PID (controller-manager, scheduler, kwok, then apiserver,
// then etcd) and, if it failed, the tail of every log is printed. Children
// carry Pdeathsig, so none outlives a killed or timed-out test binary. Set
// GRAYLANE_KUBESTACK_KEEP=1 to keep the directory.
//
// # Slow and failing pods
//
// kwok's pod stages understand these pod annotations (on a Pod or a
// Deployment's pod template; helpers return them as maps):
//
//	kubestack.graylane.io/ready-after: "2s"   ReadyAfter(d): Running at once, Ready after d
//	kubestack.graylane.io/never-ready: "true" NeverReady(): Running, never Ready
//	kubestack.graylane.io/crash-loop: "true"  CrashLoop(): Running, containers in CrashLoopBackOff
//
// A pod with none of them is Running and Ready as soon as it is scheduled.
// With never-ready pods and progressDeadlineSeconds: 15 a Deployment reports
// Progressing=False, reason ProgressDeadlineExceeded, about 15 s after the
// rollout stalls. Pods owned by a Job complete (phase Succeeded) once running.
//
// The kube-controller-manager runs DefaultControllers only (Deployments,
// ReplicaSets, garbage collection, namespaces, ServiceAccounts, node
// lifecycle); there are no Services' endpoints, Jobs controller, or kubelet
// features such as logs and exec. Use WithControllers and WithArgs to change
// that, and WithNodes / WithNodeCapacity for more or bigger fake Nodes
// (default one Node, kwok-node-0, with 32 CPU, 256Gi and 110 pods).
package kubestack
