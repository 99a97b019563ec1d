#!/usr/bin/env bash
# tests/integration/editor_e2e.sh - the editor page end to end in a real
# browser: tests/e2e/editor.browser.test.js drives Debian's Chromium
# (/usr/bin/chromium) with playwright-core against a real `lmzd --dev` on
# ephemeral ports (two tabs, live updates, spell findings for "teh").
# Installs the test dependencies first (Chromium and npm packages; a no-op
# when current). Prints the runner's report and a closing
# "N passed, M failed"; exits non-zero on any failure. At exit, lmzd and
# every browser process of this run (found by the scratch folder in their
# command line: the browser profile lives under it) are killed, also on
# failure. LMZ_E2E_SCREENSHOTS=DIR keeps screenshots of the tabs;
# LMZ_CHROMIUM=PATH uses another Chromium binary.
set -u
SRC=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/lib/it_lib.sh"

bash "$SRC/scripts/install-test-deps.sh" || { echo "editor_e2e.sh: installing test dependencies failed"; exit 1; }
command -v node >/dev/null || { echo "editor_e2e.sh: node not found"; exit 1; }

# Browser processes of this run: their command lines name $T/tmp/ (the
# browser profile is there, and HOME too, so the crash handler's database).
# Playwright starts the browser in its own process group: kill the group.
kill_browsers() {
  local p pid pg cmd mine
  mine=$(ps -o pgid= -p $$ | tr -d ' ')
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    [[ $cmd == *"$T/tmp/"* ]] || continue
    pg=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')
    [ -n "$pg" ] && [ "$pg" != "$mine" ] && kill -9 -- "-$pg" 2>/dev/null
    kill -9 "$pid" 2>/dev/null
  done
}
trap 'kill_browsers; cleanup' EXIT

cd "$SRC" || exit 1
D=$T/data
if ! start_lmzd "$D" || ! wait_until 20 test -s "$D/http.port"; then
  bad "lmzd --dev started"
  finish
  exit 1
fi

mkdir -p "$T/tmp"
export LMZ_HTTP="http://127.0.0.1:$(cat "$D/http.port")" LMZ_DATA=$D LMZ_NODE=$NODE LMZ_BIN_DIR=$BIN
HOME="$T/tmp" TMPDIR="$T/tmp" timeout -k 10 500 node --test --test-timeout=300000 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$T/tap" tests/e2e/editor.browser.test.js
node_rc=$?
NPASS=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$T/tap" | tail -1)
NFAIL=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$T/tap" | tail -1)
PASS=$((PASS + ${NPASS:-0}))
FAIL=$((FAIL + ${NFAIL:-0}))
[ "$node_rc" -eq 0 ] || [ "${NFAIL:-0}" -gt 0 ] || bad "node test runner exited $node_rc"
# a runner that found no test (or wrote no report) must not pass
[ "${NPASS:-0}" -gt 0 ] || bad "the node suite ran no passing test (no TAP report?)"
if kill -0 "$LMZD_PID" 2>/dev/null; then
  ok "lmzd still running after the browser test"
else
  wait "$LMZD_PID"
  bad "lmzd still running after the browser test (it exited with status $?)"
fi
kill_browsers
kill -TERM "$LMZD_PID" 2>/dev/null
if wait_until 20 sh -c "! kill -0 $LMZD_PID"; then
  wait "$LMZD_PID"
  check "lmzd stops cleanly on SIGTERM (exit 0)" test $? -eq 0
else
  bad "lmzd stops within 20 s of SIGTERM"
fi
[ "$FAIL" -eq 0 ] || { echo "--- lmzd log (last 40 lines) ---"; tail -40 "$D.log"; }
finish
