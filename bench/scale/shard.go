package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/graylane/graylane/internal/etcdserver"
	"github.com/graylane/graylane/testsupport/deploysim"
)

// sharded measures n replicas in ha.mode shard on one etcd (in this
// process, fsync on): convergence, apps per replica, a storm's throughput,
// a kill -9 during a storm (takeover time, completion), and a replica
// joining (time to take its share).
func sharded(ctx context.Context, o options, dir string, n int, rep *report) error {
	label := fmt.Sprintf("shard: %d replicas, %d apps", n, o.shardN)
	etcd, err := etcdserver.Start(ctx, etcdserver.Config{Dir: filepath.Join(dir, "etcd"), QuotaBackendBytes: 8 << 30, ClientAddr: fmt.Sprintf("127.0.0.1:%d", freePort()),
		PeerAddr: fmt.Sprintf("127.0.0.1:%d", freePort())})
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, err := etcd.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	sim, hookURL, stopSim := startSim(deploysim.Config{Fencing: true})
	defer stopSim()
	ttl := 5 * time.Second
	start := func(id string) (*replica, error) {
		cfg := o.engineConfig()
		merge(cfg, map[string]any{
			"etcd": map[string]any{"endpoints": etcd.Endpoints()},
			"ha":   map[string]any{"mode": "shard", "ttl": ttl.String(), "id": id},
		})
		return startReplica(ctx, o.bin, dir, id, cfg)
	}
	var reps []*replica
	defer func() {
		for _, r := range reps {
			if r.alive() {
				r.stop()
			}
		}
	}()
	for i := 0; i < n; i++ {
		r, err := start(fmt.Sprintf("r%d", i))
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	rep.note(label, "load average at start %s; ha.ttl %s", loadAvg(), ttl)
	d := newDriver(cli, hookURL)
	apps := names("app", o.shardN)
	api := reps[0].api

	t0 := time.Now()
	if err := d.put(ctx, apps, "v1"); err != nil {
		return err
	}
	if o.shardStorm {
		if _, err := d.waitHealthy(ctx, api, "app-", "v1", apps, t0, 30*time.Minute); err != nil {
			return err
		}
	} else if err := d.waitCount(ctx, api, "limit=1&phase=Healthy", len(apps), 60*time.Minute); err != nil {
		return err
	}
	rep.add(label, "first releases: all Healthy", time.Since(t0).Round(100*time.Millisecond).String())
	rep.add(label, "apps per replica (the deploy system's view of who drives each app)", perReplica(sim.Drivers()))

	if !o.shardStorm {
		return shardIdle(ctx, o, cli, sim, reps, start, label, rep, func(rs []*replica) { reps = rs })
	}
	// a storm of every app: throughput
	t0 = time.Now()
	if err := d.put(ctx, apps, "v2"); err != nil {
		return err
	}
	done, err := d.waitHealthy(ctx, api, "app-", "v2", apps, t0, 30*time.Minute)
	if err != nil {
		return err
	}
	el := maxOf(done)
	rep.add(label, fmt.Sprintf("storm of all %d apps: all Healthy", len(apps)), el.Round(100*time.Millisecond).String())
	rep.add(label, "throughput", fmt.Sprintf("%.0f rollouts/min", float64(len(apps))/el.Minutes()))
	var cpu []string
	for _, r := range reps {
		if st, err := readProc(r.pid()); err == nil {
			cpu = append(cpu, fmt.Sprintf("%s %s", r.id, st))
		}
	}
	rep.add(label, "RSS per replica after the storm", fmt.Sprint(cpu))

	// kill -9 one replica during a storm
	if n > 1 {
		victim := reps[n-1]
		owned := 0
		for _, who := range sim.Drivers() {
			if who == victim.id {
				owned++
			}
		}
		t0 = time.Now()
		if err := d.put(ctx, apps, "v3"); err != nil {
			return err
		}
		sleep(ctx, 2*time.Second)
		gone := memberGone(ctx, cli, victim.id)
		killed := time.Now()
		victim.kill()
		if _, err := d.waitHealthy(ctx, api, "app-", "v3", apps, t0, 30*time.Minute); err != nil {
			return err
		}
		var take, after latencies
		goneAt := gone()
		for app, at := range sim.Taken() {
			if at.After(killed) && sim.Drivers()[app] != victim.id {
				take.add(at.Sub(killed))
				after.add(at.Sub(goneAt))
			}
		}
		rep.add(label, fmt.Sprintf("kill -9 of %s (%d apps) 2 s into a storm: kill → first request of the new owner, per app", victim.id, owned), take.String())
		reportSplit(rep, label, killed, goneAt, &after)
		rep.add(label, "storm with the kill: all Healthy", time.Since(t0).Round(100*time.Millisecond).String())
		reps = reps[:n-1]
	}

	return join(ctx, o, reps, start, label, rep, func(rs []*replica) { reps = rs })
}

// join starts one more replica and measures how fast it takes its share.
func join(ctx context.Context, o options, reps []*replica, start func(string) (*replica, error), label string, rep *report, set func([]*replica)) error {
	joined := time.Now()
	nr, err := start(fmt.Sprintf("r%d", len(reps)+1))
	if err != nil {
		return err
	}
	reps = append(reps, nr)
	set(reps)
	share := o.shardN / len(reps)
	var held int
	for time.Since(joined) < 5*time.Minute {
		held = shardHeld(nr.api)
		if held >= share*9/10 {
			break
		}
		sleep(ctx, 100*time.Millisecond)
	}
	rep.add(label, fmt.Sprintf("a replica joins (%d live): start → it holds 90%% of its share (%d)", len(reps), share), fmt.Sprintf("%s (holds %d)", time.Since(joined).Round(100*time.Millisecond), held))
	return nil
}

func maxOf(m map[string]time.Duration) time.Duration {
	var out time.Duration
	for _, d := range m {
		out = max(out, d)
	}
	return out
}

func perReplica(drivers map[string]string) string {
	count := map[string]int{}
	for _, r := range drivers {
		count[r]++
	}
	var ids []string
	for id := range count {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := ""
	for _, id := range ids {
		out += fmt.Sprintf("%s %d, ", id, count[id])
	}
	if out == "" {
		return "none"
	}
	return out[:len(out)-2]
}

// shardHeld reads how many apps a replica drives (GET /api/v1/health).
func shardHeld(api string) int {
	resp, err := http.Get(api + "/api/v1/health")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var h struct {
		Shard struct {
			Held int `json:"held"`
		} `json:"shard"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h.Shard.Held
}

// shardIdle measures idle replicas: CPU and RSS of each over a window, then
// the takeover of a killed replica's idle apps, then a join.
func shardIdle(ctx context.Context, o options, cli *clientv3.Client, sim *deploysim.Sim, reps []*replica, start func(string) (*replica, error), label string, rep *report,
	set func([]*replica)) error {
	sleep(ctx, o.idleWait)
	before := make([]procStat, len(reps))
	for i, r := range reps {
		before[i], _ = readProc(r.pid())
	}
	c0 := sim.Counts()
	sleep(ctx, o.idleWindow)
	c1 := sim.Counts()
	var per []string
	var total float64
	for i, r := range reps {
		after, err := readProc(r.pid())
		if err != nil {
			return err
		}
		cores := float64(after.cpu-before[i].cpu) / float64(after.at.Sub(before[i].at))
		total += cores
		per = append(per, fmt.Sprintf("%s %.1f %% / %s", r.id, cores*100, after))
	}
	rep.add(label, fmt.Sprintf("idle, %s after converging, over %s (load %s): CPU of one core / RSS per replica", o.idleWait, o.idleWindow, loadAvg()), fmt.Sprint(per))
	rep.add(label, "idle: CPU of all replicas together", fmt.Sprintf("%.1f %% of one core", total*100))
	rep.add(label, "idle: deploy-system requests per second", fmt.Sprintf("%.1f POST/s, %.1f GET/s",
		float64(c1.Posts-c0.Posts)/o.idleWindow.Seconds(), float64(c1.Gets-c0.Gets)/o.idleWindow.Seconds()))

	victim := reps[len(reps)-1]
	var orphans []string
	for app, who := range sim.Drivers() {
		if who == victim.id {
			orphans = append(orphans, app)
		}
	}
	gone := memberGone(ctx, cli, victim.id)
	killed := time.Now()
	victim.kill()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		drivers := sim.Drivers()
		left := 0
		for _, a := range orphans {
			if drivers[a] == victim.id {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %s's %d apps not taken over after 10 minutes", left, victim.id, len(orphans))
		}
		sleep(ctx, 100*time.Millisecond)
	}
	var take, after latencies
	goneAt := gone()
	taken := sim.Taken()
	for _, a := range orphans {
		take.add(taken[a].Sub(killed))
		after.add(taken[a].Sub(goneAt))
	}
	rep.add(label, fmt.Sprintf("kill -9 of %s (%d idle apps): kill → first request of the new owner, per app", victim.id, len(orphans)), take.String())
	reportSplit(rep, label, killed, goneAt, &after)
	reps = reps[:len(reps)-1]
	set(reps)
	return join(ctx, o, reps, start, label, rep, set)
}
