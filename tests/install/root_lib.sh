# shellcheck shell=bash disable=SC2034  # BOOT_MS, SVC_NODE...: used by root.sh
# tests/install/root_lib.sh - helpers of root.sh (source it after
# tests/lib/it_lib.sh): a clean Debian 12 root booted with systemd-nspawn,
# commands inside it, lmzd@hello's state, and the host-side clients.

ROOT_CACHE=${LMZ_TEST_ROOTFS_CACHE:-/var/cache/lmz-test}
ROOT_TAR=$ROOT_CACHE/bookworm-root.tar
ROOT_NAME=lmz-root-$$
NSPAWN_PID=
LEADER=
export LEADER

# The host's Debian mirror (one-line or deb822 sources) for SUITE, else
# deb.debian.org: the root gets what this machine is configured to use.
host_mirror() { # host_mirror SUITE DEFAULT
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -nE "s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([a-z]+:\/\/[^[:space:]]+)[[:space:]]+$1[[:space:]].*/\2/p" | head -1)
  [ -n "$m" ] || m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$1" '
      /^[[:space:]]*$/ {u = ""} /^URIs:/ {u = $2}
      /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == s && u != "") {print u; exit}}')
  echo "${m:-$2}"
}

# root_prepare DIR: DIR = a fresh copy of the cached root; the cache is made
# once with debootstrap (minbase plus what a Debian install boots with:
# systemd, dbus), with the host's mirror and the updates and security suites.
root_prepare() {
  local dir=$1
  if [ ! -s "$ROOT_TAR" ]; then
    local mirror sec stage=$ROOT_CACHE/stage.$$
    mirror=$(host_mirror bookworm http://deb.debian.org/debian)
    sec=$(host_mirror bookworm-security http://deb.debian.org/debian-security)
    echo "# debootstrap bookworm from $mirror (once: cached as $ROOT_TAR)"
    mkdir -p "$ROOT_CACHE" && rm -rf "$stage"
    if ! timeout 1800 debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
         bookworm "$stage" "$mirror" >"$T/debootstrap.log" 2>&1; then
      tail -20 "$T/debootstrap.log"; rm -rf "$stage"; return 1
    fi
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
      "$mirror" "$mirror" "$sec" >"$stage/etc/apt/sources.list"
    tar -C "$stage" -cf "$ROOT_TAR.tmp.$$" . && mv "$ROOT_TAR.tmp.$$" "$ROOT_TAR"
    rm -rf "$stage"
    [ -s "$ROOT_TAR" ] || return 1
  fi
  mkdir -p "$dir" "$ROOT_CACHE/apt-archives/partial" && tar -C "$dir" -xf "$ROOT_TAR" || return 1
  # The downloads stay in the cache bound at /var/cache/apt/archives (`apt`
  # deletes them by default; `apt-get` keeps them): the next run reuses them.
  echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$dir/etc/apt/apt.conf.d/99lmz-test-keep-debs"
}

# in_root CMD...: CMD inside the booted root (its namespaces, its root
# folder), as root, with a clean environment.
in_root() {
  nsenter -t "$LEADER" -m -u -i -n -p -r -w -- env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
export -f in_root

root_leader() {
  LEADER=$(pgrep -P "$NSPAWN_PID" -x systemd | head -1)
  [ -n "$LEADER" ]
}

# root_boot: boots $T/root (systemd as PID 1, the host's network, the apt
# archive cache bound in); sets NSPAWN_PID, LEADER, BOOT_MS. Fails unless
# systemd reports running (or degraded, whose failed units are printed).
root_boot() {
  local t0 st opts=()
  t0=$(date +%s%N)
  # Without systemd on the host there is no bus to register with or to
  # create a scope unit on: the container stays in the caller's cgroup.
  [ -d /run/systemd/system ] || opts+=(--register=no --keep-unit)
  systemd-nspawn -D "$T/root" -b -M "$ROOT_NAME" "${opts[@]}" --console=read-only \
    --bind="$ROOT_CACHE/apt-archives:/var/cache/apt/archives" </dev/null >>"$T/boot.log" 2>&1 &
  NSPAWN_PID=$!
  if ! wait_until 60 root_leader; then
    echo "# systemd-nspawn -b did not start systemd:"; tail -20 "$T/boot.log"; return 1
  fi
  # systemctl talks to PID 1 on its private socket, made early in the boot.
  wait_until 60 test -S "/proc/$LEADER/root/run/systemd/private" ||
    { echo "# no /run/systemd/private in the root:"; tail -20 "$T/boot.log"; return 1; }
  st=$(timeout 180 nsenter -t "$LEADER" -m -p -r -w -- systemctl is-system-running --wait 2>&1)
  BOOT_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  case $st in
    running) return 0 ;;
    degraded) in_root systemctl --failed --no-pager | sed 's/^/# /'; return 0 ;;
  esac
  echo "# systemctl is-system-running: $st"; tail -20 "$T/boot.log"
  return 1
}

# root_poweroff: SIGTERM to systemd-nspawn is a clean poweroff of the root.
root_poweroff() {
  [ -n "$NSPAWN_PID" ] || return 0
  kill -TERM "$NSPAWN_PID" 2>/dev/null
  wait_until 120 bash -c "! kill -0 $NSPAWN_PID" || return 1
  wait "$NSPAWN_PID" 2>/dev/null
  NSPAWN_PID='' LEADER=''
}

# root_stop: at exit; a root that does not power off is killed (its PID 1
# first: that ends its PID namespace).
root_stop() {
  [ -n "$NSPAWN_PID" ] || return 0
  if ! root_poweroff; then
    echo "# the root did not power off: killed"
    [ -n "$LEADER" ] && kill -KILL "$LEADER" 2>/dev/null
    kill -KILL "$NSPAWN_PID" 2>/dev/null
    wait "$NSPAWN_PID" 2>/dev/null
    NSPAWN_PID=
  fi
}

# svc_prop PROPERTY [UNIT]: a property of lmzd@hello (or UNIT).
svc_prop() { in_root systemctl show -p "$1" --value "${2:-lmzd@hello}"; }
export -f svc_prop

# svc_wait_ready: lmzd@hello active, its ports written and its page served;
# sets SVC_NODE (ip:port) and SVC_HTTP (http://ip:port).
svc_wait_ready() {
  local d=$T/root/var/lib/lmz/hello
  wait_until 60 bash -c '[ "$(svc_prop ActiveState)" = active ] && test -s "$1/http.port" -a -s "$1/node.port"' _ "$d" ||
    return 1
  SVC_NODE=127.0.0.1:$(cat "$d/node.port")
  SVC_HTTP=http://127.0.0.1:$(cat "$d/http.port")
  wait_until 30 curl -sf -o /dev/null "$SVC_HTTP/"
}

# ---- host-side clients (as install.sh) ---------------------------------------
. "$SRC/tests/lib/skeleton_page.sh" # browser_check, kill_browsers
DEPS_OK=1
bash "$SRC/scripts/install-test-deps.sh" >"$T/deps.log" 2>&1 ||
  { DEPS_OK=0; echo "# install-test-deps.sh failed:"; tail -5 "$T/deps.log"; }


# node_call WHAT: `npm pack` of clients/js (and its ws) installed offline
# into a fresh project; Node.js calls both actors of $SVC_HTTP with $TOK.
node_call() {
  if ! command -v npm >/dev/null || ! command -v node >/dev/null || [ "$DEPS_OK" != 1 ] ||
     [ ! -f "$SRC/clients/js/node_modules/ws/package.json" ]; then
    skip "$1: node/npm or clients/js's ws dependency not available"
    return
  fi
  mkdir -p "$T/npm" "$T/jsapp" "$T/npm-cache"
  local tgz out
  tgz=$(cd "$T/npm" && npm pack --silent "$SRC/clients/js" 2>>"$T/npm.log" | tail -1)
  (cd "$T/npm" && npm pack --silent "$SRC/clients/js/node_modules/ws" >/dev/null 2>>"$T/npm.log")
  printf '{"name":"lmz-root-test","version":"1.0.0","private":true,"type":"module"}\n' >"$T/jsapp/package.json"
  if [ -z "$tgz" ] || ! (cd "$T/jsapp" && npm_config_cache="$T/npm-cache" timeout 120 npm install \
       --offline --no-audit --no-fund "$T/npm/$tgz" "$T"/npm/ws-*.tgz) >>"$T/npm.log" 2>&1; then
    bad "$1: npm pack + install"; tail -10 "$T/npm.log"; return
  fi
  cp "$SRC/tests/integration/install_call.mjs" "$T/jsapp/call.mjs"
  out=$(cd "$T/jsapp" && timeout 60 node call.mjs "$SVC_HTTP" "$TOK" 2>&1)
  check "$1 (got: ${out:0:200})" test "$out" = '{"total":7,"hello":"Hello, Node!"}'
}

done_all() {
  [ ${#SKIPPED[@]} -eq 0 ] || printf 'SKIPPED PARTS (%d): %s\n' ${#SKIPPED[@]} "$(IFS=';'; echo "${SKIPPED[*]}")"
  finish
  exit $?
}
