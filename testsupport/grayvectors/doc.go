// Package grayvectors loads docs/gray-vectors.json, the test vectors of
// graylane's gray routing that every layer checks itself against: the
// gray package and the SDK, the built-in proxy, nginx's Lua and the Java
// class of docs/gray.md.
//
// Entry point: Load.
package grayvectors
