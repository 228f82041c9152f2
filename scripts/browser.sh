#!/usr/bin/env bash
# Make sure the headless Chromium the console's browser tests drive is installed: Debian's
# own package, never a browser build downloaded by a test tool.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium is missing: run 'apt-get install -y chromium' as root" >&2
    exit 1
  fi
  echo "installing Chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version >&2
