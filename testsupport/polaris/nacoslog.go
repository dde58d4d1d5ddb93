package polaris

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Option changes how Start runs the server.
type Option func(*options)

type options struct {
	nacosRequestLog bool
}

// WithNacosRequestLog runs Polaris' Nacos protocol log at debug level, so
// that every Nacos gRPC request is logged with the id of the connection it
// came on, for NacosConnections.
func WithNacosRequestLog() Option { return func(o *options) { o.nacosRequestLog = true } }

// nacosLogFile is the Nacos protocol layer's log, relative to the server's
// directory.
const nacosLogFile = "log/runtime/nacos-apiserver.log"

// Polaris v1.18.1's Nacos connection lines (apiserver/nacosserver/v2).
var (
	reConnBegin = regexp.MustCompile(`grpc conn begin.*"conn-id": "([^"]+)"`)
	reConnEnd   = regexp.MustCompile(`grpc conn end.*"conn-id": "([^"]+)"`)
	reRequest   = regexp.MustCompile(`handler client (?:bi)?request.*"conn-id": "([^"]+)"`)
	reOutdated  = regexp.MustCompile(`out dated connection.*"conn-ids": \[([^\]]*)\]`)
	reQuoted    = regexp.MustCompile(`"([^"]+)"`)
)

// NacosConnections is what the Nacos protocol log says about the server's
// Nacos gRPC connections so far.
type NacosConnections struct {
	// Open lists the connections begun and not ended, in order.
	Open []string
	// Ended lists the connections that ended (closed by either side).
	Ended []string
	// Ejected lists the connections Polaris judged silent for longer than
	// its keep-alive (20 s) and dropped.
	Ejected []string
	// Requests counts the requests logged per connection (with
	// WithNacosRequestLog; without it, only slow ones are).
	Requests map[string]int
}

// NacosConnections reads the Nacos protocol log from the start.
func (s *Server) NacosConnections(t testing.TB) NacosConnections {
	t.Helper()
	out := NacosConnections{Requests: map[string]int{}}
	f, err := os.Open(filepath.Join(s.dir, nacosLogFile))
	if os.IsNotExist(err) {
		return out
	}
	if err != nil {
		t.Fatalf("polaris: %v", err)
	}
	defer f.Close()
	open := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "grpc conn begin"):
			if m := reConnBegin.FindStringSubmatch(line); m != nil && !open[m[1]] {
				open[m[1]] = true
				out.Open = append(out.Open, m[1])
			}
		case strings.Contains(line, "grpc conn end"):
			if m := reConnEnd.FindStringSubmatch(line); m != nil {
				delete(open, m[1])
				out.Ended = append(out.Ended, m[1])
			}
		case strings.Contains(line, "out dated connection"):
			if m := reOutdated.FindStringSubmatch(line); m != nil {
				for _, q := range reQuoted.FindAllStringSubmatch(m[1], -1) {
					out.Ejected = append(out.Ejected, q[1])
				}
			}
		case strings.Contains(line, "handler client"):
			if m := reRequest.FindStringSubmatch(line); m != nil {
				out.Requests[m[1]]++
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("polaris: read %s: %v", nacosLogFile, err)
	}
	kept := out.Open[:0]
	for _, id := range out.Open {
		if open[id] {
			kept = append(kept, id)
		}
	}
	out.Open = kept
	return out
}
