#!/usr/bin/env bash
# Installs the system packages graylane's tests use for real: nginx with
# its Lua module, OpenSSH's server, a JDK, wrk (make bench), Chromium (the
# console's browser tests), Docker Engine and docker-compose (the docker
# backend's tests), systemd-analyze and ansible-core (the install files'
# tests). Idempotent; does nothing when they are present.
set -euo pipefail
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
# graylane's nginx files decide each request in Lua (the bucketing of docs/gray.md)
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || need+=(libnginx-mod-http-lua)
# make bench: the built-in proxy against nginx, side by side
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
# javac: docs/gray.md's Java bucketing class is compiled and checked against the test vectors
command -v javac >/dev/null || need+=(default-jdk-headless)
# chromium: the web console's browser tests drive Debian's Chromium headless
[ -x /usr/bin/chromium ] || need+=(chromium)
# the docker backend's tests start private dockerds (Docker Engine 20.10)
# and bring graylane's compose stack up with docker-compose 1.29
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /usr/bin/docker-compose ] || need+=(docker-compose)
# systemd-analyze verifies deployments/systemd/graylane.service
command -v systemd-analyze >/dev/null || need+=(systemd)
# ansible-playbook runs deployments/ansible against the sshd test hosts
command -v ansible-playbook >/dev/null || need+=(ansible-core)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
mkdir -p /run/sshd 2>/dev/null || true
# the console is built with Node.js (Vite 8 needs Node 20.19 or newer)
if ! command -v npm >/dev/null; then
  echo "npm not found: the web console's build check (make console-check) needs Node.js 20.19+ and npm" >&2
  exit 1
fi
