package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/etcdserver"
	"github.com/graylane/graylane/testsupport/deploysim"
)

// options are the harness' flags.
type options struct {
	bin          string
	sizes        []int
	storm        int
	probes       int
	settle       time.Duration
	window       time.Duration
	idleWait     time.Duration
	idleWindow   time.Duration
	shards       []int
	shardN       int
	shardStorm   bool
	workers      int
	extra        map[string]string
	keep         bool
	externalEtcd bool
}

func main() {
	var o options
	var sizes, shards, extra string
	flag.StringVar(&o.bin, "bin", "bin/graylane", "the graylane binary to measure")
	flag.StringVar(&sizes, "apps", "1000,5000,20000", "app counts of the single-process runs (comma-separated)")
	flag.IntVar(&o.storm, "storm", 2000, "version changes at once in the largest single-process run (0: none)")
	flag.IntVar(&o.probes, "probes", 20, "apps edited one at a time during the storm to time edit → first backend action")
	flag.DurationVar(&o.settle, "settle", 20*time.Second, "wait after convergence before measuring steady CPU and RSS")
	flag.DurationVar(&o.window, "window", 30*time.Second, "CPU measuring window")
	flag.DurationVar(&o.idleWait, "idle-wait", 0, "after the storm, wait this long (idle back-off reaching its ceiling) and measure idle CPU again over -idle-window (0: skip)")
	flag.DurationVar(&o.idleWindow, "idle-window", 5*time.Minute, "CPU measuring window after -idle-wait: one engine.idleResync, so the idle passes' waves average out")
	flag.StringVar(&shards, "shards", "", "replica counts of the shard runs, e.g. 3,5 (empty: none)")
	flag.IntVar(&o.shardN, "shard-apps", 5000, "apps in each shard run")
	flag.BoolVar(&o.shardStorm, "shard-storm", true, "shard runs: storms of every app (throughput; the kill happens during one); false: first releases, idle CPU and RSS per replica, a kill of idle apps, a join (for 100,000 apps)")
	flag.IntVar(&o.workers, "workers", 0, "engine.workers for every replica (0: graylane's default)")
	flag.StringVar(&extra, "set", "", "extra graylane config, key=value,... (e.g. engine.resync=10s)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, data)")
	flag.BoolVar(&o.externalEtcd, "external-etcd", false, "single-process runs: etcd in the harness' process instead of embedded in graylane (graylane's own RSS and CPU)")
	flag.Parse()
	var err error
	if o.sizes, err = ints(sizes); err != nil {
		fatal("-apps: %v", err)
	}
	if o.shards, err = ints(shards); err != nil {
		fatal("-shards: %v", err)
	}
	o.extra = map[string]string{}
	for _, kv := range strings.Split(extra, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			o.extra[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		fatal("%v", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	root, err := os.MkdirTemp("", "graylane-bench-scale-")
	if err != nil {
		fatal("%v", err)
	}
	if o.keep {
		fmt.Println("work directory:", root)
	} else {
		defer os.RemoveAll(root)
	}
	var rep report
	for i, n := range o.sizes {
		storm := 0
		if i == len(o.sizes)-1 {
			storm = o.storm
		}
		if err := single(ctx, o, filepath.Join(root, fmt.Sprintf("single-%d", n)), n, storm, &rep); err != nil {
			fatal("%d apps: %v", n, err)
		}
	}
	for _, r := range o.shards {
		if err := sharded(ctx, o, filepath.Join(root, fmt.Sprintf("shard-%d", r)), r, &rep); err != nil {
			fatal("%d replicas: %v", r, err)
		}
	}
	rep.print()
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-scale: "+format+"\n", args...)
	os.Exit(1)
}

// engineConfig is the graylane config every replica gets from the flags.
func (o options) engineConfig() map[string]any {
	cfg := map[string]any{}
	if o.workers > 0 {
		cfg["engine"] = map[string]any{"workers": o.workers}
	}
	for k, v := range o.extra {
		parts := strings.Split(k, ".")
		m := cfg
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	return cfg
}

// startSim serves a deploy system on a loopback port.
func startSim(cfg deploysim.Config) (*deploysim.Sim, string, func()) {
	sim := deploysim.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("%v", err)
	}
	srv := &http.Server{Handler: sim}
	go func() { _ = srv.Serve(ln) }()
	return sim, "http://" + ln.Addr().String(), func() { srv.Close() }
}

// single measures one graylane with embedded etcd holding n apps, then
// (storm > 0) a storm of version changes.
func single(ctx context.Context, o options, dir string, n, storm int, rep *report) error {
	sim, hookURL, stopSim := startSim(deploysim.Config{})
	defer stopSim()
	cfg := o.engineConfig()
	endpoint := ""
	if o.externalEtcd {
		// graylane's own memory and CPU, without etcd's (as in HA setups)
		etcd, err := etcdserver.Start(ctx, etcdserver.Config{Dir: filepath.Join(dir, "etcd"), QuotaBackendBytes: 8 << 30, ClientAddr: fmt.Sprintf("127.0.0.1:%d", freePort()),
			PeerAddr: fmt.Sprintf("127.0.0.1:%d", freePort())})
		if err != nil {
			return err
		}
		defer etcd.Close()
		cfg["etcd"] = map[string]any{"endpoints": etcd.Endpoints()}
		endpoint = etcd.ClientAddr()
	}
	r, err := startReplica(ctx, o.bin, dir, "single", cfg)
	if err != nil {
		return err
	}
	defer r.stop()
	if endpoint == "" {
		endpoint = r.etcd
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	d := newDriver(cli, hookURL)
	smp := newSampler(r.pid())
	defer smp.close()
	label := fmt.Sprintf("%d apps", n)
	if o.externalEtcd {
		label += " (etcd in another process)"
	}
	rep.note(label, "load average at start %s", loadAvg())

	probes := names("probe", min(o.probes, n/10))
	stormApps := names("storm", storm)
	idle := names("idle", n-len(probes)-len(stormApps))
	all := append(append(append([]string{}, idle...), stormApps...), probes...)

	// convergence: every spec written at once, first releases
	start := time.Now()
	if err := d.put(ctx, all, "v1"); err != nil {
		return err
	}
	wrote := time.Since(start)
	for {
		l, _, err := d.list(ctx, r.api, "limit=1&phase=Healthy")
		if err == nil && l.Total == n {
			break
		}
		if time.Since(start) > 30*time.Minute {
			return fmt.Errorf("not all %d apps Healthy after 30 minutes (%d)", n, l.Total)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	rep.add(label, fmt.Sprintf("time until all Healthy (specs written in %s)", wrote.Round(time.Millisecond)), time.Since(start).Round(100*time.Millisecond).String())
	rep.add(label, "peak RSS while converging", smp.resetPeak())

	// steady state
	sleep(ctx, o.settle)
	c0 := sim.Counts()
	cores, rss, err := cpuOver(ctx, r.pid(), o.window)
	if err != nil {
		return err
	}
	c1 := sim.Counts()
	rep.add(label, "deploy-system requests per second while idle", fmt.Sprintf("%.1f POST/s, %.1f GET/s",
		float64(c1.Posts-c0.Posts)/o.window.Seconds(), float64(c1.Gets-c0.Gets)/o.window.Seconds()))
	rep.add(label, fmt.Sprintf("CPU while idle, %s after converging, over %s (load %s)", o.settle, o.window, loadAvg()), fmt.Sprintf("%.1f %% of one core", cores*100))
	rep.add(label, "RSS steady", rss.String())
	if st, err := cli.Status(ctx, endpoint); err == nil {
		rep.add(label, "etcd database", mb(st.DbSize))
	}

	// API latencies while idle
	for _, q := range []string{"limit=100", "limit=100&phase=Healthy&q=idle-1", "limit=100&attention=true"} {
		var lat latencies
		for i := 0; i < 200; i++ {
			if _, el, err := d.list(ctx, r.api, q); err == nil {
				lat.add(el)
			}
		}
		rep.add(label, "GET /api/v1/apps?"+q, lat.String())
	}
	var getLat latencies
	for i := 0; i < 200; i++ {
		if el, err := d.get(ctx, r.api, randomApp(all)); err == nil {
			getLat.add(el)
		}
	}
	rep.add(label, "GET /api/v1/apps/{app}", getLat.String())
	rep.add(label, "peak RSS during the API reads", smp.resetPeak())
	if storm == 0 {
		return nil
	}

	// the storm
	slabel := fmt.Sprintf("storm: %d of %d apps", storm, n)
	rep.note(slabel, "load average at start %s", loadAvg())
	smp.resetPeak()
	lctx, stopLoads := context.WithCancel(ctx)
	defer stopLoads()
	var edit, get, list, first latencies
	var wgs []interface{ Wait() }
	wgs = append(wgs,
		loop(lctx, 20*time.Millisecond, func() {
			if el, err := d.get(lctx, r.api, randomApp(all)); err == nil {
				get.add(el)
			}
		}),
		loop(lctx, 50*time.Millisecond, func() {
			if _, el, err := d.list(lctx, r.api, "limit=100"); err == nil {
				list.add(el)
			}
		}))
	acted := make([]<-chan time.Time, len(stormApps))
	for i, a := range stormApps {
		acted[i] = sim.Expect(a, "v2")
	}
	start = time.Now()
	if err := d.put(ctx, stormApps, "v2"); err != nil {
		return err
	}
	// the storm's own edits: each one's first backend action
	for _, ch := range acted {
		select {
		case at := <-ch:
			first.add(at.Sub(start))
		case <-time.After(10 * time.Minute):
			return fmt.Errorf("a storm edit was not acted on within 10 minutes")
		}
	}
	// probe edits while the 2,000 rollouts are in flight
	wgs = append(wgs, d.probeEdits(lctx, sim, probes, 200*time.Millisecond, &edit))
	done, err := d.waitHealthy(ctx, r.api, "storm-", "v2", stormApps, start, 20*time.Minute)
	stopLoads()
	for _, w := range wgs {
		w.Wait()
	}
	if err != nil {
		return err
	}
	var comp latencies
	for _, t := range done {
		comp.add(t)
	}
	rep.add(slabel, "version change → Healthy, per rollout (500 ms resolution)", comp.String())
	rep.add(slabel, "the storm's own edits (written at once): edit → first backend action", first.String())
	rep.add(slabel, "edit → first backend action, one probe edit at a time while the storm's rollouts are in flight", edit.String())
	rep.add(slabel, "GET /api/v1/apps/{app} during the storm", get.String())
	rep.add(slabel, "GET /api/v1/apps?limit=100 during the storm", list.String())
	rep.add(slabel, "peak RSS during the storm", smp.resetPeak())
	c := sim.Counts()
	rep.add(slabel, "deploy-system requests over the whole run", fmt.Sprintf("%d POST, %d GET", c.Posts, c.Gets))

	if o.idleWait > 0 {
		sleep(ctx, o.idleWait)
		before := sim.Counts()
		cores, rss, err := cpuOver(ctx, r.pid(), o.idleWindow)
		if err != nil {
			return err
		}
		after := sim.Counts()
		rep.add(label, fmt.Sprintf("CPU while idle, %s after the storm, over %s (load %s)", o.idleWait, o.idleWindow, loadAvg()), fmt.Sprintf("%.1f %% of one core", cores*100))
		rep.add(label, "RSS idle after the storm", rss.String())
		rep.add(label, "deploy-system requests per second while idle, after the storm", fmt.Sprintf("%.1f POST/s, %.1f GET/s",
			float64(after.Posts-before.Posts)/o.idleWindow.Seconds(), float64(after.Gets-before.Gets)/o.idleWindow.Seconds()))
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// report collects figures in order.
type report struct {
	rows []row
}

type row struct {
	section, what, figure string
}

// add records one figure.
func (r *report) add(section, what, figure string) {
	r.rows = append(r.rows, row{section, what, figure})
	fmt.Printf("FIGURE %s | %s | %s\n", section, what, figure)
}

func (r *report) note(section, format string, args ...any) {
	r.rows = append(r.rows, row{section, fmt.Sprintf(format, args...), ""})
	fmt.Printf("NOTE %s | %s\n", section, fmt.Sprintf(format, args...))
}

func (r *report) print() {
	fmt.Println()
	var sections []string
	seen := map[string]bool{}
	for _, x := range r.rows {
		if !seen[x.section] {
			seen[x.section] = true
			sections = append(sections, x.section)
		}
	}
	for _, s := range sections {
		fmt.Printf("### %s\n\n| what | figure |\n|---|---|\n", s)
		for _, x := range r.rows {
			if x.section == s {
				fmt.Printf("| %s | %s |\n", x.what, x.figure)
			}
		}
		fmt.Println()
	}
}
