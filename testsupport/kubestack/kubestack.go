package kubestack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/graylane/graylane/testsupport/testenv"
)

// Component names one process of the stack.
type Component string

// The components, in start order. Stop order is ControllerManager,
// Scheduler and Kwok (together), then APIServer, then Etcd.
const (
	Etcd              Component = "etcd"
	APIServer         Component = "kube-apiserver"
	ControllerManager Component = "kube-controller-manager"
	Scheduler         Component = "kube-scheduler"
	Kwok              Component = "kwok"
)

var components = []Component{Etcd, APIServer, ControllerManager, Scheduler, Kwok}

// DefaultControllers are the kube-controller-manager controllers started
// unless WithControllers says otherwise: enough for Deployments (rollouts,
// progress deadlines, garbage collection of old ReplicaSets and pods),
// namespaces with their default ServiceAccount, and node health.
var DefaultControllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"garbage-collector-controller",
	"serviceaccount-controller",
	"namespace-controller",
	"node-lifecycle-controller",
}

const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1" // the kubernetes Service's ClusterIP (in the serving certificate)
	podCIDR     = "10.244.0.1/16"

	// KeepEnv, set to 1, keeps a cluster's directory (logs, etcd data,
	// certificates, kubeconfig) after the test instead of deleting it.
	KeepEnv = "GRAYLANE_KUBESTACK_KEEP"
)

// Option configures Start.
type Option func(*options)

type options struct {
	nodes        int
	nodeCPU      string
	nodeMemory   string
	nodePods     int
	controllers  []string
	args         map[Component][]string
	startTimeout time.Duration
}

// WithNodes sets the number of fake kwok Nodes (default 1), named
// kwok-node-0, kwok-node-1, ...
func WithNodes(n int) Option { return func(o *options) { o.nodes = n } }

// WithNodeCapacity sets each fake Node's capacity (default 32 CPU, 256Gi
// memory, 110 pods). cpu and memory are Kubernetes quantities.
func WithNodeCapacity(cpu, memory string, pods int) Option {
	return func(o *options) { o.nodeCPU, o.nodeMemory, o.nodePods = cpu, memory, pods }
}

// WithControllers replaces DefaultControllers (kube-controller-manager
// --controllers; names end in "-controller" in 1.34, "*" means all).
func WithControllers(names ...string) Option {
	return func(o *options) { o.controllers = slices.Clone(names) }
}

// WithArgs appends flags to one component's command line; a later flag
// overrides an earlier one, so defaults can be changed this way.
func WithArgs(c Component, args ...string) Option {
	return func(o *options) { o.args[c] = append(o.args[c], args...) }
}

// WithStartTimeout bounds how long Start waits for the stack to be ready
// (default 90s).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// Cluster is a running control plane. All methods are safe for concurrent use.
type Cluster struct {
	dir       string
	pki       *pki
	host      string // https://127.0.0.1:PORT
	etcdURL   string
	nodes     []string
	clientset *kubernetes.Clientset
	startup   time.Duration

	mu         sync.Mutex
	procs      map[Component]*process
	stopOnce   sync.Once
	stopped    time.Duration
	tailsShown bool
}

// Start runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and kwok on free 127.0.0.1 ports in a fresh directory, registers the fake
// Nodes, and returns once pods can be scheduled and become Ready: the
// apiserver is ready, the controller-manager and scheduler are healthy,
// every Node is Ready without taints, and the default ServiceAccount exists.
//
// The binaries are built once and cached (see BuildBinaries). A build or
// start failure fails the test under GRAYLANE_INTEGRATION=1 and skips it
// otherwise. t.Cleanup stops every process by PID in dependency order and,
// if the test failed, logs the tail of each component's log.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	testenv.AssertIntegrationTest(t, "kube-apiserver and kwok")
	o := options{
		nodes: 1, nodeCPU: "32", nodeMemory: "256Gi", nodePods: 110,
		controllers:  DefaultControllers,
		args:         map[Component][]string{},
		startTimeout: 90 * time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	bins := binaries(t)

	var dir string
	if os.Getenv(KeepEnv) == "1" {
		d, err := os.MkdirTemp("", "kubestack-")
		if err != nil {
			t.Fatalf("kubestack: %v", err)
		}
		dir = d
		t.Cleanup(func() { t.Logf("kubestack: kept %s (%s=1)", dir, KeepEnv) })
	} else {
		dir = t.TempDir() // removed after the cleanup below has stopped everything
	}
	c := &Cluster{dir: dir, procs: map[Component]*process{}}
	t.Cleanup(func() {
		c.Stop()
		t.Logf("kubestack: stopped in %v", c.stopped.Round(time.Millisecond))
		if t.Failed() && !c.tailsShown {
			c.logTails(t, 60)
		}
	})

	began := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		err = c.start(t, bins, &o)
		if err == nil || attempt == 3 || !c.portClash() {
			break
		}
		t.Logf("kubestack: port clash on attempt %d, retrying with new ports: %v", attempt, err)
		c.stopAll()
	}
	if err != nil {
		c.stopAll()
		c.logTails(t, 60)
		c.tailsShown = true
		testenv.Unavailable(t, "kubestack: start: %v (logs in %s)", err, filepath.Join(dir, "logs"))
	}
	c.startup = time.Since(began)
	t.Logf("kubestack: ready in %v at %s (dir %s)", c.startup.Round(time.Millisecond), c.host, dir)
	return c
}

func (c *Cluster) start(t testing.TB, bins *Binaries, o *options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.startTimeout)
	defer cancel()

	logs := filepath.Join(c.dir, "logs")
	for _, d := range []string{logs, filepath.Join(c.dir, "pki"), filepath.Join(c.dir, "kwok-home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	etcdData := filepath.Join(c.dir, "etcd")
	if err := os.RemoveAll(etcdData); err != nil { // a previous attempt's data
		return err
	}
	if c.pki == nil {
		p, err := newPKI(filepath.Join(c.dir, "pki"))
		if err != nil {
			return fmt.Errorf("make certificates and keys: %w", err)
		}
		c.pki = p
	}

	etcdPort, peerPort := testenv.FreePort(t), testenv.FreePort(t)
	apiPort, kcmPort, schedPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	c.host = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	kubeconfig := filepath.Join(c.dir, "admin.kubeconfig")
	if err := c.pki.writeKubeconfig(kubeconfig, c.host); err != nil {
		return err
	}
	stagesFile := filepath.Join(c.dir, "kwok-stages.yaml")
	if err := os.WriteFile(stagesFile, []byte(kwokStages()), 0o644); err != nil {
		return err
	}

	run := func(comp Component, env []string, bin string, args ...string) error {
		args = append(args, o.args[comp]...)
		p, err := startProcess(comp, c.dir, filepath.Join(logs, string(comp)+".log"), env, bin, args...)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.procs[comp] = p
		c.mu.Unlock()
		return nil
	}

	// etcd
	if err := run(Etcd, nil, bins.Kubestack, "etcd",
		"--name=default",
		"--data-dir="+etcdData,
		"--listen-client-urls="+c.etcdURL,
		"--advertise-client-urls="+c.etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, Etcd, c.etcdURL+"/health", nil, func(b []byte) bool {
		return strings.Contains(string(b), `"health":"true"`)
	}); err != nil {
		return err
	}

	// kube-apiserver
	p := c.pki
	if err := run(APIServer, nil, bins.Kubestack, "kube-apiserver",
		"--etcd-servers="+c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(c.dir, "apiserver"),
		"--tls-cert-file="+p.certFile,
		"--tls-private-key-file="+p.keyFile,
		"--token-auth-file="+p.tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+p.saPubFile,
		"--service-account-signing-key-file="+p.saKeyFile,
		"--service-cluster-ip-range="+serviceCIDR,
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	tlsConf, err := c.tlsConfig()
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, APIServer, c.host+"/readyz", tlsConf, nil); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	c.clientset = cs

	// Controller-manager, scheduler and kwok all talk only to the apiserver.
	kubeArgs := func(port int) []string {
		return []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--leader-elect=false",
		}
	}
	if err := run(ControllerManager, nil, bins.Kubestack, append(append([]string{"kube-controller-manager"}, kubeArgs(kcmPort)...),
		"--cert-dir="+filepath.Join(c.dir, "controller-manager"),
		"--service-account-private-key-file="+p.saKeyFile,
		"--root-ca-file="+p.caFile,
		"--controllers="+strings.Join(o.controllers, ","),
		"--profiling=false",
	)...); err != nil {
		return err
	}
	if err := run(Scheduler, nil, bins.Kubestack, append(append([]string{"kube-scheduler"}, kubeArgs(schedPort)...),
		"--cert-dir="+filepath.Join(c.dir, "scheduler"),
		"--profiling=false",
	)...); err != nil {
		return err
	}
	if err := run(Kwok, []string{"HOME=" + filepath.Join(c.dir, "kwok-home")}, bins.Kwok,
		"--kubeconfig="+kubeconfig,
		"--config="+stagesFile,
		"--manage-all-nodes=true",
		"--node-lease-duration-seconds=40",
		"--cidr="+podCIDR,
	); err != nil {
		return err
	}

	c.nodes = c.nodes[:0]
	for i := 0; i < o.nodes; i++ {
		name := "kwok-node-" + strconv.Itoa(i)
		if err := c.createNode(ctx, name, o); err != nil {
			return err
		}
		c.nodes = append(c.nodes, name)
	}

	insecure := &tls.Config{InsecureSkipVerify: true} // their self-signed serving certs
	if err := c.waitHTTP(ctx, ControllerManager, "https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz", insecure, nil); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, Scheduler, "https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz", insecure, nil); err != nil {
		return err
	}
	for _, n := range c.nodes {
		if err := c.poll(ctx, Kwok, "node "+n+" Ready and untainted", func() (bool, error) {
			node, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			return nodeReady(node) && len(node.Spec.Taints) == 0, nil
		}); err != nil {
			return err
		}
	}
	return c.waitServiceAccount(ctx, "default")
}

func (c *Cluster) createNode(ctx context.Context, name string, o *options) error {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(o.nodeCPU),
		corev1.ResourceMemory: resource.MustParse(o.nodeMemory),
		corev1.ResourcePods:   resource.MustParse(strconv.Itoa(o.nodePods)),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
			Annotations: map[string]string{
				"kwok.x-k8s.io/node":           "fake",
				"node.alpha.kubernetes.io/ttl": "0",
			},
		},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
	_, err := c.clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *Cluster) waitServiceAccount(ctx context.Context, ns string) error {
	return c.poll(ctx, ControllerManager, "ServiceAccount "+ns+"/default", func() (bool, error) {
		_, err := c.clientset.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

func (c *Cluster) tlsConfig() (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.pki.caPEM) {
		return nil, errors.New("kubestack: bad CA certificate")
	}
	return &tls.Config{RootCAs: pool}, nil
}

// waitHTTP polls url until it answers 200 (and ok accepts the body). The
// admin token is sent to the apiserver only.
func (c *Cluster) waitHTTP(ctx context.Context, comp Component, url string, tlsConf *tls.Config, ok func([]byte) bool) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	defer client.CloseIdleConnections()
	last := ""
	err := c.poll(ctx, comp, url, func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		if comp == APIServer {
			req.Header.Set("Authorization", "Bearer "+c.pki.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		last = resp.Status + ": " + strings.TrimSpace(string(b))
		return resp.StatusCode == http.StatusOK && (ok == nil || ok(b)), nil
	})
	if err != nil && last != "" {
		err = fmt.Errorf("%w (last answer: %s)", err, last)
	}
	return err
}

// poll calls cond (testenv.Poll) until it is true, the context ends, or
// any started process exits; an error from cond ends it at once.
func (c *Cluster) poll(ctx context.Context, comp Component, what string, cond func() (bool, error)) error {
	errNotYet := errors.New("not yet")
	err := testenv.Poll(ctx, func() error {
		done, err := cond()
		if err != nil {
			return testenv.Stop(err)
		}
		if done {
			return nil
		}
		if err := c.exitedProcess(); err != nil {
			return testenv.Stop(err)
		}
		return errNotYet
	})
	if errors.Is(err, errNotYet) {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%s: waiting for %s: %w", comp, what, err)
	}
	return nil
}

// exitedProcess returns an error naming the first component that has exited.
func (c *Cluster) exitedProcess() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, comp := range components {
		if p := c.procs[comp]; p != nil {
			if done, err := p.exited(); done {
				return fmt.Errorf("%s exited early (%v); see %s", comp, err, p.logPath)
			}
		}
	}
	return nil
}

// portClash reports whether a component failed because its port was taken
// between testenv.FreePort and its bind.
func (c *Cluster) portClash() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if done, _ := p.exited(); done && strings.Contains(tail(p.logPath, 50), "address already in use") {
			return true
		}
	}
	return false
}

// Stop tears the stack down, by PID and in order: controller-manager,
// scheduler and kwok (in parallel) first, so the apiserver has no watches to
// drain, then the apiserver, then etcd. Each gets SIGTERM and, after a short
// grace period, SIGKILL. Stop is idempotent and runs automatically at the
// end of the test that called Start.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		began := time.Now()
		c.stopAll()
		c.stopped = time.Since(began)
	})
}

func (c *Cluster) stopAll() {
	c.mu.Lock()
	procs := c.procs
	c.procs = map[Component]*process{}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, comp := range []Component{ControllerManager, Scheduler, Kwok} {
		wg.Go(func() { procs[comp].stop(5 * time.Second) })
	}
	wg.Wait()
	procs[APIServer].stop(10 * time.Second)
	procs[Etcd].stop(5 * time.Second)
}

func (c *Cluster) logTails(t testing.TB, lines int) {
	t.Helper()
	for _, comp := range components {
		path := c.LogPath(comp)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		t.Logf("kubestack: last %d lines of %s:\n%s", lines, path, tail(path, lines))
	}
}

// RESTConfig returns a new client configuration for the admin user
// (system:masters), trusting the cluster's CA. Callers may modify it.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.host,
		BearerToken:     c.pki.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), c.pki.caPEM...)},
		QPS:             100,
		Burst:           200,
	}
}

// Kubeconfig returns the path of an admin kubeconfig file for the cluster
// (for kubectl, or code that loads kubeconfigs). It refers to the CA file
// next to it and lives only as long as the cluster.
func (c *Cluster) Kubeconfig() string { return c.pki.kubeconfig }

// Clientset returns a shared admin clientset.
func (c *Cluster) Clientset() *kubernetes.Clientset { return c.clientset }

// Host returns the apiserver's URL (https://127.0.0.1:PORT).
func (c *Cluster) Host() string { return c.host }

// EtcdURL returns etcd's client URL (http://127.0.0.1:PORT), for tests that
// need to look beneath the apiserver.
func (c *Cluster) EtcdURL() string { return c.etcdURL }

// Token returns the admin bearer token.
func (c *Cluster) Token() string { return c.pki.token }

// Dir returns the cluster's directory (logs/, etcd/, pki/, kubeconfig).
func (c *Cluster) Dir() string { return c.dir }

// Nodes returns the names of the fake Nodes.
func (c *Cluster) Nodes() []string { return slices.Clone(c.nodes) }

// LogPath returns the log file of a component (stdout and stderr).
func (c *Cluster) LogPath(comp Component) string {
	return filepath.Join(c.dir, "logs", string(comp)+".log")
}

// StartupTime is how long Start took once the binaries were available.
func (c *Cluster) StartupTime() time.Duration { return c.startup }

// RSS returns the resident memory of each running component, in bytes.
func (c *Cluster) RSS() map[Component]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[Component]uint64{}
	for comp, p := range c.procs {
		if r := p.rssBytes(); r > 0 {
			m[comp] = r
		}
	}
	return m
}

// NewNamespace creates a namespace with a generated name (prefix derived
// from the test's name), waits for its default ServiceAccount so pods can be
// created in it at once, and deletes it (without waiting) when t ends.
func (c *Cluster) NewNamespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := strings.ToLower(t.Name())
	prefix = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, prefix)
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	prefix = strings.Trim(prefix, "-") + "-"
	ns, err := c.clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubestack: create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.clientset.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	if err := c.waitServiceAccount(ctx, ns.Name); err != nil {
		t.Fatalf("kubestack: namespace %s: %v", ns.Name, err)
	}
	return ns.Name
}
