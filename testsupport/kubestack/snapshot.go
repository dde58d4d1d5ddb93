package kubestack

import (
	"context"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Object identifies one version of an object: recreated means a new UID,
// changed a new generation.
type Object struct {
	UID        types.UID
	Generation int64
}

// Snapshot lists the Deployments of namespace ns (by name) and the names
// of its pods that are not terminating, sorted: compare two snapshots to
// prove that something (a restart of graylane, say) touched nothing.
func Snapshot(t testing.TB, cs kubernetes.Interface, ns string) (map[string]Object, []string) {
	t.Helper()
	ctx := context.Background()
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]Object{}
	for _, d := range deps.Items {
		objs[d.Name] = Object{d.UID, d.Generation}
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return objs, names
}
