#!/usr/bin/env bash
# Test-only dependencies beyond scripts/install-deps.sh. Idempotent and quiet:
#   - Node.js + npm (Debian packages, only if `node`/`npm` are missing);
#   - Chromium (Debian's `chromium` package, only if /usr/bin/chromium is
#     missing) for the browser test (tests/integration/editor_e2e.sh, which
#     drives it with playwright-core; no browser is ever downloaded);
#   - npm packages of clients/js and tests/e2e (`npm ci` from the committed
#     package-lock.json), each skipped when its node_modules matches its lock.
# Prints nothing when there is nothing to do; on failure prints the failing
# tool's output and exits non-zero. Several test wrappers call it at once
# (ctest -j): a lock file serializes them, and the later ones find nothing
# to do.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

LOCK="${TMPDIR:-/tmp}/lmz-install-test-deps.lock"
exec 9>"$LOCK"
if command -v flock >/dev/null && ! flock -w 900 9; then
  echo "install-test-deps: could not take $LOCK within 900 s" >&2
  exit 1
fi

need_root() {
  if [ "$(id -u)" -eq 0 ]; then echo ""; elif command -v sudo >/dev/null; then echo sudo; else
    echo "install-test-deps: $1 missing and not root; run as root" >&2
    exit 1
  fi
}

# apt_install WHAT PACKAGES...: installs quietly; refreshes the package lists
# first when the install fails with the current ones (a fresh machine).
apt_install() {
  local what=$1 sudo log
  shift
  sudo=$(need_root "$what")
  log=$(mktemp "${TMPDIR:-/tmp}/lmz-apt.XXXXXX")
  echo "install-test-deps: installing $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1; then
    if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
      echo "install-test-deps: apt-get install $* failed:" >&2
      cat "$log" >&2
      rm -f "$log"
      exit 1
    fi
  fi
  rm -f "$log"
}

# --- Node.js and npm ---------------------------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install "node/npm" nodejs npm
fi

# --- Chromium (Debian's; playwright-core only drives it) ---------------------
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium chromium fonts-dejavu-core
fi

# --- npm packages ------------------------------------------------------------
# npm_deps DIR SENTINEL: `npm ci` in DIR unless node_modules is current: the
# stamp holds the lock file's hash, and the package SENTINEL is there.
npm_deps() {
  local dir="$ROOT/$1" sentinel=$2 stamp lock_sum log
  [ -f "$dir/package-lock.json" ] || return 0
  stamp="$dir/node_modules/.lmz-lock.sha256"
  lock_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ] && [ -d "$dir/node_modules/$sentinel" ]; then
    return 0
  fi
  log=$(mktemp "${TMPDIR:-/tmp}/lmz-npm.XXXXXX")
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
    echo "install-test-deps: npm ci failed in $1:" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "$lock_sum" >"$stamp"
}
npm_deps clients/js ws
npm_deps tests/e2e playwright-core
