package polaris

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Ports are the TCP ports one Polaris server listens on, all on 127.0.0.1.
type Ports struct {
	Eureka      int
	HTTP        int // Polaris' own HTTP API (api-http)
	ServiceGRPC int
	ConfigGRPC  int
	XDS         int
	// Nacos is the Nacos v1 HTTP port; the Nacos v2 gRPC port is always
	// Nacos+1000 (hard-wired in Polaris, and nacos-sdk-go's default).
	Nacos int
}

// NacosGRPC is the Nacos v2 gRPC port.
func (p Ports) NacosGRPC() int { return p.Nacos + 1000 }

func (p Ports) all() []int {
	return []int{p.Eureka, p.HTTP, p.ServiceGRPC, p.ConfigGRPC, p.XDS, p.Nacos, p.NacosGRPC()}
}

// MaxContentLength is the largest config content the test server accepts.
// Upstream's release conf says 20000 characters; graylane allows release
// documents up to spec.MaxSpecBytes (1 MiB), so tests raise it to match.
const MaxContentLength = 1 << 20

// writeConf copies upstream's release/conf into dir/conf and rewrites
// polaris-server.yaml for a private test instance:
//   - self_address 127.0.0.1 and every listenIP 127.0.0.1 (nothing listens
//     beyond loopback);
//   - the given ports instead of upstream's fixed ones;
//   - naming.batch.register.open false: with batching a RegisterInstance
//     right after client creation answered ok=false;
//   - config.contentMaxLength MaxContentLength;
//   - the bolt store under dir/data (logs already go to dir/log: the
//     server's working directory is dir);
//   - with o.nacosRequestLog, the nacos-apiserver log at debug level, which
//     logs every Nacos gRPC request with its connection id.
func writeConf(srcConf, dir string, p Ports, o options) (string, error) {
	dst := filepath.Join(dir, "conf")
	if err := copyTree(srcConf, dst); err != nil {
		return "", fmt.Errorf("copy polaris release conf: %w", err)
	}
	file := filepath.Join(dst, "polaris-server.yaml")
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")

	// Plain substitutions, each checked against the number of matches
	// upstream's file has, so a changed upstream file fails loudly. The
	// values go in through placeholders, after every pattern was matched:
	// a chosen port equal to one of upstream's defaults (say 15010 picked
	// for the HTTP API) must not be taken for that default by a later
	// pattern.
	subs := []struct {
		re    string
		repl  string // $v is the value
		value string
		n     int
	}{
		{`(?m)^(\s*)# self_address: 127\.0\.0\.1$`, "${1}self_address: $v", "127.0.0.1", 1},
		{`(?m)^(\s*)listenIP: "0\.0\.0\.0"$`, `${1}listenIP: "$v"`, "127.0.0.1", 6},
		{`(?m)^(\s*)listenPort: 8761$`, "${1}listenPort: $v", strconv.Itoa(p.Eureka), 1},
		{`(?m)^(\s*)listenPort: 8090$`, "${1}listenPort: $v", strconv.Itoa(p.HTTP), 1},
		{`(?m)^(\s*)listenPort: 8091$`, "${1}listenPort: $v", strconv.Itoa(p.ServiceGRPC), 1},
		{`(?m)^(\s*)listenPort: 8093$`, "${1}listenPort: $v", strconv.Itoa(p.ConfigGRPC), 1},
		{`(?m)^(\s*)listenPort: 15010$`, "${1}listenPort: $v", strconv.Itoa(p.XDS), 1},
		{`(?m)^(\s*)listenPort: 8848$`, "${1}listenPort: $v", strconv.Itoa(p.Nacos), 1},
	}
	values := make([]string, 0, 2*len(subs))
	for i, s := range subs {
		re := regexp.MustCompile(s.re)
		if got := len(re.FindAllStringIndex(text, -1)); got != s.n {
			return "", fmt.Errorf("polaris conf: %d matches of %s, want %d (upstream conf changed?)", got, s.re, s.n)
		}
		ph := fmt.Sprintf("\x00value%d\x00", i)
		text = re.ReplaceAllString(text, strings.Replace(s.repl, "$v", ph, 1))
		values = append(values, ph, s.value)
	}
	text = strings.NewReplacer(values...).Replace(text)

	lines := strings.Split(text, "\n")
	sets := []struct {
		path  []string
		value string
	}{
		{[]string{"naming", "batch", "register", "open"}, "false"},
		{[]string{"config", "contentMaxLength"}, strconv.Itoa(MaxContentLength)},
		{[]string{"store", "option", "path"}, filepath.Join(dir, "data", "polaris.bolt")},
	}
	if o.nacosRequestLog {
		sets = append(sets, struct {
			path  []string
			value string
		}{[]string{"bootstrap", "logger", "nacos-apiserver", "outputLevel"}, "debug"})
	}
	for _, s := range sets {
		if err := setYAML(lines, s.path, s.value); err != nil {
			return "", fmt.Errorf("polaris conf: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return "", err
	}
	return file, nil
}

var yamlKey = regexp.MustCompile(`^(\s*)(- )?([A-Za-z0-9_.-]+):(\s.*)?$`)

// setYAML replaces the scalar value at path (a chain of mapping keys, no
// list indexes) in a block-style YAML document, in place. It relies on
// indentation only, which is enough for Polaris' release conf.
func setYAML(lines []string, path []string, value string) error {
	type frame struct {
		indent int
		key    string
	}
	var stack []frame
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		m := yamlKey.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		indent := len(m[1]) + len(m[2])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, frame{indent, m[3]})
		if len(stack) != len(path) {
			continue
		}
		match := true
		for j := range path {
			if stack[j].key != path[j] {
				match = false
				break
			}
		}
		if match {
			lines[i] = m[1] + m[2] + m[3] + ": " + value
			return nil
		}
	}
	return fmt.Errorf("key %s not found", strings.Join(path, "."))
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		// Files in the module cache are read-only; the copies must not be.
		return os.WriteFile(target, b, 0o644)
	})
}
