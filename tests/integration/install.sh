#!/usr/bin/env bash
# tests/integration/install.sh - lmz as a new user gets it (issue 14):
#  1. `cmake --install` of the build tree into a temp prefix: the files are
#     there, and every function of the installed headers is exported by the
#     installed lmzd (modules) or liblmz-testing (tests);
#  2. `lmz init` from the prefix; the skeleton builds with pkg-config only
#     (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig, nothing of the source tree in
#     its build) and its unit test passes;
#  3. lmzd from the prefix runs the skeleton (`--dev --config app.jsonc`,
#     ephemeral ports); the installed `lmz` calls its durable object and
#     worker; its page and the JS client are served; headless Chromium
#     loads the page, which calls both actors (import map);
#  4. `npm pack` of clients/js installed offline into a fresh Node project
#     (with `ws` packed from clients/js/node_modules) calls the same node;
#     the app as a service would run it (no --dev, a token from
#     `lmz token mint`) answers the page in Chromium;
#  5. the .deb (cpack in a temp folder, reusing the build tree): contents,
#     Depends naming the Debian package of every NEEDED library, postinst;
#     extracted, its lmzd --dev serves the examples, the editor page and the
#     client from its own tree;
#  6. `systemd-analyze verify` on the installed lmzd@.service (its
#     ExecStart is the prefix's lmzd), with a broken copy as the control.
# Parts whose tools are missing (npm/node, Chromium, cpack/dpkg-deb,
# systemd-analyze) are skipped with a "skip -" line and listed at the end;
# without cmake, pkg-config or a C compiler nothing can run, and a sanitizer
# build is not what gets installed: exit 77. Every process started is killed
# at exit; the scratch folder is removed.
set -u
SRC=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/lib/it_lib.sh"
BUILD=$(cd "$BIN/.." && pwd)
SKIPPED=()
skip() { SKIPPED+=("$1"); echo "skip - $1"; }
done_all() {
  [ ${#SKIPPED[@]} -eq 0 ] || printf 'SKIPPED PARTS (%d): %s\n' ${#SKIPPED[@]} "$(IFS=';'; echo "${SKIPPED[*]}")"
  finish
  exit $?
}
for tool in cmake pkg-config cc make; do
  command -v $tool >/dev/null || { echo "install.sh: $tool not found; test skipped"; exit 77; }
done
# A sanitizer build's liblmz-testing needs the sanitizer runtime in the
# application's test, which a plain `cc` build of the skeleton lacks: what is
# installed and packaged are plain builds.
if nm "$BIN/lmzd" 2>/dev/null | grep -qE ' __(asan|tsan|msan)_init$'; then
  echo "install.sh: $BUILD is a sanitizer build; the install test runs on plain builds only: skipped"
  exit 77
fi

# start_node LOG DATA LMZD ARGS...: lmzd on ephemeral ports; sets PID_N,
# NODE_N (ip:port) and HTTP_N (http://ip:port).
start_node() {
  local log=$1 data=$2 exe=$3
  shift 3
  "$exe" --data "$data" --listen 127.0.0.1:0 --http 127.0.0.1:0 "$@" >"$log" 2>&1 &
  PID_N=$!
  PIDS+=("$PID_N")
  wait_until 30 test -s "$data/http.port" || { echo "--- $log"; tail -20 "$log"; return 1; }
  wait_until 10 test -s "$data/node.port" || return 1
  NODE_N=127.0.0.1:$(cat "$data/node.port")
  HTTP_N=http://127.0.0.1:$(cat "$data/http.port")
}
stop_node() { # stop_node WHAT: SIGTERM, expect exit 0
  kill -TERM "$PID_N" 2>/dev/null
  if wait_until 20 sh -c "! kill -0 $PID_N"; then
    wait "$PID_N"
    check "$1 stops cleanly on SIGTERM (exit 0)" test $? -eq 0
  else
    bad "$1 stops within 20 s of SIGTERM"
  fi
}
http_code() { curl -s -o /dev/null -w '%{http_code}' "$1"; }
. "$SRC/tests/lib/skeleton_page.sh" # browser_check, kill_browsers
trap 'kill_browsers; cleanup' EXIT

# Node, npm packages of clients/js and tests/e2e, Chromium (a no-op when
# current); the parts that need them are skipped when this fails.
DEPS_OK=1
bash "$SRC/scripts/install-test-deps.sh" >"$T/deps.log" 2>&1 ||
  { DEPS_OK=0; echo "# install-test-deps.sh failed:"; tail -5 "$T/deps.log"; }

# ---- 1. install into a temp prefix -----------------------------------------
P=$T/prefix
if ! cmake --install "$BUILD" --prefix "$P" >"$T/install.log" 2>&1; then
  bad "cmake --install into a temp prefix"; cat "$T/install.log"; done_all
fi
ok "cmake --install into a temp prefix"
for f in bin/lmzd bin/lmz include/lmz/lmz.h include/lmz/testing.h include/lmz/value.h \
         include/lmz/http.h include/lmz/gateway.h lib/pkgconfig/lmz.pc lib/pkgconfig/lmz-testing.pc \
         lib/liblmz-testing.so lib/lmz/libcounter.so lib/lmz/libeditor.so \
         share/lmz/editor/index.html share/lmz/client/index.js share/lmz/examples/counter.c \
         lib/systemd/system/lmzd@.service lib/sysusers.d/lmz.conf; do
  [ -e "$P/$f" ] || bad "installed: $f"
done
ok "installed files present (binaries, headers, .pc, test kit, examples, web files, unit)"

# Functions declared in a header (not static inline, not the module's own).
declared() {
  grep -v 'static inline' "$@" | grep -ohE '\blmz_[a-z0-9_]+[[:space:]]*\(' |
    sed 's/[[:space:]]*($//' | grep -vx 'lmz_module_init' | sort -u
}
missing_syms() { # missing_syms BINARY HEADERS...: declared but not exported
  local bin=$1
  shift
  comm -23 <(declared "$@") <(nm -D --defined-only "$bin" | awk '{print $3}' | sort -u)
}
H=$P/include/lmz
n_api=$(declared "$H/lmz.h" "$H/value.h" "$H/http.h" "$H/gateway.h" | wc -l)
miss=$(missing_syms "$P/bin/lmzd" "$H/lmz.h" "$H/value.h" "$H/http.h" "$H/gateway.h")
check "lmzd exports all $n_api public API functions a module calls${miss:+ (missing: $miss)}" \
  test "$n_api" -gt 50 -a -z "$miss"
n_kit=$(declared "$H/testing.h" "$H/lmz.h" "$H/value.h" | wc -l)
miss=$(missing_syms "$P/lib/liblmz-testing.so" "$H/testing.h" "$H/lmz.h" "$H/value.h")
check "liblmz-testing exports the $n_kit functions of testing.h, lmz.h, value.h${miss:+ (missing: $miss)}" \
  test "$n_kit" -gt 60 -a -z "$miss"

# ---- 2. lmz init + build against the prefix with pkg-config only ------------
export PKG_CONFIG_PATH=$P/lib/pkgconfig
unset PKG_CONFIG_LIBDIR
APP=$T/apps/hello-app
mkdir -p "$T/apps"
out=$("$P/bin/lmz" init "$APP" --name hello 2>&1)
check "lmz init DIR --name hello creates the skeleton" \
  test -f "$APP/src/app.c" -a -f "$APP/test/test_app.c" -a -f "$APP/CMakeLists.txt" \
       -a -f "$APP/app.jsonc" -a -f "$APP/Makefile" -a -f "$APP/README.md" -a -f "$APP/web/index.html"
check "the name is substituted everywhere" \
  bash -c '! grep -rq "@NAME@" "$1" && grep -q "project(hello " "$1/CMakeLists.txt" && grep -q "libhello.so" "$1/app.jsonc"' _ "$APP"
err=$("$P/bin/lmz" init "$APP" 2>&1); rc=$?
check "lmz init into a non-empty folder: exit 2, nothing touched" \
  bash -c '[ "$1" = 2 ] && grep -q "not an empty folder" <<<"$2" && [ -z "$(ls -d "$3".init-* 2>/dev/null)" ]' _ "$rc" "$err" "$APP"
err=$("$P/bin/lmz" init "$T/apps/x" --name '1;rm' 2>&1); rc=$?
check "lmz init with an invalid name: exit 2, no folder" \
  bash -c '[ "$1" = 2 ] && grep -q "invalid name" <<<"$2" && [ ! -e "$3" ]' _ "$rc" "$err" "$T/apps/x"

if (cd "$APP" && timeout 300 make test) >"$T/app-test.log" 2>&1; then
  ok "the skeleton builds against the prefix and its unit test passes (make test)"
else
  bad "the skeleton builds against the prefix and its unit test passes (make test)"
  tail -30 "$T/app-test.log"
fi
check "its unit test ran its checks" bash -c \
  '[ -x "$1/build/test_app" ] && out=$("$1/build/test_app") && grep -q "^ok - increment(5)" <<<"$out" && grep -q "^all passed" <<<"$out"' _ "$APP"
check "nothing of the source tree is in the skeleton's build" \
  bash -c '[ -f "$1/build/CMakeCache.txt" ] && ! grep -rqF "$2" "$1/build"' _ "$APP" "$SRC"
check "the skeleton found lmz in the prefix" grep -qF "$P" "$APP/build/CMakeCache.txt"

# ---- 3. lmzd from the prefix runs the skeleton -------------------------------
# Module and static paths in app.jsonc are relative to the file itself.
if [ -f "$APP/build/libhello.so" ] &&
   start_node "$T/app-node.log" "$T/app-data" "$P/bin/lmzd" --dev --config "$APP/app.jsonc"; then
  ok "lmzd from the prefix starts with the skeleton's config (--dev --config)"
  lc() { "$P/bin/lmz" call --node "$NODE_N" --data "$T/app-data" "$@"; }
  check "installed lmz calls the app's durable object" test "$(lc COUNTER_DO a increment 5)" = '{"json":5,"meta":{}}'
  check "... and its state persists between calls" test "$(lc COUNTER_DO a increment)" = '{"json":6,"meta":{}}'
  check "installed lmz calls the app's worker (with its var)" \
    test "$(lc HELLO_WORKER - hello '"Ada"')" = '{"json":"Hello, Ada!","meta":{}}'
  check "the app's page is served at /" bash -c 'curl -s "$1/" | grep -q "<title>hello</title>"' _ "$HTTP_N"
  check "the JS client is served at /lmz-client/ (from the prefix)" \
    bash -c '[ "$(curl -s "$1/lmz-client/index.js")" = "$(cat "$2")" ]' _ "$HTTP_N" "$P/share/lmz/client/index.js"
  check "--dev gives the dev token endpoint" bash -c 'curl -s "$1/_lmz/dev-token" | grep -q access_token' _ "$HTTP_N"
  browser_check "a browser calls the app from its page (import map -> /lmz-client/, dev token)" "$HTTP_N/"
else
  bad "lmzd from the prefix starts with the skeleton's config"
  tail -20 "$T/app-node.log" 2>/dev/null
  PID_N=
fi

# ---- 4. clients/js as an npm package, from Node -------------------------------
js_part() {
  if ! command -v npm >/dev/null || ! command -v node >/dev/null ||
     [ "$DEPS_OK" != 1 ] ||
     [ ! -f "$SRC/clients/js/node_modules/ws/package.json" ]; then
    skip "npm package: node/npm or clients/js's ws dependency not available"
    return
  fi
  mkdir -p "$T/npm" "$T/jsapp" "$T/npm-cache"
  local tgz
  tgz=$(cd "$T/npm" && npm pack --silent "$SRC/clients/js" 2>"$T/npm-pack.log" | tail -1)
  check "npm pack clients/js gives a tarball" test -n "$tgz" -a -f "$T/npm/$tgz"
  [ -f "$T/npm/$tgz" ] || return
  check "the tarball has the sources, types and README, not the tests" bash -c \
    'l=$(tar tzf "$1"); grep -qx package/src/index.js <<<"$l" && grep -qx package/src/index.d.ts <<<"$l" &&
     grep -qx package/README.md <<<"$l" && ! grep -q "^package/test/" <<<"$l"' _ "$T/npm/$tgz"
  (cd "$T/npm" && npm pack --silent "$SRC/clients/js/node_modules/ws" >/dev/null 2>>"$T/npm-pack.log")
  printf '{"name":"lmz-install-test","version":"1.0.0","private":true,"type":"module"}\n' >"$T/jsapp/package.json"
  if (cd "$T/jsapp" && npm_config_cache="$T/npm-cache" timeout 120 npm install --offline --no-audit \
        --no-fund "$T/npm/$tgz" "$T"/npm/ws-*.tgz) >"$T/npm-install.log" 2>&1; then
    ok "npm install of the tarball into a fresh project (offline)"
  else
    bad "npm install of the tarball into a fresh project (offline)"; tail -10 "$T/npm-install.log"; return
  fi
  cp "$SRC/tests/integration/install_call.mjs" "$T/jsapp/call.mjs"
  local out
  out=$(cd "$T/jsapp" && timeout 60 node call.mjs "$HTTP_N" 2>&1)
  check "Node calls the app through the installed @lmz/client (got: ${out:0:200})" \
    test "$out" = '{"total":7,"hello":"Hello, Node!"}'
}
if [ -n "$PID_N" ]; then
  js_part
  stop_node "lmzd from the prefix"
else
  skip "npm package: no node to call (see the failure above)"
fi

# ---- 4b. as a service would run it (README "Run as a service") ---------------
# No --dev: the config names the module by absolute path, the page's folder
# holds a copy of the client, dev_keys lets `lmz token mint` sign tokens.
if [ -f "$APP/build/libhello.so" ]; then
  SVC=$T/svc
  mkdir -p "$SVC"
  cp -r "$APP/web" "$SVC/web" && cp -r "$P/share/lmz/client" "$SVC/web/lmz-client"
  sed -e "s|\"build/libhello.so\"|\"$APP/build/libhello.so\"|" \
      -e 's|"gateway": { "static": "web" }|"gateway": { "static": "web", "jwt": { "dev_keys": true } }|' \
      "$APP/app.jsonc" >"$SVC/hello.jsonc"
  if start_node "$T/svc-node.log" "$SVC/data" "$P/bin/lmzd" --config "$SVC/hello.jsonc"; then
    ok "lmzd --config (no --dev) starts with the app"
    check "no dev token endpoint without --dev" test "$(http_code "$HTTP_N/_lmz/dev-token")" = 404
    tok=$("$P/bin/lmz" token mint --data "$SVC/data" --sub alice 2>&1)
    check "lmz token mint signs a token with the node's dev keys" test -n "$tok" -a "${#tok}" -gt 100
    browser_check "a browser calls the app as served by a service (#token=)" "$HTTP_N/#token=$tok"
    stop_node "the service-mode lmzd"
  else
    bad "lmzd --config (no --dev) starts with the app"
  fi
fi

# ---- 5. the Debian package ----------------------------------------------------
deb_part() {
  if ! command -v cpack >/dev/null || ! command -v dpkg-deb >/dev/null; then
    skip "Debian package: cpack or dpkg-deb not available"
    return
  fi
  if ! (cd "$BUILD" && timeout 300 cpack -G DEB -B "$T/deb") >"$T/cpack.log" 2>&1; then
    bad "cpack -G DEB builds the package"; tail -20 "$T/cpack.log"; return
  fi
  local deb
  deb=$(ls "$T"/deb/lmz_*.deb 2>/dev/null | head -1)
  check "cpack -G DEB builds lmz_<version>_<arch>.deb" test -n "$deb"
  [ -n "$deb" ] || return
  local list
  list=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for f in ./usr/bin/lmzd ./usr/bin/lmz ./usr/include/lmz/lmz.h ./usr/include/lmz/testing.h \
           ./usr/lib/pkgconfig/lmz.pc ./usr/lib/pkgconfig/lmz-testing.pc ./usr/lib/liblmz-testing.so.0 \
           ./usr/lib/lmz/libcounter.so ./usr/share/lmz/editor/index.html ./usr/share/lmz/client/index.js \
           ./usr/lib/systemd/system/lmzd@.service ./usr/lib/sysusers.d/lmz.conf; do
    grep -qxF "$f" <<<"$list" || bad "the .deb holds $f"
  done
  ok "dpkg-deb -c: binaries, headers, .pc files, test kit, examples, web files, unit"
  check "the packaged unit runs /usr/bin/lmzd" bash -c \
    'dpkg-deb --fsys-tarfile "$1" | tar xO ./usr/lib/systemd/system/lmzd@.service | grep -q "^ExecStart=/usr/bin/lmzd "' _ "$deb"
  check "the .deb has a postinst creating the lmz user" \
    bash -c 'dpkg-deb --ctrl-tarfile "$1" | tar xO ./postinst | grep -q "adduser --system"' _ "$deb"
  check "the .deb has a prerm stopping the lmzd@ nodes on removal, a postinst restarting them on upgrade" bash -c \
    'dpkg-deb --ctrl-tarfile "$1" | tar xO ./prerm | grep -q "systemctl stop .lmzd@\*.service." &&
     dpkg-deb --ctrl-tarfile "$1" | tar xO ./postinst | grep -q "systemctl try-restart .lmzd@\*.service."' _ "$deb"
  local depends
  depends=$(dpkg-deb -f "$deb" Depends)
  echo "# Depends: $depends"
  mkdir -p "$T/root"
  dpkg-deb -x "$deb" "$T/root"
  # Every NEEDED library of the packaged binaries must come from a package
  # named in Depends (found with dpkg -S, as Debian's own shlibs would).
  local lib path pkg missing=
  local needed
  needed=$(for b in "$T/root/usr/bin/lmzd" "$T/root/usr/bin/lmz" "$T/root/usr/lib/liblmz-testing.so.0"; do
             readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; done | sort -u)
  for lib in $needed; do
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|64bit|x86_64/ {print $NF; exit}')
    [ -n "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
    pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "/usr$(readlink -f "$path")" 2>/dev/null ||
          dpkg -S "${path#/usr}" 2>/dev/null || dpkg -S "$path" 2>/dev/null)
    pkg=${pkg%%:*}
    if [ -z "$pkg" ] || ! grep -qE "(^|, )$pkg( |,|$)" <<<"$depends"; then
      missing="$missing $lib(${pkg:-no package})"
    fi
  done
  check "Depends names the Debian package of each of $(wc -w <<<"$needed") NEEDED libraries${missing:+ (missing:$missing)}" \
    test -n "$needed" -a -z "$missing"
  check "Depends names libsqlite3-0 (SQL storage)" grep -q "libsqlite3-0" <<<"$depends"
  # The packaged lmzd, as installed on a clean machine: --dev finds the
  # example modules, the editor and the client relative to its executable.
  if start_node "$T/deb-node.log" "$T/deb-data" "$T/root/usr/bin/lmzd" --dev; then
    ok "the packaged lmzd --dev starts"
    check "packaged lmz calls the example counter" \
      test "$("$T/root/usr/bin/lmz" call --node "$NODE_N" --data "$T/deb-data" COUNTER_DO a increment 2)" = '{"json":2,"meta":{}}'
    check "packaged lmzd --dev serves the editor page" \
      bash -c '[ "$(curl -s "$1/")" = "$(cat "$2")" ]' _ "$HTTP_N" "$T/root/usr/share/lmz/editor/index.html"
    check "packaged lmzd --dev serves the client at /lmz-client/" test "$(http_code "$HTTP_N/lmz-client/client.js")" = 200
    stop_node "the packaged lmzd"
  else
    bad "the packaged lmzd --dev starts"
  fi
}
deb_part

# ---- 6. the systemd unit ---------------------------------------------------------
U=$P/lib/systemd/system/lmzd@.service
check "unit: one instance per config, data in /var/lib/lmz, user lmz, restart on failure" bash -c \
  'grep -qx "ExecStart=$2/bin/lmzd --config /etc/lmz/%i.jsonc --data /var/lib/lmz/%i" "$1" &&
   grep -qx "StateDirectory=lmz/%i" "$1" && grep -qx "User=lmz" "$1" && grep -qx "Restart=on-failure" "$1"' _ "$U" "$P"
nofile=$(sed -n 's/^LimitNOFILE=//p' "$U")
check "unit: LimitNOFILE=$nofile allows thousands of WebSocket clients (>= 65536)" test "${nofile:-0}" -ge 65536
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$T/units"
  out=$(systemd-analyze verify "$P/lib/systemd/system/lmzd@app.service" 2>&1); rc=$?
  check "systemd-analyze verify lmzd@app.service: no complaint${out:+ ($out)}" test "$rc" = 0 -a -z "$out"
  sed 's/^Restart=on-failure/Restart=on-failur/' "$U" >"$T/units/broken@.service"
  out=$(systemd-analyze verify "$T/units/broken@x.service" 2>&1)
  check "control: systemd-analyze complains about a broken copy" grep -qi "restart" <<<"$out"
else
  skip "systemd-analyze verify: systemd-analyze not installed"
fi

done_all
