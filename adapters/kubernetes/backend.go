package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/internal/logx"
	"github.com/graylane/graylane/spec"
)

// Errors.
var (
	// ErrNotManaged is returned (wrapped) when an object graylane would
	// change exists without the annotation graylane.io/managed-by: graylane.
	// graylane leaves it alone.
	ErrNotManaged = errors.New("exists but is not managed by graylane")
	// ErrDrift is returned (wrapped) when an object graylane manages was
	// changed behind its back and graylane's own desired state for it did
	// not change since: graylane reports the drift and does not overwrite
	// it. Removing the object's graylane.io/applied annotation hands it back.
	ErrDrift = errors.New("changed outside graylane (drift)")
	// ErrNamespaceNotWatched is returned (wrapped) when a spec names a
	// namespace outside Config.Namespaces.
	ErrNamespaceNotWatched = errors.New("namespace is not watched by this graylane")
)

// Defaults of Config.
const (
	DefaultSyncTimeout = 30 * time.Second
	DefaultResync      = 10 * time.Minute
)

// Config configures a Backend.
type Config struct {
	// Client talks to the cluster (required). See RESTConfig.
	Client kubernetes.Interface
	// Namespaces limits what graylane watches and changes; empty means
	// every namespace (which needs a ClusterRole, see
	// deployments/kubernetes). A spec naming another namespace fails with
	// ErrNamespaceNotWatched.
	Namespaces []string
	// SyncTimeout bounds each wait for the informers' first listing (default
	// 30s): an unreachable API server fails Observe and Apply instead of
	// blocking them.
	SyncTimeout time.Duration
	// Resync is the informers' resync period (default 10m).
	Resync time.Duration
	// Logger receives warnings about drift and stalled Deployments
	// (default: discarded, logx.OrDiscard).
	Logger *slog.Logger
}

// Backend runs apps as Deployments. See the package doc.
type Backend struct {
	cfg Config
	cs  kubernetes.Interface
	log *slog.Logger

	startOnce sync.Once
	stop      chan struct{}
	closeOnce sync.Once
	podInf    []cache.SharedIndexInformer
	depInf    []cache.SharedIndexInformer

	mu        sync.Mutex
	listeners adapters.Listeners
	reported  map[string]string // namespace/deployment -> problem last logged
	// seen is, per app, the most pods of each namespace and version
	// (seenKey) Observe reported since the app's last Apply: what the
	// engine planned that Apply from (rollingView).
	seen map[string]map[string]int
}

// Interface guards.
var (
	_ adapters.Backend        = (*Backend)(nil)
	_ adapters.Notifier       = (*Backend)(nil)
	_ adapters.ChangeNotifier = (*Backend)(nil)
	_ adapters.Forgetter      = (*Backend)(nil)
)

const indexApp = "app"

// New returns a Backend. It does not contact the cluster: the informers
// start on first use.
func New(cfg Config) (*Backend, error) {
	if cfg.Client == nil {
		return nil, errors.New("kubernetes backend: Config.Client is required")
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	cfg.Logger = logx.OrDiscard(cfg.Logger)
	cfg.Namespaces = slices.Clone(cfg.Namespaces)
	return &Backend{
		cfg:      cfg,
		cs:       cfg.Client,
		log:      cfg.Logger.With("backend", "kubernetes"),
		stop:     make(chan struct{}),
		reported: map[string]string{},
		seen:     map[string]map[string]int{},
	}, nil
}

// Close stops the informers. Deployments and pods keep running.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() { close(b.stop) })
	return nil
}

// Notify registers fn, called with an app's name whenever one of its pods
// or Deployments changes (from the informers' watches).
func (b *Backend) Notify(fn func(app string)) { b.listeners.Add(fn) }

func (b *Backend) fire(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	app := m.GetLabels()[LabelApp]
	if app == "" {
		return
	}
	b.listeners.Fire(app)
}

// changed reports whether an update matters to the engine: a pod's
// readiness, address, phase or deletion, or any change of a Deployment
// other than a resync.
func changed(o, n any) bool {
	switch op := o.(type) {
	case *corev1.Pod:
		np, ok := n.(*corev1.Pod)
		return !ok || podReady(op) != podReady(np) || op.Status.PodIP != np.Status.PodIP ||
			op.Status.Phase != np.Status.Phase || (op.DeletionTimestamp == nil) != (np.DeletionTimestamp == nil)
	case *appsv1.Deployment:
		nd, ok := n.(*appsv1.Deployment)
		return !ok || op.ResourceVersion != nd.ResourceVersion
	}
	return true
}

// namespaces returns the namespaces watched ("" is all).
func (b *Backend) namespaces() []string {
	if len(b.cfg.Namespaces) == 0 {
		return []string{metav1.NamespaceAll}
	}
	return b.cfg.Namespaces
}

func (b *Backend) watches(ns string) bool {
	return len(b.cfg.Namespaces) == 0 || slices.Contains(b.cfg.Namespaces, ns)
}

func appIndex(obj any) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	if a := m.GetLabels()[LabelApp]; a != "" {
		return []string{a}, nil
	}
	return nil, nil
}

// caches starts the informers once and waits (at most SyncTimeout) for
// their first listing.
func (b *Backend) caches(ctx context.Context) error {
	b.startOnce.Do(func() {
		handler := cache.ResourceEventHandlerFuncs{
			AddFunc: b.fire,
			UpdateFunc: func(o, n any) {
				if changed(o, n) {
					b.fire(n)
				}
			},
			DeleteFunc: b.fire,
		}
		for _, ns := range b.namespaces() {
			f := informers.NewSharedInformerFactoryWithOptions(b.cs, b.cfg.Resync,
				informers.WithNamespace(ns),
				informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelApp }))
			pi := f.Core().V1().Pods().Informer()
			di := f.Apps().V1().Deployments().Informer()
			for _, inf := range []cache.SharedIndexInformer{pi, di} {
				_ = inf.AddIndexers(cache.Indexers{indexApp: appIndex})
				_, _ = inf.AddEventHandler(handler)
			}
			b.podInf = append(b.podInf, pi)
			b.depInf = append(b.depInf, di)
			f.Start(b.stop)
		}
	})
	var synced []cache.InformerSynced
	all := true
	for _, inf := range append(slices.Clone(b.podInf), b.depInf...) {
		synced = append(synced, inf.HasSynced)
		all = all && inf.HasSynced()
	}
	if all {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, b.cfg.SyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), synced...) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("kubernetes informers not synced within %s: is the API server reachable and may graylane list pods and deployments?", b.cfg.SyncTimeout)
	}
	return nil
}

// cachedPods returns the app's pods from the informers' caches.
func (b *Backend) cachedPods(app string) []*corev1.Pod {
	var out []*corev1.Pod
	for _, inf := range b.podInf {
		objs, _ := inf.GetIndexer().ByIndex(indexApp, app)
		for _, o := range objs {
			if p, ok := o.(*corev1.Pod); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// cachedDeployments returns the app's Deployments from the caches.
func (b *Backend) cachedDeployments(app string) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, inf := range b.depInf {
		objs, _ := inf.GetIndexer().ByIndex(indexApp, app)
		for _, o := range objs {
			if d, ok := o.(*appsv1.Deployment); ok {
				out = append(out, d)
			}
		}
	}
	return out
}

func managed(m metav1.Object) bool { return m.GetAnnotations()[AnnotationManagedBy] == ManagedBy }
func created(m metav1.Object) bool { return m.GetAnnotations()[AnnotationCreated] == "true" }

// Forget deletes the Deployments and Services graylane created for app
// (after the engine scaled it to zero). Objects an operator handed over are
// left in place, scaled to zero.
func (b *Backend) Forget(ctx context.Context, app string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sel := LabelApp + "=" + app
	for _, ns := range b.namespaces() {
		deps, err := b.cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return fmt.Errorf("forget %s: list deployments in %q: %w", app, ns, err)
		}
		for i := range deps.Items {
			d := &deps.Items[i]
			if !managed(d) || !created(d) {
				continue
			}
			if err := b.cs.AppsV1().Deployments(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("forget %s: delete deployment %s/%s: %w", app, d.Namespace, d.Name, err)
			}
			b.log.Info("deleted deployment", "app", app, "namespace", d.Namespace, "deployment", d.Name)
			b.mu.Lock()
			delete(b.reported, d.Namespace+"/"+d.Name)
			b.mu.Unlock()
		}
		if err := b.forgetServices(ctx, ns, app); err != nil {
			return err
		}
	}
	b.mu.Lock()
	delete(b.seen, app)
	b.mu.Unlock()
	return nil
}

func (b *Backend) forgetServices(ctx context.Context, ns, app string) error {
	svcs, err := b.cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "=" + app})
	if err != nil {
		return fmt.Errorf("forget %s: list services in %q: %w", app, ns, err)
	}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if !managed(s) || !created(s) {
			continue
		}
		if err := b.cs.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("forget %s: delete service %s/%s: %w", app, s.Namespace, s.Name, err)
		}
	}
	return nil
}

// kube returns the release's kubernetes section, or an error.
func kube(rel *spec.Release) (*spec.KubernetesBackend, error) {
	if rel == nil || rel.Backend.Kubernetes == nil {
		return nil, fmt.Errorf("release has no backend.kubernetes section: %w", adapters.ErrUnsupported)
	}
	return rel.Backend.Kubernetes, nil
}

// NotifiesEveryChange implements adapters.ChangeNotifier: the informers notify every change of the app's Deployments and pods, whoever made it.
func (b *Backend) NotifiesEveryChange() bool { return true }
