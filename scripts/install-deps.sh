#!/usr/bin/env bash
# Installs the Debian packages lmz needs to build and test. Idempotent: it asks
# dpkg first and only runs apt when something is missing.
#   scripts/install-deps.sh           build + test packages
#   scripts/install-deps.sh --check   list what is missing, install nothing
#   scripts/install-deps.sh --bench   also the OPTIONAL benchmark peers and
#                                     plotting (scripts/install-bench-deps.sh:
#                                     redis, gnuplot-nox, workerd from npm);
#                                     never needed to build or test
set -euo pipefail

if [ "${1:-}" = "--bench" ]; then
  "$0"
  exec "$(dirname "$0")/install-bench-deps.sh"
fi

PKGS=(
  build-essential cmake pkg-config git
  libuv1-dev libraft-dev librocksdb-dev libsodium-dev
  libprotobuf-c-dev protobuf-c-compiler
  libwslay-dev libhttp-parser-dev nettle-dev libsqlite3-dev
  libcurl4-openssl-dev
  libcmocka-dev libjansson-dev
  clang libclang-rt-14-dev
  iproute2 procps curl
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${1:-}" = "--check" ]; then
  printf '%s\n' "${missing[@]}"
  exit 0
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
