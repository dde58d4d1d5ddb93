package main

import (
	"fmt"
	"net"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/environments"
	"github.com/graylane/graylane/server"
	"github.com/graylane/graylane/spec"
)

// apiTokens reads http.tokens (a list of {name, token, role,
// environments, apps, teams}) and http.token (one write token named
// "admin", handy as an environment variable: GRAYLANE_HTTP_TOKEN).
func apiTokens(v *viper.Viper, set environments.Set) ([]server.Token, error) {
	var tokens []server.Token
	if v.IsSet("http.tokens") {
		if err := v.UnmarshalKey("http.tokens", &tokens); err != nil {
			return nil, fmt.Errorf("http.tokens: %w", err)
		}
	}
	if t := v.GetString("http.token"); t != "" {
		tokens = append(tokens, server.Token{Name: "admin", Secret: t, Role: server.RoleWrite})
	}
	for i, t := range tokens {
		if t.Name == "" || len(t.Secret) < 8 {
			return nil, fmt.Errorf("http.tokens[%d]: needs a name and a token of at least 8 characters", i)
		}
		switch {
		case t.Role == "" && len(t.Envs) > 0:
		case t.Role == "":
			tokens[i].Role = server.RoleRead
		case !server.KnownRole(t.Role):
			return nil, fmt.Errorf("http.tokens[%d].role: %q is not read, request, approve, release, admin or write", i, t.Role)
		}
		for env, r := range t.Envs {
			if _, ok := set.Get(env); !ok {
				return nil, fmt.Errorf("http.tokens[%d].environments: %q is not a declared environment (%v)", i, env, set.Names())
			}
			if !server.KnownRole(r) {
				return nil, fmt.Errorf("http.tokens[%d].environments.%s: %q is not read, request, approve, release or admin", i, env, r)
			}
		}
		for j, a := range t.Apps {
			if err := spec.CheckApp(a); err != nil {
				return nil, fmt.Errorf("http.tokens[%d].apps[%d]: %v", i, j, err)
			}
		}
	}
	return tokens, nil
}

// appTeams reads teams (a list of {name, apps}) into app -> teams, for
// tokens scoped to teams.
func appTeams(v *viper.Viper) (map[string][]string, error) {
	if !v.IsSet("teams") {
		return nil, nil
	}
	var teams []struct {
		Name string   `mapstructure:"name"`
		Apps []string `mapstructure:"apps"`
	}
	if err := v.UnmarshalKey("teams", &teams); err != nil {
		return nil, fmt.Errorf("teams: %w", err)
	}
	out := map[string][]string{}
	for i, t := range teams {
		if t.Name == "" {
			return nil, fmt.Errorf("teams[%d].name: is required", i)
		}
		for j, a := range t.Apps {
			if err := spec.CheckApp(a); err != nil {
				return nil, fmt.Errorf("teams[%d].apps[%d]: %v", i, j, err)
			}
			out[a] = append(out[a], t.Name)
		}
	}
	return out, nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
