package kubernetes

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientConfig says how graylane authenticates to the cluster.
type ClientConfig struct {
	// Kubeconfig is a kubeconfig file. Empty: in-cluster (the pod's service
	// account) when graylane runs in a pod, else $KUBECONFIG or
	// ~/.kube/config.
	Kubeconfig string
	// Context picks a kubeconfig context (default: its current context).
	Context string
	// UserAgent is sent with every request (default "graylane").
	UserAgent string
}

// RESTConfig builds the client configuration ClientConfig describes and
// returns it with a short description of where it came from ("in-cluster",
// "kubeconfig /path (context x)").
func RESTConfig(c ClientConfig) (*rest.Config, string, error) {
	var (
		cfg  *rest.Config
		from string
		err  error
	)
	inCluster := c.Kubeconfig == "" && c.Context == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != ""
	if inCluster {
		cfg, err = rest.InClusterConfig()
		from = "in-cluster service account"
		if err != nil {
			return nil, "", fmt.Errorf("in-cluster kubernetes config: %w", err)
		}
	} else {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if c.Kubeconfig != "" {
			rules.ExplicitPath = c.Kubeconfig
		}
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context})
		cfg, err = loader.ClientConfig()
		if err != nil {
			if clientcmd.IsEmptyConfig(err) {
				return nil, "", errors.New("no kubernetes configuration: not in a pod, and no kubeconfig (set kubernetes.kubeconfig, $KUBECONFIG or ~/.kube/config)")
			}
			return nil, "", fmt.Errorf("kubeconfig: %w", err)
		}
		raw, _ := loader.RawConfig()
		ctx := c.Context
		if ctx == "" {
			ctx = raw.CurrentContext
		}
		file := c.Kubeconfig
		if file == "" {
			file = rules.GetDefaultFilename()
		}
		from = fmt.Sprintf("kubeconfig %s (context %s)", file, ctx)
	}
	cfg.UserAgent = c.UserAgent
	if cfg.UserAgent == "" {
		cfg.UserAgent = "graylane"
	}
	return cfg, from, nil
}
