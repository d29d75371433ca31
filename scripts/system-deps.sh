#!/usr/bin/env bash
# Debian packages the test suite drives as real parts (a browser, Redis, a balancer).
# Installs only what is missing, and only where it can (root, or passwordless sudo); a test
# whose part is still absent skips with the reason. Called by `make test`.
set -uo pipefail

# command-to-look-for:debian-package
NEEDED=(
  redis-server:redis-server
  nginx:nginx
  chromium:chromium  # tests/test_web_page.py drives the page at / with playwright
  node:nodejs  # tests/test_node_sdks.py: the npm SDKs under Debian's Node
  npm:npm
)

missing=()
for entry in "${NEEDED[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry##*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "system-deps: not root; missing ${missing[*]} (their tests will skip)" >&2; exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "system-deps: apt-get could not install ${missing[*]} (their tests will skip)" >&2
exit 0
