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
	// Host StatusHost(App) with the file's digest.
	StatusAddr string
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

// Render produces an app's include file and its digest. The digest covers
// the whole file (but its own line) and is what the status server returns.
//
// Routing, in the order nginx evaluates it:
//
//  1. A request whose X-Graylane-Version header equals Split.Preview goes to
//     the preview version's upstream.
//  2. Otherwise split_clients hashes a key (MurmurHash2) into 0..100% and
//     picks the first version, in Split order (newest first), whose
//     cumulative weight covers it. The key is the sticky header's value,
//     else the sticky cookie's, else $request_id (random per request), so a
//     user keeps their version, and a user who reached the canary at 10%
//     stays on it at 20%.
//
// Each version's upstream lists its ready instances and, as backup servers,
// those of the other weighted versions, so a version whose instances all
// fail sends its share to the others; a version with no ready instance at
// all gets the other weighted versions' instances as its servers, or, if
// none of those is ready either, every ready instance of any version.
func Render(in Input) ([]byte, string, error) {
	if err := spec.CheckApp(in.App); err != nil {
		return nil, "", fmt.Errorf("app: %w", err)
	}
	if err := traffic.ValidateSplit(in.Split); err != nil {
		return nil, "", err
	}
	ngx := (*spec.NginxTraffic)(nil)
	header, cookie := DefaultStickyHeader, DefaultStickyCookie
	if in.Traffic != nil {
		ngx = in.Traffic.Nginx
		if in.Traffic.StickyHeader != "" {
			header = in.Traffic.StickyHeader
		}
		if in.Traffic.StickyCookie != "" {
			cookie = in.Traffic.StickyCookie
		}
	}
	if !headerVarPattern.MatchString(header) {
		return nil, "", fmt.Errorf("sticky header %q has characters nginx variables cannot name (use A-Z a-z 0-9 - _): %w", header, adapters.ErrUnsupported)
	}
	if !cookieVarPattern.MatchString(cookie) {
		return nil, "", fmt.Errorf("sticky cookie %q has characters nginx's $cookie_ variables cannot name (use A-Z a-z 0-9 _): %w", cookie, adapters.ErrUnsupported)
	}

	// Versions that get an upstream: weighted ones in split order, then the
	// preview.
	var versions []string
	seen := map[string]bool{}
	for _, w := range in.Split.Weights {
		if err := spec.CheckVersion(w.Version); err != nil {
			return nil, "", fmt.Errorf("split version: %w", err)
		}
		if w.Weight > 0 && !seen[w.Version] {
			versions = append(versions, w.Version)
			seen[w.Version] = true
		}
	}
	if p := in.Split.Preview; p != "" {
		if err := spec.CheckVersion(p); err != nil {
			return nil, "", fmt.Errorf("preview version: %w", err)
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
			return nil, "", fmt.Errorf("instance %s: %w", inst.ID, err)
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
		b.WriteString("}\n")
	}
	if len(versions) == 0 || len(in.Split.Weights) == 0 || in.Split.Total() == 0 {
		fmt.Fprintf(&b, "\n# no version receives traffic yet: nginx answers 502\n")
		fmt.Fprintf(&b, "upstream %s_none {\n    server 127.0.0.1:1 down;\n}\n", app)
	}

	hdrVar := "$http_" + strings.ToLower(strings.ReplaceAll(header, "-", "_"))
	fmt.Fprintf(&b, "\n# Sticky key: header %s, else cookie %s, else a random per-request id.\n", header, cookie)
	fmt.Fprintf(&b, "map %s %s_sticky {\n    \"\" $cookie_%s;\n    default %s;\n}\n", hdrVar, "$"+app, cookie, hdrVar)
	fmt.Fprintf(&b, "map %s_sticky %s_key {\n    \"\" $request_id;\n    default \"u:%s_sticky\";\n}\n", "$"+app, "$"+app, "$"+app)

	def := "$" + app + "_split"
	if in.Split.Total() == 0 {
		def = app + "_none"
	} else {
		fmt.Fprintf(&b, "split_clients \"%s_key\" %s_split {\n", "$"+app, "$"+app)
		var nz []traffic.VersionWeight
		for _, w := range in.Split.Weights {
			if w.Weight > 0 {
				nz = append(nz, w)
			}
		}
		for k, w := range nz {
			pct := strconv.Itoa(w.Weight) + "%"
			if k == len(nz)-1 {
				pct = "*"
			}
			fmt.Fprintf(&b, "    %-4s %s; # %s\n", pct, upName(indexOf(versions, w.Version)), w.Version)
		}
		b.WriteString("}\n")
	}
	fmt.Fprintf(&b, "map \"v=$http_%s\" %s {\n", strings.ToLower(strings.ReplaceAll(PreviewHeader, "-", "_")), Var(in.App))
	if p := in.Split.Preview; p != "" {
		fmt.Fprintf(&b, "    \"~^v=%s$\" %s; # preview %s\n", regexp.QuoteMeta(p), upName(indexOf(versions, p)), p)
	}
	fmt.Fprintf(&b, "    default %s;\n}\n", def)

	if ngx != nil && ngx.Listen != "" {
		name := ngx.ServerName
		if name == "" {
			name = "_"
		}
		fmt.Fprintf(&b, "\nserver {\n    listen %s;\n    server_name %s;\n", ngx.Listen, name)
		b.WriteString("    location / {\n")
		fmt.Fprintf(&b, "        proxy_pass http://%s;\n", Var(in.App))
		b.WriteString("        proxy_set_header Host $host;\n")
		b.WriteString("        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n")
		fmt.Fprintf(&b, "        proxy_connect_timeout %s;\n", dur(ngx.EffectiveConnectTimeout()))
		b.WriteString("        proxy_next_upstream error timeout http_502 http_503 http_504;\n")
		b.WriteString("    }\n}\n")
	}
	if in.StatusAddr != "" {
		fmt.Fprintf(&b, "\n# Status: graylane polls this after a reload until it answers this file's digest.\n")
		fmt.Fprintf(&b, "server {\n    listen %s;\n    server_name %s;\n", in.StatusAddr, StatusHost(in.App))
		fmt.Fprintf(&b, "    location = %s {\n        default_type text/plain;\n        return 200 \"@DIGEST@\\n\";\n    }\n}\n", StatusPath)
	}
	body := b.String()
	sum := sha256.Sum256([]byte(body))
	digest := hex.EncodeToString(sum[:12])
	return []byte(strings.ReplaceAll(body, "@DIGEST@", digest)), digest, nil
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
