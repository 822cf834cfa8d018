#!/usr/bin/env bash
# Installs what a fresh machine lacks for the tests and local mode. Idempotent; fast when all is there.
#   npm dependencies (npm ci when node_modules is missing or older than package-lock.json)
#   Debian: nats-server (the control channel and the JetStream benchmark peer)
#   Debian: chromium (the console's browser tests, driven by puppeteer-core; nothing downloads a browser)
#   Debian: prometheus (only its promtool binary is used; the service is never started)
#   Debian: podman and debootstrap (the image build of the e2e tier: scripts/image/build.sh)
# Usage: scripts/ensure-deps.sh [--k8s]   (--k8s also builds/reuses the Kubernetes test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ensure-deps: npm ci"
  # No fallback to `npm install`: a lock that `npm ci` refuses is a bug to fix in the lock (npm
  # refuses locks missing other platforms' optional packages; test/unit/sre/lockfile.test.ts checks).
  npm ci --no-audit --no-fund --loglevel=error
fi

apt_updated=0
apt_install() { # apt_install <command-to-check> <debian-package>
  if ! command -v "$1" >/dev/null 2>&1; then
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ $apt_updated -eq 0 ]; then $sudo apt-get update -qq; apt_updated=1; fi
    echo "ensure-deps: apt-get install $2"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    # Installing a package may start its service; Daftka's tests start their own servers.
    $sudo systemctl disable --now "$2" >/dev/null 2>&1 || true
    pkill -x "$1" >/dev/null 2>&1 || true
  fi
}
apt_install nats-server nats-server
apt_install chromium chromium

if [ "${1:-}" = "--k8s" ]; then
  apt_install promtool prometheus
  apt_install podman podman
  apt_install debootstrap debootstrap
  pkill -x prometheus >/dev/null 2>&1 || true
  if [ -x scripts/k8s-tools/build.sh ]; then scripts/k8s-tools/build.sh; fi
fi
