package nginx

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/graylane/graylane/adapters"
	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/spec"
	"github.com/graylane/graylane/traffic"
)

// Default sticky names, as documented on spec.Traffic.
const (
	DefaultStickyHeader = "X-Gray-User"
	DefaultStickyCookie = "gray_user"
	// PreviewHeader reaches Split.Preview whatever the weights.
	PreviewHeader = "X-Graylane-Version"
	// StatusPath is the location of the per-app status server that answers
	// with the digest of the configuration in force.
	StatusPath = "/graylane/split"
	// ProbePath answers "<digest> <upstream> <n-d-version>" for the
	// request's user key: graylane checks the Lua's decision against its
	// own.
	ProbePath = "/graylane/probe"
)

// Header lines of a rendered file. Weights reads the split back from them.
const (
	splitPrefix  = "# graylane-split: "
	digestPrefix = "# graylane-digest: "
)

var (
	headerVarPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	cookieVarPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	addrHostPattern  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
	secretPattern    = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]{16,256}$`)
)

// Input is everything one app's include file is rendered from.
type Input struct {
	App   string
	Split traffic.Split
	// Instances are the app's instances; only ready ones with an address
	// become upstream servers.
	Instances []adapters.Instance
	// Traffic is the release's traffic section (sticky names, nginx
	// options); nil means defaults.
	Traffic *spec.Traffic
	// StatusAddr, if set, gets a status server answering StatusPath for
	// Host StatusHost(App) with the file's digest, and ProbePath with the
	// routing decision of the request's user key (graylane checks it
	// against its own after every reload).
	StatusAddr string
	// Salt seeds the user bucketing (gray.salt; "" = spec.DefaultGraySalt).
	Salt string
	// TrustSecret is the value of traffic.trust.header that marks a
	// trusted caller (read from graylane's environment).
	TrustSecret string
}

// Rendered is an app's two files.
type Rendered struct {
	// Conf is {app}.conf, included in nginx's http block: upstreams, the
	// trust maps, the optional server block and the status server.
	Conf []byte
	// Location is {app}.location, included in a location of the
	// operator's own server block before proxy_pass http://$graylane_<app>;
	// it decides each request's version (in Lua) and sets the forwarded
	// headers.
	Location []byte
	// Digest covers both and is what the status server answers.
	Digest string
}

// Var returns the nginx variable naming the upstream an app's request goes
// to: $graylane_<app> with '-' replaced by '_'. An operator's own server
// block routes with `proxy_pass http://$graylane_demo;`.
func Var(app string) string { return "$" + ident(app) }

func ident(app string) string { return "graylane_" + strings.ReplaceAll(app, "-", "_") }

// StatusHost is the server_name of an app's status server. It is short and
// fixed-length so it fits nginx's default server_names_hash_bucket_size.
func StatusHost(app string) string {
	sum := sha256.Sum256([]byte(app))
	return "s" + hex.EncodeToString(sum[:6]) + ".graylane"
}

// Render produces an app's files and their digest. The digest covers both
// files (but its own line) and is what the status server returns.
//
// Routing, in the order nginx evaluates it (the Lua of the location file,
// see lua.go, then the upstreams):
//
//  1. A trusted caller (traffic.trust: its address in clientIPs, or the
//     secret header) reaches Split.Preview with X-Graylane-Version, or pins
//     the version its n-d-version names for the app when the split routes
//     to it.
//  2. Otherwise the user key (the sticky header, else the sticky cookie,
//     trimmed) gets its bucket 0..9999 by the bucketing of docs/gray.md
//     with the app's salt, computed in Lua, the same as graylane's proxy
//     and SDK; a request without a key gets a random bucket. The bucket
//     picks the first version, in Split order (newest first), whose
//     cumulative weight*100 exceeds it: a user who reached the canary at
//     10% stays on it at 20%.
//  3. The request goes to the version's upstream, with n-d-version set to
//     the decision ({"app":"version"}) so downstream services follow it;
//     an untrusted caller's X-Graylane-Version, n-d-version-weight,
//     n-d-region and n-d-address are removed, and the trust header never
//     leaves nginx.
//
// Each version's upstream lists its ready instances and, as backup servers,
// those of the other weighted versions, so a version whose instances all
// fail sends its share to the others; a version with no ready instance at
// all gets the other weighted versions' instances as its servers, or, if
// none of those is ready either, every ready instance of any version.
func Render(in Input) (Rendered, error) {
	if err := spec.CheckApp(in.App); err != nil {
		return Rendered{}, fmt.Errorf("app: %w", err)
	}
	if err := traffic.ValidateSplit(in.Split); err != nil {
		return Rendered{}, err
	}
	ngx := (*spec.NginxTraffic)(nil)
	var trust *spec.TrafficTrust
	header, cookie := DefaultStickyHeader, DefaultStickyCookie
	if in.Traffic != nil {
		ngx, trust = in.Traffic.Nginx, in.Traffic.Trust
		if in.Traffic.StickyHeader != "" {
			header = in.Traffic.StickyHeader
		}
		if in.Traffic.StickyCookie != "" {
			cookie = in.Traffic.StickyCookie
		}
	}
	if !headerVarPattern.MatchString(header) {
		return Rendered{}, fmt.Errorf("sticky header %q has characters nginx variables cannot name (use A-Z a-z 0-9 - _): %w", header, adapters.ErrUnsupported)
	}
	if !cookieVarPattern.MatchString(cookie) {
		return Rendered{}, fmt.Errorf("sticky cookie %q has characters graylane's nginx routing does not accept (use A-Z a-z 0-9 _): %w", cookie, adapters.ErrUnsupported)
	}
	salt := in.Salt
	if salt == "" {
		salt = spec.DefaultGraySalt
	}
	if !spec.GraySaltPattern.MatchString(salt) {
		return Rendered{}, fmt.Errorf("salt %q is not a salt (A-Z a-z 0-9 . _ -, 1 to 64): %w", salt, spec.ErrInvalid)
	}
	if trust != nil && trust.Header != "" {
		if !headerVarPattern.MatchString(trust.Header) {
			return Rendered{}, fmt.Errorf("trust header %q has characters nginx variables cannot name (use A-Z a-z 0-9 - _): %w", trust.Header, adapters.ErrUnsupported)
		}
		if !secretPattern.MatchString(in.TrustSecret) {
			return Rendered{}, fmt.Errorf("the trust secret must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ + / = - for nginx: %w", adapters.ErrUnsupported)
		}
	}

	// Versions that get an upstream: weighted ones in split order, then the
	// preview.
	var versions []string
	seen := map[string]bool{}
	for _, w := range in.Split.Weights {
		if err := spec.CheckVersion(w.Version); err != nil {
			return Rendered{}, fmt.Errorf("split version: %w", err)
		}
		if w.Weight > 0 && !seen[w.Version] {
			versions = append(versions, w.Version)
			seen[w.Version] = true
		}
	}
	if p := in.Split.Preview; p != "" {
		if err := spec.CheckVersion(p); err != nil {
			return Rendered{}, fmt.Errorf("preview version: %w", err)
		}
		if !seen[p] {
			versions = append(versions, p)
			seen[p] = true
		}
	}
	ready := map[string][]string{} // version -> sorted unique addresses
	var all []string
	for _, inst := range in.Instances {
		if !inst.Ready || inst.Addr == "" {
			continue
		}
		if err := checkAddr(inst.Addr); err != nil {
			return Rendered{}, fmt.Errorf("instance %s: %w", inst.ID, err)
		}
		ready[inst.Version] = append(ready[inst.Version], inst.Addr)
		all = append(all, inst.Addr)
	}
	for v := range ready {
		ready[v] = uniqSorted(ready[v])
	}
	all = uniqSorted(all)
	weighted := map[string]bool{}
	for _, w := range in.Split.Weights {
		if w.Weight > 0 {
			weighted[w.Version] = true
		}
	}
	// others returns the ready instances of the other weighted versions,
	// or, when there are none, of any other version (the last resort that
	// keeps answering while, say, hosts move to a version not routed yet).
	others := func(v string) (out []string, lastResort bool) {
		own := ready[v]
		for _, a := range all {
			for ov := range weighted {
				if ov != v && contains(ready[ov], a) && !contains(own, a) && !contains(out, a) {
					out = append(out, a)
				}
			}
		}
		if len(out) > 0 || len(own) > 0 {
			sort.Strings(out)
			return out, false
		}
		for _, a := range all {
			out = append(out, a)
		}
		return out, true
	}

	app := ident(in.App)
	upName := func(i int) string { return app + "_" + strconv.Itoa(i) }
	srv := fmt.Sprintf("max_fails=%d fail_timeout=%s", ngx.EffectiveMaxFails(), dur(ngx.EffectiveFailTimeout()))

	var b strings.Builder
	splitJSON, _ := json.Marshal(in.Split)
	fmt.Fprintf(&b, "# Managed by graylane for app %s: do not edit; rewritten on every change.\n", in.App)
	fmt.Fprintf(&b, "%s%s\n", splitPrefix, splitJSON)
	b.WriteString(digestPrefix + "@DIGEST@\n")
	fmt.Fprintf(&b, "# Needs ngx_http_lua_module (Debian: libnginx-mod-http-lua): %s\n", LoadModules)
	fmt.Fprintf(&b, "# Route a location of your own server: include %s.location; proxy_pass http://%s;\n", in.App, Var(in.App))

	for i, v := range versions {
		own := ready[v]
		alt, lastResort := others(v)
		fmt.Fprintf(&b, "\n# version %s: weight %d, %d ready instance(s)\n", v, in.Split.Map()[v], len(own))
		fmt.Fprintf(&b, "upstream %s {\n", upName(i))
		switch {
		case len(own) > 0:
			for _, a := range own {
				fmt.Fprintf(&b, "    server %s %s;\n", a, srv)
			}
			for _, a := range alt {
				fmt.Fprintf(&b, "    server %s %s backup;\n", a, srv)
			}
		case len(alt) > 0 && !lastResort:
			b.WriteString("    # no ready instance of this version: its share goes to the other weighted versions\n")
			for _, a := range alt {
				fmt.Fprintf(&b, "    server %s %s;\n", a, srv)
			}
		case len(alt) > 0:
			b.WriteString("    # no ready instance of any weighted version: every ready instance answers\n")
			for _, a := range alt {
				fmt.Fprintf(&b, "    server %s %s;\n", a, srv)
			}
		default:
			b.WriteString("    # no ready instance of any version: nginx answers 502\n")
			b.WriteString("    server 127.0.0.1:1 down;\n")
		}
		b.WriteString("    keepalive 32;\n")
		b.WriteString("}\n")
	}
	if len(versions) == 0 || len(in.Split.Weights) == 0 || in.Split.Total() == 0 {
		fmt.Fprintf(&b, "\n# no version receives traffic yet: nginx answers 502\n")
		fmt.Fprintf(&b, "upstream %s_none {\n    server 127.0.0.1:1 down;\n}\n", app)
	}

	writeTrust(&b, app, trust, in.TrustSecret)

	loc := locationSnippet(luaInput{
		app: in.App, ident: app, header: header, cookie: cookie, hasher: gray.NewHasher(salt),
		split: in.Split, upstreams: func(v string) string {
			if i := indexOf(versions, v); i >= 0 {
				return upName(i)
			}
			return app + "_none"
		}, trustHeader: trustHeaderOf(trust),
	})
	locSum := sha256.Sum256([]byte(loc))
	fmt.Fprintf(&b, "\n# %s.location (digest %s) decides each request in Lua; graylane's own server blocks inline it.\n", in.App, hex.EncodeToString(locSum[:8]))

	if ngx != nil && ngx.Listen != "" {
		name := ngx.ServerName
		if name == "" {
			name = "_"
		}
		fmt.Fprintf(&b, "\nserver {\n    listen %s;\n    server_name %s;\n", ngx.Listen, name)
		b.WriteString("    location / {\n")
		b.WriteString(indent(loc, "        "))
		fmt.Fprintf(&b, "        proxy_pass http://%s;\n", Var(in.App))
		b.WriteString("        proxy_http_version 1.1;\n")
		b.WriteString("        proxy_set_header Connection \"\";\n")
		b.WriteString("        proxy_set_header Host $host;\n")
		b.WriteString("        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n")
		fmt.Fprintf(&b, "        proxy_connect_timeout %s;\n", dur(ngx.EffectiveConnectTimeout()))
		b.WriteString("        proxy_next_upstream error timeout http_502 http_503 http_504;\n")
		b.WriteString("    }\n}\n")
	}
	if in.StatusAddr != "" {
		fmt.Fprintf(&b, "\n# Status: graylane polls this after a reload until it answers this file's digest,\n")
		fmt.Fprintf(&b, "# then checks the Lua decides a probe key as graylane does.\n")
		fmt.Fprintf(&b, "server {\n    listen %s;\n    server_name %s;\n", in.StatusAddr, StatusHost(in.App))
		fmt.Fprintf(&b, "    location = %s {\n        default_type text/plain;\n        return 200 \"@DIGEST@\\n\";\n    }\n", StatusPath)
		fmt.Fprintf(&b, "    location = %s {\n", ProbePath)
		b.WriteString(indent(loc, "        "))
		b.WriteString("        default_type text/plain;\n")
		fmt.Fprintf(&b, "        return 200 \"@DIGEST@ %s $%s_nd\\n\";\n", Var(in.App), app)
		b.WriteString("    }\n}\n")
	}
	body := b.String()
	sum := sha256.Sum256([]byte(body + "\x00" + loc))
	digest := hex.EncodeToString(sum[:12])
	return Rendered{Conf: []byte(strings.ReplaceAll(body, "@DIGEST@", digest)), Location: []byte(loc), Digest: digest}, nil
}

// LoadModules are the lines nginx.conf needs (main context, before events)
// for graylane's files: the NDK and ngx_http_lua_module, from Debian's
// libnginx-mod-http-lua (whose package already adds them to
// /etc/nginx/modules-enabled).
const LoadModules = "load_module modules/ndk_http_module.so; load_module modules/ngx_http_lua_module.so;"

// writeTrust renders the maps that say whether a request comes from a
// trusted caller ($graylane_<app>_trusted) and which steering headers it
// may send on.
func writeTrust(b *strings.Builder, app string, trust *spec.TrafficTrust, secret string) {
	fmt.Fprintf(b, "\n# Trusted callers (traffic.trust) may reach the preview and pin versions; others' steering headers are dropped.\n")
	src := "0"
	if trust != nil && len(trust.ClientIPs) > 0 {
		fmt.Fprintf(b, "geo $%s_trusted_ip {\n    default 0;\n", app)
		for _, c := range trust.ClientIPs {
			p, _ := spec.ParseClientIP(c)
			fmt.Fprintf(b, "    %s 1;\n", p)
		}
		b.WriteString("}\n")
		src = "$" + app + "_trusted_ip"
	}
	if trust != nil && trust.Header != "" {
		fmt.Fprintf(b, "map $http_%s $%s_trusted {\n    \"%s\" 1;\n    default %s;\n}\n", headerVar(trust.Header), app, secret, src)
	} else {
		fmt.Fprintf(b, "map $http_%s $%s_trusted {\n    default %s;\n}\n", headerVar(PreviewHeader), app, src)
	}
	for _, h := range []struct{ name, suffix string }{
		{PreviewHeader, "preview"}, {gray.HeaderVersionWeight, "weight"}, {gray.HeaderRegion, "region"}, {gray.HeaderAddress, "address"},
	} {
		fmt.Fprintf(b, "map $%s_trusted $%s_fwd_%s {\n    1 $http_%s;\n    default \"\";\n}\n", app, app, h.suffix, headerVar(h.name))
	}
}

func trustHeaderOf(t *spec.TrafficTrust) string {
	if t == nil {
		return ""
	}
	return t.Header
}

// headerVar is a header's name in nginx's $http_ variables.
func headerVar(h string) string { return strings.ToLower(strings.ReplaceAll(h, "-", "_")) }

func indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if line == "" {
			continue
		}
		if line != "\n" {
			b.WriteString(prefix)
		}
		b.WriteString(line)
	}
	return b.String()
}

// ParseHeader reads the split and digest back from a rendered file.
func ParseHeader(content []byte) (traffic.Split, string, error) {
	var s traffic.Split
	var digest string
	found := false
	for _, line := range strings.SplitN(string(content), "\n", 5) {
		if v, ok := strings.CutPrefix(line, splitPrefix); ok {
			if err := json.Unmarshal([]byte(v), &s); err != nil {
				return traffic.Split{}, "", fmt.Errorf("split header: %w", err)
			}
			found = true
		}
		if v, ok := strings.CutPrefix(line, digestPrefix); ok {
			digest = v
		}
	}
	if !found {
		return traffic.Split{}, "", fmt.Errorf("no %q line: not a file graylane rendered", strings.TrimSpace(splitPrefix))
	}
	return s, digest, nil
}

// checkAddr accepts host:port where host is an IP or a DNS name, so an
// address can never inject nginx configuration.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("address %q is not host:port", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("address %q has no valid port", a)
	}
	if net.ParseIP(host) == nil && !addrHostPattern.MatchString(host) {
		return fmt.Errorf("address %q: %q is not an IP address or host name", a, host)
	}
	return nil
}

func dur(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func uniqSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
