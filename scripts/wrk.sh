#!/usr/bin/env bash
# Make sure wrk, the load generator of the benchmarks (bench/load.py, bench/gateway.py), is
# installed: Debian's own package.
set -euo pipefail

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "wrk is missing: run 'apt-get install -y wrk' as root" >&2
    exit 1
  fi
  echo "installing wrk" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
# wrk has no --version: -v prints it (then its usage) and exits 1.
wrk -v 2>&1 | head -n 1 >&2 || true
