#!/usr/bin/env bash
# Test-only dependencies beyond scripts/install-deps.sh. Idempotent and quiet:
#   - Node.js + npm (Debian packages, only if `node`/`npm` are missing);
#   - clients/js: its npm packages (`npm ci` from the committed
#     package-lock.json), skipped when node_modules already matches the lock.
# Prints nothing when there is nothing to do; on failure prints npm's output
# and exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

need_root() {
  if [ "$(id -u)" -eq 0 ]; then echo ""; elif command -v sudo >/dev/null; then echo sudo; else
    echo "install-test-deps: $1 missing and not root; run as root" >&2
    exit 1
  fi
}

# --- Node.js and npm ---------------------------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=$(need_root "node/npm")
  echo "install-test-deps: installing nodejs npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# --- clients/js ----------------------------------------------------------------
# The stamp holds the lock file's hash: node_modules is current when it matches
# and the runtime dependency is there.
js_deps() {
  local dir="$ROOT/clients/js" stamp lock_sum log
  [ -f "$dir/package-lock.json" ] || return 0
  stamp="$dir/node_modules/.lmz-lock.sha256"
  lock_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ] && [ -d "$dir/node_modules/ws" ]; then
    return 0
  fi
  log=$(mktemp "${TMPDIR:-/tmp}/lmz-npm.XXXXXX")
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
    echo "install-test-deps: npm ci failed in clients/js:" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "$lock_sum" >"$stamp"
}
js_deps
