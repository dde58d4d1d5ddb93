// Command proxybench measures graylane's built-in proxy against nginx,
// side by side in one run: the same upstream instances (demoapp processes,
// two per version), the same split (v2 20%, v1 80%), wrk with 32
// connections and a different user key per request, nginx with one worker
// and upstream keepalive. Each side runs in its own process: the proxy as
// `graylane proxy` (as graylane runs it), nginx with graylane's rendered
// files (the Lua bucketing), and, for comparison, nginx routing one
// upstream without Lua. Rounds alternate between the sides to share the
// machine's noise; it prints each round, the medians and the ratio.
//
//	make build && go run ./bench/proxybench [-duration 10s] [-rounds 3] [-connections 32]
//
// It needs nginx with ngx_http_lua_module and wrk (make test-deps).
// docs/benchmarks.md records its figures.
package main
