#!/usr/bin/env bash
# tests/integration/gateway_node.sh - black-box tests of the client gateway
# (tests/e2e/gateway.test.js on Node's test runner) against a real
# `lmzd --dev` on ephemeral ports: handshake statuses, supersession,
# client->mesh calls, token expiry, mesh->client calls (the editor flow),
# grace periods, hostile input, the files --dev serves. Then lmzd must still
# be alive and stop cleanly on SIGTERM.
# Installs the test dependencies first (a no-op when current). Prints the
# runner's report and a closing "N passed, M failed"; exits non-zero on
# any failure. lmzd is killed at exit whatever happens (it_lib.sh).
set -u
SRC=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/lib/it_lib.sh"

bash "$SRC/scripts/install-test-deps.sh" || { echo "gateway_node.sh: installing test dependencies failed"; exit 1; }
command -v node >/dev/null || { echo "gateway_node.sh: node not found"; exit 1; }

# lmzd --dev finds examples/editor/web and clients/js/src from the repo root
# (also when the build directory is outside the source tree).
cd "$SRC" || exit 1
D=$T/data
if ! start_lmzd "$D" || ! wait_until 20 test -s "$D/http.port"; then
  bad "lmzd --dev started"
  finish
  exit 1
fi

export LMZ_HTTP="http://127.0.0.1:$(cat "$D/http.port")" LMZ_DATA=$D LMZ_NODE=$NODE LMZ_BIN_DIR=$BIN
timeout -k 10 500 node --test --test-timeout=300000 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$T/tap" tests/e2e/gateway.test.js
node_rc=$?
NPASS=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$T/tap" | tail -1)
NFAIL=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$T/tap" | tail -1)
PASS=$((PASS + ${NPASS:-0}))
FAIL=$((FAIL + ${NFAIL:-0}))
[ "$node_rc" -eq 0 ] || [ "${NFAIL:-0}" -gt 0 ] || bad "node test runner exited $node_rc"
# a runner that found no test (or wrote no report) must not pass
[ "${NPASS:-0}" -gt 0 ] || bad "the node suite ran no passing test (no TAP report?)"

if kill -0 "$LMZD_PID" 2>/dev/null; then
  ok "lmzd still running after the suite"
else
  wait "$LMZD_PID"
  bad "lmzd still running after the suite (it exited with status $?)"
fi
kill -TERM "$LMZD_PID" 2>/dev/null
if wait_until 20 sh -c "! kill -0 $LMZD_PID"; then
  wait "$LMZD_PID"
  check "lmzd stops cleanly on SIGTERM (exit 0)" test $? -eq 0
else
  bad "lmzd stops within 20 s of SIGTERM"
fi
if grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' "$D.log"; then
  bad "sanitizer reports in the lmzd log"
fi
[ "$FAIL" -eq 0 ] || { echo "--- lmzd log (last 40 lines) ---"; tail -40 "$D.log"; }
finish
