package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/viper"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/kubernetes"
	"github.com/graylane/graylane/spec"
)

// addKubernetes registers the kubernetes backend when graylane can build a
// client: in-cluster (its pod's service account) by default when it runs in
// a pod, else kubernetes.kubeconfig / kubernetes.context, $KUBECONFIG or
// ~/.kube/config. Nothing contacts the cluster until an app uses it.
// Without a configuration the backend is registered as unavailable, and
// specs using it get the reason.
func (r *resolver) addKubernetes(v *viper.Viper, log *slog.Logger) error {
	cfg, from, err := kubernetes.RESTConfig(kubernetes.ClientConfig{
		Kubeconfig: v.GetString("kubernetes.kubeconfig"),
		Context:    v.GetString("kubernetes.context"),
	})
	if err != nil {
		r.unavailable(spec.BackendKubernetes, err.Error())
		return nil
	}
	cfg.QPS = float32(v.GetFloat64("kubernetes.qps"))
	cfg.Burst = v.GetInt("kubernetes.burst")
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client from %s: %w", from, err)
	}
	namespaces := list(v, "kubernetes.namespaces")
	be, err := kubernetes.New(kubernetes.Config{Client: cs, Namespaces: namespaces, Logger: log.With("component", "kubernetes")})
	if err != nil {
		return fmt.Errorf("kubernetes backend: %w", err)
	}
	r.backends[spec.BackendKubernetes] = be
	r.notifiers = append(r.notifiers, be)
	r.closers = append(r.closers, func() { _ = be.Close() })
	log.Info("kubernetes backend configured", "from", from, "host", cfg.Host, "namespaces", namespaces)
	return nil
}

// kubernetesRouter is the default router of a kubernetes release (no
// traffic.type): the Service selector router for a blue-green, none for
// rolling and canary releases.
func (r *resolver) kubernetesRouter(rel *spec.Release) (adapters.TrafficRouter, error) {
	be, ok := r.backends[spec.BackendKubernetes].(*kubernetes.Backend)
	if !ok {
		return nil, nil // unconfigured: Backend reports why
	}
	return be.RouterFor(rel)
}
