package kubernetes_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/kubernetes"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// A canary asks for 3 instances of the stable v1 and 1 of the canary v2:
// each version gets its own Deployment, created from the spec's pod
// template, with the image following the version. (A real cluster's
// Deployment controller then creates the pods; Observe reports them.)
func Example() {
	cs := fake.NewClientset() // in production: kubernetes.NewForConfig(RESTConfig(...))
	b, err := kubernetes.New(kubernetes.Config{Client: cs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	rel, err := spec.Parse([]byte(`
app: cart
version: v2
replicas: 4
strategy: {steps: [{setWeight: 25}, {pause: {}}]}
backend:
  type: kubernetes
  kubernetes:
    namespace: shop
    image: registry.example.com/shop/cart:{{.Version}}
    template:
      spec: {containers: [{name: cart, ports: [{containerPort: 8080}]}]}
`))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := b.Apply(ctx, rel, traffic.Replicas{"v1": 3, "v2": 1}, adapters.NoStep); err != nil {
		panic(err)
	}
	list, _ := cs.AppsV1().Deployments("shop").List(ctx, metav1.ListOptions{})
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	for _, d := range list.Items {
		fmt.Printf("%s: %s x%d, selector %v\n", d.Name, d.Spec.Template.Spec.Containers[0].Image, *d.Spec.Replicas, d.Spec.Selector.MatchLabels)
	}
	// Output:
	// cart: registry.example.com/shop/cart:v1 x3, selector map[graylane.io/app:cart graylane.io/deployment:cart]
	// cart-v2: registry.example.com/shop/cart:v2 x1, selector map[graylane.io/app:cart graylane.io/deployment:cart-v2]
}
