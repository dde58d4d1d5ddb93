package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/graylane/graylane/rollout"
	"github.com/graylane/graylane/rollout/engine"
	"github.com/graylane/graylane/testsupport/graylanetest"
	"github.com/graylane/graylane/testsupport/kubestack"
	"github.com/graylane/graylane/testsupport/testenv"
)

func kubernetesDoc(app, ns, version string) string {
	return fmt.Sprintf(`app: %s
version: %s
replicas: 2
strategy:
  type: canary
  steps:
    - setWeight: 50
    - pause: {}
    - setWeight: 100
  scaleDownDelay: 1s
backend:
  type: kubernetes
  kubernetes:
    namespace: %s
    image: registry.example.com/shop/%s:{{.Version}}
    template:
      spec:
        containers:
          - name: web
            ports: [{containerPort: 8080}]
    service: {port: 80}
`, app, version, ns, app)
}

// TestEndToEndKubernetesKillNineMidCanary runs the real binary against a
// real control plane through kubernetes.kubeconfig: a canary of
// Deployments, kill -9 while paused, restart; the new process adopts the
// Deployments and pods without touching them and the canary continues.
func TestEndToEndKubernetesKillNineMidCanary(t *testing.T) {
	testenv.IntegrationTest(t)
	c := kubestack.Start(t)
	ns := c.NewNamespace(t)
	cs := c.Clientset()
	g := graylanetest.Start(t, graylanetest.Options{
		Config: map[string]any{"kubernetes": map[string]any{"kubeconfig": c.Kubeconfig(), "namespaces": ns}},
		Env:    []string{"KUBERNETES_SERVICE_HOST="}, // never in-cluster, even if the tests run in a pod
	})
	g.PutSpec("kcart", kubernetesDoc("kcart", ns, "v1"))
	waitFor(t, g, "kcart", 60*time.Second, "v1 healthy", healthyAt("v1"))
	ctx := context.Background()
	if err := g.Client().SetVersion(ctx, "kcart", "v2"); err != nil {
		t.Fatal(err)
	}
	readyPerVersion := func(v engine.AppView) map[string]int {
		n := map[string]int{}
		for _, in := range v.Status.Instances {
			if in.Ready {
				n[in.Version]++
			}
		}
		return n
	}
	pausedHalfway := func(v engine.AppView) bool {
		r := readyPerVersion(v)
		return v.Status.Phase == rollout.Paused && v.Status.Step == 1 && r["v1"] == 1 && r["v2"] == 1 && len(v.Status.Instances) == 2
	}
	waitFor(t, g, "kcart", 60*time.Second, "paused with one canary pod", pausedHalfway)

	snapshot := func() (map[string]kubestack.Object, []string) { return kubestack.Snapshot(t, cs, ns) }
	depsBefore, podsBefore := snapshot()
	if len(depsBefore) != 2 || len(podsBefore) != 2 {
		t.Fatalf("before the kill: deployments %v pods %v, want kcart and kcart-v2 with one pod each", depsBefore, podsBefore)
	}

	g.Kill()
	g.Restart()
	waitFor(t, g, "kcart", 60*time.Second, "the restarted graylane to observe the same canary", pausedHalfway)
	depsAfter, podsAfter := snapshot()
	if !maps.Equal(depsBefore, depsAfter) || !slices.Equal(podsBefore, podsAfter) {
		t.Fatalf("the restart changed the cluster:\ndeployments %v -> %v\npods %v -> %v", depsBefore, depsAfter, podsBefore, podsAfter)
	}
	if _, err := g.Client().Command(ctx, "kcart", rollout.CmdPromote); err != nil {
		t.Fatal(err)
	}
	v := waitFor(t, g, "kcart", 60*time.Second, "v2 healthy with only v2 pods", func(v engine.AppView) bool {
		return healthyAt("v2")(v) && readyPerVersion(v)["v2"] == 2 && len(v.Status.Instances) == 2
	})
	if v.Status.Weights["v2"] != 100 {
		t.Errorf("weights %v", v.Status.Weights)
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "kcart", metav1.GetOptions{})
	if err != nil || svc.Spec.Ports[0].TargetPort.IntValue() != 8080 {
		t.Fatalf("service kcart: %v %+v", err, svc)
	}
}
