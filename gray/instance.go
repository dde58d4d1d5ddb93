package gray

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/graylane/graylane/spec"
)

// Instance metadata keys, as Nepxion Discovery names them: Spring Cloud
// services registering with these keys (and graylane's SDK, which sets
// them) can be routed by version, region, env, zone and group.
const (
	MetaVersion = "version"
	MetaRegion  = "region"
	MetaEnv     = "env"
	MetaZone    = "zone"
	MetaGroup   = "group"
	// MetaID carries graylane's instance ID in registries that have their
	// own identity (Nacos: ip:port).
	MetaID = "graylane.id"
)

// Registry layout in etcd.
const (
	// DefaultInstancePrefix is where instances register in etcd:
	// {prefix}{app}/{version}/{id}, each key bound to a lease that the
	// instance keeps alive.
	DefaultInstancePrefix = "/graylane/instances/"
	// DefaultRulesPrefix is where graylane publishes documents in etcd:
	// {prefix}{app}.
	DefaultRulesPrefix = "/graylane/gray/"
	// DefaultNacosGroup is the Nacos group of published documents
	// (dataId = app).
	DefaultNacosGroup = "GRAYLANE_GRAY"
	// DefaultApolloNamespace is the Apollo namespace of published
	// documents (item key = app).
	DefaultApolloNamespace = "graylane-gray"
)

// IDPattern is what an instance ID may look like: it is part of an etcd
// key and of API paths.
var IDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Instance is a registered instance of an app.
type Instance struct {
	App     string `json:"app"`
	Version string `json:"version"`
	// ID is unique within the app (default: the address).
	ID string `json:"id"`
	// Addr is where it serves, host:port.
	Addr string `json:"addr"`
	// Ready is false while the instance starts or drains: it is listed but
	// takes no traffic and does not count as ready for a rollout.
	Ready bool `json:"ready"`
	// Meta holds region, zone, env, group and further labels.
	Meta map[string]string `json:"meta,omitempty"`
	// RegisteredAt is when the registration was written.
	RegisteredAt time.Time `json:"registeredAt,omitzero"`
}

// Check validates an instance for registration.
func (in Instance) Check() error {
	var errs []spec.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, spec.FieldError{Path: field, Msg: fmt.Sprintf(format, args...)})
	}
	if err := spec.CheckApp(in.App); err != nil {
		add("app", "%v", err)
	}
	if err := spec.CheckVersion(in.Version); err != nil {
		add("version", "%v", err)
	}
	if !IDPattern.MatchString(in.ID) {
		add("id", "%q is not an instance ID (A-Z a-z 0-9 . _ : -, at most 128)", in.ID)
	}
	if host, port, err := net.SplitHostPort(in.Addr); err != nil || host == "" {
		add("addr", "%q is not host:port", in.Addr)
	} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		add("addr", "%q has no valid port", in.Addr)
	}
	keys := make([]string, 0, len(in.Meta))
	for k := range in.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := in.Meta[k]; k == "" || len(k) > 128 || len(v) > 1024 || strings.ContainsAny(k, "\x00") {
			add("meta", "%q is not a metadata key, or its value is over 1024 bytes", k)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &spec.ValidationError{Errors: errs}
}

// Labels returns the instance's labels for rule matching: its metadata
// plus version.
func (in Instance) Labels() map[string]string {
	out := make(map[string]string, len(in.Meta)+1)
	for k, v := range in.Meta {
		out[k] = v
	}
	out[MetaVersion] = in.Version
	return out
}

// InstanceKey is an instance's etcd key.
func InstanceKey(prefix, app, version, id string) string {
	return prefix + app + "/" + version + "/" + id
}

// ParseInstanceKey splits an etcd key under prefix into app, version and
// ID; ok is false for keys of another shape.
func ParseInstanceKey(prefix, key string) (app, version, id string, ok bool) {
	rest, found := strings.CutPrefix(key, prefix)
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}
