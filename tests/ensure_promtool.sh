#!/usr/bin/env bash
# Make sure `promtool` (Prometheus' rule checker) is on PATH for the alert-rule tests.
# Only the binary is taken from Debian's `prometheus` package: installing the package would
# start a Prometheus server (port 9090) on machines that run services.
set -euo pipefail

command -v promtool >/dev/null && { echo "promtool: $(command -v promtool)"; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export DEBIAN_FRONTEND=noninteractive
apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }
dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
install -m 0755 usr/bin/promtool /usr/local/bin/promtool
echo "promtool: installed $(promtool --version 2>&1 | head -n 1)"
