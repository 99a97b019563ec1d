#!/usr/bin/env bash
# tests/integration/js_client_unit.sh - the JavaScript client's own suite
# (clients/js/test/*.test.js on Node's test runner): SC-JSON codec against the
# shared vectors (tests/vectors/scjson.json), continuations, the client against
# a mock socket and against a real `ws` server, and the type declarations.
# Installs the npm dependencies first when they are not current (a no-op
# otherwise). Exits with node's status.
set -u
SRC=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

bash "$SRC/scripts/install-test-deps.sh" || { echo "js_client_unit.sh: installing test dependencies failed"; exit 1; }
command -v node >/dev/null || { echo "js_client_unit.sh: node not found"; exit 1; }

cd "$SRC/clients/js" || exit 1
exec node --test test/*.test.js
