package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/hooks"
)

// How an environment enters every name (README: Environments and
// promotion). An environment E that does not keep the legacy names has
// its own:
//
//	etcd                          /graylane/envs/E/apps/        release documents (source etcd)
//	                              /graylane/envs/E/state/       rollout state
//	                              /graylane/envs/E/analysis/    analysis journal
//	                              /graylane/envs/E/config/      config-in-step history and state
//	                              /graylane/envs/E/gray/        gray documents (gray.centre etcd)
//	                              /graylane/envs/E/instances/   registered instances
//	                              /graylane/envs/E/records/     revisions, intents, release summaries
//	                              /graylane/envs/E/hooks/       release hook outcomes
//	                              /graylane/environments/{state,requests}/E/...  promotions (promotion.Store)
//	data.dir                      <data.dir>/envs/E/            process records and logs, proxy routes, centre caches
//	metrics                       label env="E" on every engine series
//	API                           /api/v1/envs/E/apps/{app} (and every other app path)
//	events, notifications, audit  field env
//
// The environment with legacyNames (or the only one of a graylane
// without environments, named "default") keeps graylane's names from
// before: /graylane/state/..., <data.dir>/process, ...

// envRoot is the etcd root of an environment's names.
func envRoot(e *environments.Environment) string {
	if e.LegacyNames {
		return "/graylane/"
	}
	return "/graylane/envs/" + e.Name + "/"
}

// envDataDir is the environment's data directory.
func envDataDir(dataDir string, e *environments.Environment) string {
	if e.LegacyNames {
		return dataDir
	}
	return filepath.Join(dataDir, "envs", e.Name)
}

// environmentsOf reads the environments key; without it graylane has one
// environment on the legacy names (source.type and the centre keys as
// before).
func environmentsOf(v *viper.Viper) (environments.Set, error) {
	if !v.IsSet("environments") {
		return environments.Single(map[string]any{"type": v.GetString("source.type")}), nil
	}
	return environments.Parse(v.Get("environments"), v.GetString("defaultEnvironment"))
}

// envViper is v as environment e sees it: a copy with e's source laid
// over the centre keys (source {type: nacos, namespace: dev} sets
// source.type and nacos.namespace), e's settings laid over the rest, and
// — unless e keeps the legacy names — its own etcd prefixes and data
// directories.
func envViper(v *viper.Viper, e *environments.Environment) (*viper.Viper, error) {
	ev := viper.New()
	for _, k := range v.AllKeys() {
		if k == "environments" || strings.HasPrefix(k, "environments.") {
			continue
		}
		ev.Set(k, v.Get(k))
	}
	t := e.SourceType()
	if !e.LegacyNames || v.IsSet("environments") {
		ev.Set("source.type", t)
	}
	if !e.LegacyNames {
		root := envRoot(e)
		for k, sub := range map[string]string{"etcd.prefix": "apps/", "etcd.statePrefix": "state/", "etcd.analysisPrefix": "analysis/",
			"config.prefix": "config/", "gray.etcd.prefix": "gray/", "registry.etcd.prefix": "instances/", "records.prefix": "records/", "hooks.prefix": "hooks/"} {
			ev.Set(k, root+sub)
		}
		// the builders derive these from the environment's data directory
		for _, k := range []string{"process.stateDir", "proxy.stateDir", "ssh.workDir", "apollo.cacheDir", "nacos.cacheDir", "nacos.logDir"} {
			ev.Set(k, "")
		}
	} else if !ev.IsSet("hooks.prefix") {
		ev.Set("hooks.prefix", hooks.DefaultPrefix)
	}
	for k, val := range flatten("", e.Settings) {
		switch {
		case k == "source" || strings.HasPrefix(k, "source.") || k == "environments" || strings.HasPrefix(k, "environments.") || strings.HasPrefix(k, "http.") || strings.HasPrefix(k, "etcd.") || strings.HasPrefix(k, "ha."):
			return nil, fmt.Errorf("environments: %s.settings.%s: set per environment only what its releases use (not source, http, etcd or ha)", e.Name, k)
		}
		ev.Set(k, val)
	}
	for k, val := range e.Source {
		if k == "type" {
			continue
		}
		switch {
		case t == "etcd" && k == "prefix":
			ev.Set("etcd.prefix", val)
		case t == "etcd" && k == "endpoints":
			ev.Set("source.etcd.endpoints", val)
		case t == "etcd":
			return nil, fmt.Errorf("environments: %s.source.%s: an etcd source takes prefix and endpoints", e.Name, k)
		default:
			ev.Set(t+"."+k, val)
		}
	}
	if t == "nacos" && v.IsSet("environments") && !ev.IsSet("config.nacos.namespace") {
		// config targets on Nacos naming no namespace: the environment's
		ev.Set("config.nacos.namespace", ev.GetString("nacos.namespace"))
	}
	return ev, nil
}

// checkCollisions refuses environments whose names would meet: the etcd
// prefixes of one may not contain another's, nor may two read releases
// from the same place, nor share nginx's include directory.
func checkCollisions(set environments.Set, views map[string]*viper.Viper) error {
	type claim struct{ env, what, val string }
	var prefixes, places []claim
	for _, e := range set.Envs {
		ev := views[e.Name]
		for _, k := range []string{"etcd.statePrefix", "etcd.analysisPrefix", "config.prefix", "gray.etcd.prefix", "registry.etcd.prefix", "records.prefix", "hooks.prefix"} {
			if p := ev.GetString(k); p != "" {
				prefixes = append(prefixes, claim{e.Name, k, p})
			}
		}
		switch t := ev.GetString("source.type"); t {
		case "etcd", "":
			places = append(places, claim{e.Name, "its etcd release prefix", strings.Join(list(ev, "source.etcd.endpoints"), ",") + "|" + ev.GetString("etcd.prefix")})
			if ev.GetString("etcd.prefix") != "" && len(list(ev, "source.etcd.endpoints")) == 0 {
				prefixes = append(prefixes, claim{e.Name, "etcd.prefix", ev.GetString("etcd.prefix")})
			}
		case "nacos":
			places = append(places, claim{e.Name, "its Nacos namespace and group", strings.Join(list(ev, "nacos.servers"), ",") + "|" + ev.GetString("nacos.namespace") + "|" + ev.GetString("nacos.group")})
		case "apollo":
			places = append(places, claim{e.Name, "its Apollo env, app, cluster and namespace", ev.GetString("apollo.meta") + ev.GetString("apollo.configService") + "|" + ev.GetString("apollo.env") + "|" + ev.GetString("apollo.appId") + "|" + ev.GetString("apollo.cluster") + "|" + ev.GetString("apollo.namespace")})
		}
		if d := ev.GetString("nginx.includeDir"); d != "" {
			places = append(places, claim{e.Name, "nginx.includeDir", d})
		}
	}
	var errs []string
	for i, a := range prefixes {
		for _, b := range prefixes[i+1:] {
			if a.env != b.env && (strings.HasPrefix(a.val, b.val) || strings.HasPrefix(b.val, a.val)) {
				errs = append(errs, fmt.Sprintf("%s's %s %q and %s's %s %q overlap", a.env, a.what, a.val, b.env, b.what, b.val))
			}
		}
	}
	for i, a := range places {
		for _, b := range places[i+1:] {
			if a.env != b.env && a.what == b.what && a.val == b.val {
				errs = append(errs, fmt.Sprintf("%s and %s share %s (%s): give each environment its own", a.env, b.env, a.what, strings.Trim(a.val, "|")))
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("environments collide: %s", strings.Join(errs, "; "))
	}
	return nil
}

// flatten turns nested settings into dotted keys.
func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			for k2, v2 := range flatten(key, sub) {
				out[k2] = v2
			}
			continue
		}
		out[key] = v
	}
	return out
}
