#!/usr/bin/env bash
# Measures each package's suite time as `make test` runs it (race detector,
# GRAYLANE_INTEGRATION=1), one package at a time so they do not compete, and
# prints a Markdown table for docs/testing.md: package, result, elapsed
# seconds (go test -json's package Elapsed: the test binary's run, without
# compiling), and the 1-minute load average when the package started.
# Usage: .ci/suite-times.sh [packages...]   (default: ./...)
# Run `make tools build` first so no package builds a heavy server.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
echo "| package | result | seconds | load at start |"
echo "|---|---|---:|---:|"
total=0
for p in $(go list "${pkgs[@]}"); do
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
  line=$(GRAYLANE_INTEGRATION=1 go test -race -count=1 -timeout 60m -json "$p" 2>/dev/null |
    grep -E '"Action":"(pass|fail|skip)","Package":"[^"]*","Elapsed"' | tail -1 || true)
  [ -n "$line" ] || continue # no test files
  action=$(sed -E 's/.*"Action":"([a-z]+)".*/\1/' <<<"$line")
  [ "$action" != skip ] || continue # no test files
  elapsed=$(sed -E 's/.*"Elapsed":([0-9.]+).*/\1/' <<<"$line")
  total=$(awk -v a="$total" -v b="$elapsed" 'BEGIN { print a + b }')
  printf '| `%s` | %s | %.1f | %s |\n' "${p#github.com/graylane/graylane/}" "$action" "$elapsed" "$load"
done
printf '| **total** | | %.0f | |\n' "$total"
