package nacos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/internal/logx"
)

// Metadata keys of an instance that gray routing reads, as Nepxion
// Discovery names them: a gateway or client can route by version, group,
// region, env or zone.
const (
	MetaVersion = "version"
	MetaGroup   = "group"
	MetaRegion  = "region"
	MetaEnv     = "env"
	MetaZone    = "zone"
)

// DefaultServiceGroup is the Nacos group instances are registered in.
// Polaris v1.18.1 (graylane's test server) hides instances registered in
// any other group from queries and subscribers, so other groups are not
// verified.
const DefaultServiceGroup = "DEFAULT_GROUP"

// Instance is one service instance in the Nacos registry.
type Instance struct {
	Service string // Nacos service name (required)
	IP      string // required
	Port    uint64 // required
	Cluster string // Nacos cluster; "" is DEFAULT
	Weight  float64

	// Gray routing labels, stored as the metadata keys MetaVersion etc.
	Version, Group, Region, Env, Zone string
	// Metadata holds further keys to register. On instances read back it
	// holds every key the server returned, including the labels above and
	// keys the server adds itself (Polaris adds "internal-*" keys): look up
	// the keys you need, never compare the map as a whole.
	Metadata map[string]string

	// Healthy and Enabled are reported by the server on instances read back.
	Healthy, Enabled bool
}

// Addr is "ip:port".
func (i Instance) Addr() string { return net.JoinHostPort(i.IP, strconv.FormatUint(i.Port, 10)) }

func (i Instance) key() string { return i.Cluster + "/" + i.Addr() }

func (i Instance) metadata() map[string]string {
	md := maps.Clone(i.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	for k, v := range map[string]string{MetaVersion: i.Version, MetaGroup: i.Group, MetaRegion: i.Region, MetaEnv: i.Env, MetaZone: i.Zone} {
		if v != "" {
			md[k] = v
		}
	}
	return md
}

func (i Instance) param(group string) vo.RegisterInstanceParam {
	w := i.Weight
	if w <= 0 {
		w = 1
	}
	return vo.RegisterInstanceParam{
		Ip: i.IP, Port: i.Port, Weight: w, Enable: true, Healthy: true,
		Metadata: i.metadata(), ClusterName: i.Cluster, ServiceName: i.Service,
		GroupName: group, Ephemeral: true,
	}
}

func fromModel(service string, m model.Instance) Instance {
	md := maps.Clone(m.Metadata)
	return Instance{
		Service: service, IP: m.Ip, Port: m.Port, Cluster: m.ClusterName, Weight: m.Weight,
		Version: md[MetaVersion], Group: md[MetaGroup], Region: md[MetaRegion], Env: md[MetaEnv], Zone: md[MetaZone],
		Metadata: md, Healthy: m.Healthy, Enabled: m.Enable,
	}
}

// Registry registers graylane-managed instances in the Nacos registry and
// follows services' instance lists, for gray routing by metadata.
//
// Instances are ephemeral: Nacos drops them when the connection that
// registered them ends. nacos-sdk-go's gRPC client holds one registration
// per service and connection, and servers disagree on batches (Nacos
// replaces the connection's instances of the service, Polaris v1.18.1 adds
// to them), so the registry uses one connection ("slot") per instance of a
// service: the n-th instance of every service lives on slot n. Register and
// Deregister are then single-instance operations that mean the same on
// every server, and each instance comes and goes on its own, like a real
// application instance. Slot 0 also serves queries and subscriptions.
//
// Every slot keeps what it registered and registers it again on each new
// connection (see session). A Registry is safe for concurrent use.
type Registry struct {
	cfg      Config
	servers  []server
	group    string
	log      *slog.Logger
	cacheDir string
	ownCache bool

	mu    sync.Mutex // serialises Register and Deregister; guards slots
	slots []*slot

	subsMu sync.Mutex
	subs   map[*subscription]struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

// slot is one naming connection and the instances registered on it.
type slot struct {
	n    int
	sess *session[naming_client.INamingClient]

	mu    sync.Mutex
	insts map[string]Instance // service -> its instance on this slot
}

// NewRegistry connects to the Nacos registry. Like New, it waits up to ctx
// or Config.Timeout for a first connection and does not fail when the
// cluster is unreachable. Config.Group and IndexDataID are not used.
func NewRegistry(ctx context.Context, cfg Config) (*Registry, error) {
	cfg, servers, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, own, err := cfg.cacheDir("naming")
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg: cfg, servers: servers, group: DefaultServiceGroup, log: logx.OrDiscard(cfg.Logger),
		cacheDir: dir, ownCache: own,
		subs: map[*subscription]struct{}{}, closed: make(chan struct{}),
	}
	if cfg.ServiceGroup != "" {
		r.group = cfg.ServiceGroup
	}
	r.log = r.log.With("centre", "nacos", "registry", r.group)
	r.mu.Lock()
	s0, err := r.newSlot()
	r.mu.Unlock()
	if err != nil {
		if own {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, _, err := s0.sess.client(wctx); err != nil {
		r.log.Warn("nacos: registry not connected yet; continuing", "servers", cfg.Servers, "err", err)
	}
	return r, nil
}

// newSlot adds a slot (r.mu held).
func (r *Registry) newSlot() (*slot, error) {
	sl := &slot{n: len(r.slots), insts: map[string]Instance{}}
	dir := filepath.Join(r.cacheDir, fmt.Sprintf("slot-%d", sl.n))
	dial := func() (naming_client.INamingClient, error) {
		c, err := clients.NewNamingClient(r.cfg.sdkParam(r.servers, dir, true))
		if err != nil {
			return nil, err
		}
		r.cfg.bridgeSDKLog(r.log)
		return c, nil
	}
	warm := func(c naming_client.INamingClient) error { return r.restore(sl, c) }
	var err error
	creds, err := r.cfg.transportCredentials()
	if err != nil {
		return nil, err
	}
	sl.sess, err = newSession(fmt.Sprintf("naming-%d", sl.n), r.servers, creds, r.cfg.Timeout, r.log, dial, warm)
	if err != nil {
		return nil, err
	}
	r.slots = append(r.slots, sl)
	return sl, nil
}

// restore runs on every new client of a slot before it is used: it
// registers the slot's instances again and, on slot 0, re-subscribes. With
// nothing to restore it still sends one query, so that the client has
// talked to the server before nacos-sdk-go's background health check runs.
func (r *Registry) restore(sl *slot, c naming_client.INamingClient) error {
	if _, err := c.GetService(vo.GetServiceParam{ServiceName: "graylane-registry-probe", GroupName: r.group}); err != nil && (isTransportErr(err) || isTimeoutErr(err)) {
		return fmt.Errorf("query: %w", err)
	}
	sl.mu.Lock()
	insts := slices.Collect(maps.Values(sl.insts))
	sl.mu.Unlock()
	for _, in := range insts {
		if err := register(c, in.param(r.group)); err != nil {
			return err
		}
	}
	if sl.n == 0 {
		r.subsMu.Lock()
		defer r.subsMu.Unlock()
		for sub := range r.subs {
			if err := sub.attach(c); err != nil {
				return err
			}
		}
	}
	return nil
}

func register(c naming_client.INamingClient, p vo.RegisterInstanceParam) error {
	ok, err := c.RegisterInstance(p)
	if err == nil && !ok {
		err = errors.New("server refused the registration")
	}
	if err != nil {
		return fmt.Errorf("register instance %s:%d of %s: %w", p.Ip, p.Port, p.ServiceName, err)
	}
	return nil
}

func checkInstance(in Instance) error {
	switch {
	case in.Service == "":
		return errors.New("no service name")
	case in.IP == "":
		return errors.New("no IP")
	case in.Port == 0:
		return errors.New("no port")
	}
	return nil
}

// find returns the slot holding in (by service, cluster, IP and port), or
// nil (r.mu held).
func (r *Registry) find(in Instance) *slot {
	for _, sl := range r.slots {
		sl.mu.Lock()
		cur, ok := sl.insts[in.Service]
		sl.mu.Unlock()
		if ok && cur.key() == in.key() {
			return sl
		}
	}
	return nil
}

// Register registers in, or updates it if the same service, cluster, IP
// and port is registered already. It is idempotent.
func (r *Registry) Register(ctx context.Context, in Instance) error {
	if err := checkInstance(in); err != nil {
		return fmt.Errorf("nacos: register instance %s of %q: %w", in.Addr(), in.Service, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sl := r.find(in)
	if sl == nil {
		for _, cand := range r.slots {
			cand.mu.Lock()
			_, busy := cand.insts[in.Service]
			cand.mu.Unlock()
			if !busy {
				sl = cand
				break
			}
		}
	}
	if sl == nil {
		var err error
		if sl, err = r.newSlot(); err != nil {
			return fmt.Errorf("nacos: register instance %s of %s: %w", in.Addr(), in.Service, err)
		}
	}
	c, gen, err := sl.sess.client(ctx)
	if err != nil {
		return fmt.Errorf("nacos: register instance %s of %s: %w", in.Addr(), in.Service, err)
	}
	// Record first: a reconnection during the request registers it too.
	sl.mu.Lock()
	prev, had := sl.insts[in.Service]
	sl.insts[in.Service] = in
	sl.mu.Unlock()
	p := in.param(r.group)
	if _, err := exec(ctx, sl.sess, gen, func() (struct{}, error) { return struct{}{}, register(c, p) }); err != nil {
		sl.mu.Lock()
		if had {
			sl.insts[in.Service] = prev
		} else {
			delete(sl.insts, in.Service)
		}
		sl.mu.Unlock()
		if isTransportErr(err) || isTimeoutErr(err) {
			sl.sess.fail(gen, err)
		}
		return fmt.Errorf("nacos: %w: %w", configsync.ErrUnavailable, err)
	}
	return nil
}

// Deregister removes in (matched by service, cluster, IP and port).
// Removing an instance that is not registered is not an error.
func (r *Registry) Deregister(ctx context.Context, in Instance) error {
	if err := checkInstance(in); err != nil {
		return fmt.Errorf("nacos: deregister instance %s of %q: %w", in.Addr(), in.Service, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sl := r.find(in)
	if sl == nil {
		return nil
	}
	c, gen, err := sl.sess.client(ctx)
	if err != nil {
		return fmt.Errorf("nacos: deregister instance %s of %s: %w", in.Addr(), in.Service, err)
	}
	sl.mu.Lock()
	prev := sl.insts[in.Service]
	delete(sl.insts, in.Service)
	sl.mu.Unlock()
	p := vo.DeregisterInstanceParam{Ip: in.IP, Port: in.Port, Cluster: in.Cluster, ServiceName: in.Service, GroupName: r.group, Ephemeral: true}
	_, err = exec(ctx, sl.sess, gen, func() (struct{}, error) {
		ok, err := c.DeregisterInstance(p)
		if err == nil && !ok {
			err = errors.New("server refused the deregistration")
		}
		return struct{}{}, err
	})
	if err != nil {
		sl.mu.Lock()
		sl.insts[in.Service] = prev
		sl.mu.Unlock()
		if isTransportErr(err) || isTimeoutErr(err) {
			sl.sess.fail(gen, err)
		}
		return fmt.Errorf("nacos: deregister instance %s of %s: %w: %w", in.Addr(), in.Service, configsync.ErrUnavailable, err)
	}
	return nil
}

// Instances returns service's instances as the server lists them now,
// sorted by cluster and address.
func (r *Registry) Instances(ctx context.Context, service string) ([]Instance, error) {
	s0 := r.slot0()
	c, gen, err := s0.sess.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("nacos: instances of %s: %w", service, err)
	}
	svc, err := exec(ctx, s0.sess, gen, func() (model.Service, error) {
		return c.GetService(vo.GetServiceParam{ServiceName: service, GroupName: r.group})
	})
	if err != nil {
		if isTransportErr(err) || isTimeoutErr(err) {
			s0.sess.fail(gen, err)
		}
		return nil, fmt.Errorf("nacos: instances of %s: %w: %w", service, configsync.ErrUnavailable, err)
	}
	return toInstances(service, svc.Hosts), nil
}

func (r *Registry) slot0() *slot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.slots[0]
}

func toInstances(service string, hosts []model.Instance) []Instance {
	out := make([]Instance, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, fromModel(service, h))
	}
	slices.SortFunc(out, func(a, b Instance) int { return cmp.Compare(a.key(), b.key()) })
	return out
}

// Subscribe follows service's instances: the channel receives the full,
// sorted instance list first and again whenever it changes (a slow reader
// gets the latest list, not a backlog), including the empty list when the
// last instance goes. It is closed when ctx ends or the registry closes.
// During an outage it stays silent and the last list stands; after a
// reconnection the registry subscribes again and sends the list if it
// changed.
func (r *Registry) Subscribe(ctx context.Context, service string) <-chan []Instance {
	ch := make(chan []Instance)
	sub := &subscription{r: r, service: service, poke: make(chan struct{}, 1)}
	go sub.run(ctx, ch)
	return ch
}

// subscription is one Subscribe call.
type subscription struct {
	r       *Registry
	service string
	poke    chan struct{}

	mu     sync.Mutex
	client naming_client.INamingClient
	param  *vo.SubscribeParam
}

// attach subscribes on client c (r.subsMu held).
func (s *subscription) attach(c naming_client.INamingClient) error {
	p := &vo.SubscribeParam{ServiceName: s.service, GroupName: s.r.group,
		SubscribeCallback: func([]model.Instance, error) { s.wake() }}
	if err := c.Subscribe(p); err != nil {
		return fmt.Errorf("subscribe to %s: %w", s.service, err)
	}
	s.mu.Lock()
	s.client, s.param = c, p
	s.mu.Unlock()
	s.wake()
	return nil
}

func (s *subscription) wake() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

func (s *subscription) run(ctx context.Context, ch chan<- []Instance) {
	defer close(ch)
	r := s.r
	defer func() {
		r.subsMu.Lock()
		delete(r.subs, s)
		r.subsMu.Unlock()
		s.mu.Lock()
		c, p := s.client, s.param
		s.mu.Unlock()
		select {
		case <-r.closed: // every client is closed: nothing to undo
		default:
			if c == nil {
				break
			}
			s0 := r.slot0()
			cur, gen, err := s0.sess.client(context.Background())
			if err == nil && cur == c {
				_, _ = exec(context.Background(), s0.sess, gen, func() (struct{}, error) { return struct{}{}, c.Unsubscribe(p) })
			}
		}
	}()
	// Attach to the current client (later clients attach in restore).
	s0 := r.slot0()
	for {
		c, _, err := s0.sess.client(ctx)
		if err == nil {
			r.subsMu.Lock()
			r.subs[s] = struct{}{}
			err = s.attach(c)
			r.subsMu.Unlock()
			if err == nil {
				break
			}
		}
		r.log.Warn("nacos: subscribe failed; retrying", "service", s.service, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-r.closed:
			return
		case <-time.After(r.cfg.Timeout / 4):
		}
	}
	var last []Instance
	sent := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.closed:
			return
		case <-s.poke:
		}
		c, gen, err := s0.sess.client(ctx)
		if err != nil {
			continue // not connected; the next client pokes again
		}
		hosts, err := exec(ctx, s0.sess, gen, func() ([]model.Instance, error) {
			return c.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: s.service, GroupName: r.group})
		})
		if err != nil {
			continue
		}
		cur := toInstances(s.service, hosts)
		if sent && sameInstances(last, cur) {
			continue
		}
		select {
		case ch <- cur:
			last, sent = cur, true
		case <-ctx.Done():
			return
		case <-r.closed:
			return
		}
	}
}

// sameInstances compares what routing cares about: address, weight,
// health, enablement and metadata.
func sameInstances(a, b []Instance) bool {
	return slices.EqualFunc(a, b, func(x, y Instance) bool {
		return x.key() == y.key() && x.Weight == y.Weight && x.Healthy == y.Healthy && x.Enabled == y.Enabled && maps.Equal(x.Metadata, y.Metadata)
	})
}

// Healthy reports whether the registry is connected.
func (r *Registry) Healthy(ctx context.Context) error {
	if _, _, err := r.slot0().sess.client(ctx); err != nil {
		return fmt.Errorf("nacos: registry: %w", err)
	}
	return nil
}

// Close deregisters everything (by closing the connection: the instances
// are ephemeral), ends every subscription and removes the private cache
// directory. It is idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.mu.Lock()
		slots := slices.Clone(r.slots)
		r.mu.Unlock()
		for _, sl := range slots {
			sl.sess.close()
		}
		if r.ownCache {
			_ = os.RemoveAll(r.cacheDir)
		}
	})
	return nil
}
