package main

import (
	"fmt"
	"net"

	"github.com/spf13/viper"

	"github.com/graylane/graylane/server"
)

// apiTokens reads http.tokens (a list of {name, token, role}) and
// http.token (one write token named "admin", handy as an environment
// variable: GRAYLANE_HTTP_TOKEN).
func apiTokens(v *viper.Viper) ([]server.Token, error) {
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
		switch t.Role {
		case "":
			tokens[i].Role = server.RoleRead
		case server.RoleRead, server.RoleWrite:
		default:
			return nil, fmt.Errorf("http.tokens[%d].role: %q is not read or write", i, t.Role)
		}
	}
	return tokens, nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
