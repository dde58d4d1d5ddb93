package server

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

// EnvPrefix starts the API paths of one environment:
// /api/v1/envs/{env}/apps/{app} is /api/v1/apps/{app} of environment env.
const EnvPrefix = "/api/v1/envs/"

// Route serves a graylane with several environments: a path under
// /api/v1/envs/{env}/ goes to that environment's API with the prefix
// taken off (/api/v1/envs/prod/apps/shop is prod's /api/v1/apps/shop),
// and everything else to def, the default environment's API (which also
// serves the console, /healthz, /readyz, /metrics and the routes across
// environments). An unknown environment is 404 naming the known ones.
func Route(def http.Handler, envs map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, EnvPrefix)
		if !ok {
			def.ServeHTTP(w, r)
			return
		}
		env, sub, _ := strings.Cut(rest, "/")
		h, ok := envs[env]
		if !ok {
			names := make([]string, 0, len(envs))
			for n := range envs {
				names = append(names, n)
			}
			sort.Strings(names)
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(apiError{Error: "no environment " + quote(env) + " (environments: " + strings.Join(names, ", ") + ")"})
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/api/v1/" + sub
		r2.URL.RawPath = ""
		h.ServeHTTP(w, r2)
	})
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
