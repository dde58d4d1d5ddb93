package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/adapters/nginx"
	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/adapters/proxy/proxyd"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each wrk run")
	rounds := flag.Int("rounds", 3, "rounds (each runs every side once)")
	conns := flag.Int("connections", 32, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	bin := flag.String("bin", "bin", "directory with graylane and demoapp (make build)")
	flag.DurationVar(&think, "think", 0, "each connection waits this long (whole milliseconds) after a response before its next request (wrk's delay()): both sides then serve about the same rate below their capacity, instead of as many requests as each can")
	flag.StringVar(&proxyEnv, "proxy-env", "", "extra environment of the proxy process, e.g. GOMAXPROCS=1 (comma-separated)")
	flag.StringVar(&profileTo, "cpuprofile", "", "write a CPU profile of the proxy process during its last run to this file")
	flag.Parse()
	if err := run(*duration, *rounds, *conns, *threads, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

// profileTo, if set, receives a CPU profile of the proxy process.
var profileTo, proxyEnv string

// think is the wait between a response and a connection's next request.
var think time.Duration

// result is one wrk run.
type result struct {
	rps              float64
	p50, p90, p99    time.Duration
	requests, errors int
	// cpuPerReq is the CPU time the serving side (the proxy process, or
	// nginx's master and worker) spent per request: on a machine shared
	// with other work this is steadier than requests per second.
	cpuPerReq time.Duration
	// gcs is the proxy process's GC cycles during the run (-1: not known,
	// and for nginx)
	gcs int
}

func run(duration time.Duration, rounds, conns, threads int, bin string) error {
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make test-deps)", tool)
		}
	}
	bin, _ = filepath.Abs(bin)
	dir, err := os.MkdirTemp("", "proxybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var stop []func()
	pids := map[string]int{} // the last process started per program
	defer func() {
		for i := len(stop) - 1; i >= 0; i-- {
			stop[i]()
		}
	}()
	start := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		if strings.HasSuffix(name, "graylane") && proxyEnv != "" {
			cmd.Env = append(os.Environ(), strings.Split(proxyEnv, ",")...)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		// the whole process group: nginx's workers (and any child) too,
		// not only the process started
		stop = append(stop, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
		pids[filepath.Base(name)] = cmd.Process.Pid
		return nil
	}

	// the upstream instances: two demoapps per version
	var insts []adapters.Instance
	eps := proxy.Endpoints{}
	for _, v := range []string{"v1", "v2"} {
		for i := 0; i < 2; i++ {
			addr := freeAddr()
			if err := start(filepath.Join(bin, "demoapp"), "--version="+v, "--addr="+addr); err != nil {
				return err
			}
			insts = append(insts, adapters.Instance{ID: fmt.Sprintf("%s-%d", v, i), Version: v, Addr: addr, Ready: true})
			eps[v] = append(eps[v], addr)
		}
	}
	split := traffic.Split{Weights: []traffic.VersionWeight{{Version: "v2", Weight: 20}, {Version: "v1", Weight: 80}}}

	// the built-in proxy, as graylane runs it
	pdir := filepath.Join(dir, "proxy")
	debugAddr := freeAddr()
	if err := start(filepath.Join(bin, "graylane"), "proxy", "--dir", pdir, "--log-level", "warn", "--debug-addr", debugAddr); err != nil {
		return err
	}
	client := proxyd.NewClient(filepath.Join(pdir, proxyd.SocketName))
	proxyAddr := freeAddr()
	if err := waitUntil(10*time.Second, func() bool {
		_, _, err := client.Health(context.Background())
		return err == nil
	}); err != nil {
		return fmt.Errorf("graylane proxy did not start: %w", err)
	}
	if _, err := client.Update(context.Background(), "bench", proxy.Update{Settings: &proxy.Settings{Listen: proxyAddr}, Split: &split, Endpoints: &eps}); err != nil {
		return err
	}

	// nginx: one worker, graylane's files (Lua) on one port, a plain
	// upstream without Lua on another
	ngxLua, ngxPlain, err := startNginx(dir, insts, split, start)
	if err != nil {
		return err
	}
	for _, a := range []string{proxyAddr, ngxLua, ngxPlain} {
		if err := waitUntil(10*time.Second, func() bool { return get(a) == nil }); err != nil {
			return fmt.Errorf("%s does not answer: %w", a, err)
		}
	}

	script := filepath.Join(dir, "users.lua")
	// a different user key per request, as users hit an edge
	lua := `local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/", {["X-Gray-User"] = "user-" .. n})
end
`
	if think > 0 {
		lua += fmt.Sprintf("delay = function() return %d end\n", think.Milliseconds())
		fmt.Printf("think time %s per connection after each response\n", think)
	}
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		return err
	}
	sides := []struct{ name, addr string }{
		{"graylane proxy", proxyAddr},
		{"nginx + graylane Lua", ngxLua},
		{"nginx without Lua", ngxPlain},
	}
	all := map[string][]result{}
	fmt.Printf("wrk -t%d -c%d -d%s --latency, a new X-Gray-User per request; upstreams: 4 demoapp processes; split v2 20%% / v1 80%%\n", threads, conns, duration)
	for r := 0; r < rounds; r++ {
		for _, s := range sides {
			var prof chan error
			if profileTo != "" && r == rounds-1 && s.addr == proxyAddr {
				prof = make(chan error, 1)
				go func() { prof <- cpuProfile(debugAddr, duration-time.Second, profileTo) }()
			}
			side := pids["graylane"]
			if s.addr != proxyAddr {
				side = pids["nginx"]
			}
			cpu0, gc0 := cpuOf(side), -1
			if s.addr == proxyAddr {
				gc0 = numGC(debugAddr)
			}
			res, err := wrk(s.addr, script, threads, conns, duration)
			if res.requests > 0 {
				res.cpuPerReq = (cpuOf(side) - cpu0) / time.Duration(res.requests)
			}
			res.gcs = -1
			if gc0 >= 0 {
				if gc1 := numGC(debugAddr); gc1 >= 0 {
					res.gcs = gc1 - gc0
				}
			}
			if prof != nil {
				if perr := <-prof; perr != nil {
					return fmt.Errorf("profile: %w", perr)
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			all[s.name] = append(all[s.name], res)
			gcs := ""
			if res.gcs >= 0 {
				gcs = fmt.Sprintf("  GC cycles %d", res.gcs)
			}
			fmt.Printf("round %d  %-22s %9.0f req/s  p50 %-8s p90 %-8s p99 %-8s cpu/req %-7s errors %d of %d%s\n", r+1, s.name, res.rps, res.p50, res.p90, res.p99, res.cpuPerReq, res.errors, res.requests, gcs)
		}
	}
	med := map[string]result{}
	for name, rs := range all {
		med[name] = median(rs)
	}
	fmt.Println()
	fmt.Println("| side | req/s (median) | p50 | p90 | p99 | CPU per request | errors |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, s := range sides {
		m := med[s.name]
		errs := 0
		for _, r := range all[s.name] {
			errs += r.errors
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %s | %d |\n", s.name, m.rps, m.p50, m.p90, m.p99, m.cpuPerReq, errs)
	}
	p, n := med["graylane proxy"], med["nginx + graylane Lua"]
	fmt.Printf("\nproxy / nginx (Lua): %.2fx the requests per second; p99 %s vs %s; CPU per request %s vs %s (%.2fx)\n", p.rps/n.rps, p.p99, n.p99, p.cpuPerReq, n.cpuPerReq, float64(p.cpuPerReq)/float64(n.cpuPerReq))
	fmt.Printf("nginx Lua bucketing cost: %.0f -> %.0f req/s (%.1f%%)\n", med["nginx without Lua"].rps, n.rps, 100*(n.rps/med["nginx without Lua"].rps-1))
	return nil
}

func startNginx(dir string, insts []adapters.Instance, split traffic.Split, start func(string, ...string) error) (luaAddr, plainAddr string, err error) {
	prefix := filepath.Join(dir, "nginx")
	inc := filepath.Join(prefix, "graylane")
	for _, d := range []string{"conf", "logs", "tmp", "graylane"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			return "", "", err
		}
	}
	luaAddr, plainAddr = freeAddr(), freeAddr()
	rel := mustRelease(luaAddr)
	out, err := nginx.Render(nginx.Input{App: "bench", Split: split, Instances: insts, Traffic: rel})
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(inc, "bench.conf"), out.Conf, 0o644); err != nil {
		return "", "", err
	}
	var plain strings.Builder
	plain.WriteString("upstream plain {\n")
	for _, in := range insts {
		fmt.Fprintf(&plain, "    server %s;\n", in.Addr)
	}
	fmt.Fprintf(&plain, "    keepalive 32;\n}\nserver {\n    listen %s;\n    location / {\n        proxy_pass http://plain;\n        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n    }\n}\n", plainAddr)
	if err := os.WriteFile(filepath.Join(inc, "plain.conf"), []byte(plain.String()), 0o644); err != nil {
		return "", "", err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	conf := fmt.Sprintf(`load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
%sdaemon off;
worker_processes 1;
pid %[2]s/logs/nginx.pid;
error_log %[2]s/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include %[3]s/*.conf;
}
`, user, prefix, inc)
	confFile := filepath.Join(prefix, "conf", "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return "", "", err
	}
	if out, err := exec.Command("nginx", "-p", prefix+"/", "-c", confFile, "-t").CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("nginx -t: %v\n%s", err, out)
	}
	return luaAddr, plainAddr, start("nginx", "-p", prefix+"/", "-c", confFile)
}

var (
	reqsRe    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	totalRe   = regexp.MustCompile(`(\d+) requests in`)
	latRe     = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)`)
	sockErrRe = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	non2xxRe  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func wrk(addr, script string, threads, conns int, d time.Duration) (result, error) {
	out, err := exec.Command("wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "-s", script, "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	var r result
	if m := reqsRe.FindStringSubmatch(s); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := totalRe.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.Atoi(m[1])
	}
	for _, m := range latRe.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit)).Round(10 * time.Microsecond)
		switch m[1] {
		case "50":
			r.p50 = d
		case "90":
			r.p90 = d
		case "99":
			r.p99 = d
		}
	}
	if m := sockErrRe.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.Atoi(x)
			r.errors += n
		}
	}
	if m := non2xxRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.errors += n
	}
	if r.rps == 0 {
		return r, fmt.Errorf("no figures in wrk's output:\n%s", s)
	}
	return r, nil
}

func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return result{
		rps:       pick(func(r result) float64 { return r.rps }),
		p50:       time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p90:       time.Duration(pick(func(r result) float64 { return float64(r.p90) })),
		p99:       time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
		cpuPerReq: time.Duration(pick(func(r result) float64 { return float64(r.cpuPerReq) })),
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(addr string) error {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

func waitUntil(d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func mustRelease(listen string) *spec.Traffic {
	return &spec.Traffic{Type: "nginx", Nginx: &spec.NginxTraffic{Listen: listen}}
}

// cpuProfile saves the proxy process's CPU profile over d.
func cpuProfile(debugAddr string, d time.Duration, to string) error {
	c := &http.Client{Timeout: d + 10*time.Second}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, int(d.Seconds()))
	if strings.Contains(to, "alloc") {
		url = fmt.Sprintf("http://%s/debug/pprof/allocs?seconds=%d", debugAddr, int(d.Seconds()))
	}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(to)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// numGC is the proxy process's count of completed GC cycles (from the
// heap profile's MemStats, on its debug server), -1 when unknown.
func numGC(debugAddr string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + debugAddr + "/debug/pprof/heap?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := numGCRe.FindSubmatch(b)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

var numGCRe = regexp.MustCompile(`# NumGC = (\d+)`)

// cpuOf is the CPU time (user + system) of pid and its children still
// running (nginx's worker), from /proc.
func cpuOf(pid int) time.Duration {
	total := procCPU(pid)
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, k := range strings.Fields(string(kids)) {
		if c, err := strconv.Atoi(k); err == nil {
			total += procCPU(c)
		}
	}
	return total
}

func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
