#!/usr/bin/env bash
# Debian packages the test suite drives as real parts (a browser, Redis, a balancer).
# Installs only what is missing, and only where it can (root, or passwordless sudo).
# Exits 0 when every part is there (found or installed), 1 when one is still missing: the
# Makefile carries on outside CI (those tests skip with the reason) and stops in CI
# (CI=true), where the tests would fail on the missing part anyway. Called by `make test`.
set -uo pipefail
# nginx lives in /usr/sbin, which a user's PATH often lacks: look there too.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# command-to-look-for:debian-package
NEEDED=(
  redis-server:redis-server
  nginx:nginx
  chromium:chromium  # tests/admin/test_web_page.py drives the page at / with playwright
  node:nodejs  # tests/clients/test_node_sdks.py: the npm SDKs under Debian's Node
  npm:npm
)

absent() {
  missing=()
  for entry in "${NEEDED[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry##*:}")
  done
  [ ${#missing[@]} -gt 0 ]
}

absent || exit 0

if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "system-deps: not root and no passwordless sudo: cannot install ${missing[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq >/dev/null &&
       $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "system-deps: apt-get could not install ${missing[*]}" >&2
  exit 1
fi
if absent; then
  echo "system-deps: installed, yet still not found: ${missing[*]}" >&2
  exit 1
fi
