#!/usr/bin/env bash
# Debian packages the tests drive, installed once per machine, only when missing:
#   chromium        the UI's browser tests (Playwright drives it; it cannot download its own here)
#   docker-compose  parses docker/compose.yaml without an engine (no Docker engine runs here)
set -eu
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "apt: $(/usr/bin/chromium --version 2>/dev/null | head -n1); $(docker-compose version --short 2>/dev/null | head -n1 | sed 's/^/docker-compose /')"
