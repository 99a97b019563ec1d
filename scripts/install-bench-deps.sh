#!/usr/bin/env bash
# Optional benchmark peers and plotting (issue 12); NOT needed to build or
# test lmz (scripts/install-deps.sh has those). Idempotent.
#   scripts/install-bench-deps.sh          install what is missing
#   scripts/install-bench-deps.sh --check  list what is missing, install nothing
# Installs:
#   apt: redis-server, redis-tools (redis-benchmark), gnuplot-nox (plots)
#   npm: workerd (pinned in bench/peers/workerd/package.json) into
#        bench/peers/workerd/node_modules (git-ignored); needs node + npm
# Scenarios that use a peer skip it, and say so, when it is not installed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APT_PKGS=(redis-server redis-tools gnuplot-nox)
wd_dir=$root/bench/peers/workerd
wd_bin=$wd_dir/node_modules/.bin/workerd

missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
wd_missing=0
[ -x "$wd_bin" ] || wd_missing=1

if [ "${1:-}" = "--check" ]; then
  printf '%s\n' "${missing[@]}"
  [ $wd_missing = 0 ] || echo "npm:workerd"
  exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-bench-deps: apt: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "install-bench-deps: not root; run as root for ${missing[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian package starts a system redis; the benchmark starts its own.
  if command -v systemctl >/dev/null && systemctl is-active -q redis-server 2>/dev/null; then
    $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi

if [ $wd_missing = 1 ]; then
  if ! command -v npm >/dev/null; then
    echo "install-bench-deps: npm not found; workerd peer not installed" >&2; exit 1
  fi
  echo "install-bench-deps: npm install workerd in $wd_dir" >&2
  (cd "$wd_dir" && npm install --no-audit --no-fund --loglevel=error)
  "$wd_bin" --version >&2
fi
echo "install-bench-deps: done" >&2
