// Package crosslayer holds only tests: that every layer graylane routes
// users with — the built-in proxy, nginx running graylane's files (Lua),
// the Go SDK and the Java class of docs/gray.md — puts the same user on
// the same version, through real requests where a layer serves them.
package crosslayer
