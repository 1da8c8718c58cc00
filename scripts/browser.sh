#!/usr/bin/env bash
# Debian's Chromium for the UI's browser tests (Playwright drives it; it cannot download its own
# browser here). Installed once per machine, only when missing.
set -eu
if [ -x /usr/bin/chromium ]; then
  echo "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
  exit 0
fi
echo "browser: installing Debian's chromium (apt)"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
