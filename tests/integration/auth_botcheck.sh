#!/usr/bin/env bash
# tests/integration/auth_botcheck.sh - the bot check on the magic-link POST
# (gateway/botcheck.c, config auth.bot_check) against a real `lmzd --dev`
# and a fake Turnstile siteverify (node, port 0) that answers by token:
# "pass" -> success, "fail" -> failure with error-codes, "slow" -> no answer
# (the check's timeout), "garbage" -> not JSON. Checks the answers (200 /
# 403 turnstile_required / 403 turnstile_failed + error_codes / 400), that
# only a passed check sends mail (dev outbox), the form siteverify gets
# (secret, response, remoteip), and that the actor is not held while a
# check is in flight (another auth request answers meanwhile). Also the
# auth routes' gateway rules: Access-Control-Allow-Credentials for an
# allowed origin, 413 for an oversized body before the actor sees it, and
# an auth.prefix overlapping gateway.route_prefix (or the gateway's own
# routes) refused at start, exit 2; a start that fails after the auth
# service, its mail sender and the bot check's client were created closes
# them all (lmzd leaves nothing on its loop).
# Prints "N passed, M failed".
. "$(dirname "$0")/../lib/it_lib.sh"
command -v curl >/dev/null || { echo "curl not installed: skipped"; exit 77; }
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }

LIB=${LMZ_LIB_DIR:?LMZ_LIB_DIR not set}
cat >"$T/sv.mjs" <<'JS'
import http from 'node:http';
import fs from 'node:fs';
const [portFile, logFile] = process.argv.slice(2);
const srv = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    fs.appendFileSync(logFile, `${req.method} ${req.headers['content-type']} ${body}\n`);
    const tok = new URLSearchParams(body).get('response');
    if (tok === 'slow') return; /* never answers */
    res.writeHead(200, {'Content-Type': 'application/json'});
    if (tok === 'pass') res.end('{"success":true}');
    else if (tok === 'garbage') res.end('<html>not json');
    else res.end('{"success":false,"error-codes":["invalid-input-response"]}');
  });
});
srv.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(srv.address().port)));
JS
node "$T/sv.mjs" "$T/sv.port" "$T/sv.log" &
PIDS+=("$!")
wait_until 20 test -s "$T/sv.port" || { bad "the fake siteverify starts"; finish; exit 1; }

D=$T/data
mkdir -p "$D"
cat >"$T/node.jsonc" <<JSON
{
  "modules": ["$LIB/libcounter.so"],
  "services": [{"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"}],
  "gateway": {"cors_origins": ["https://app.example"]},
  "auth": {
    "bot_check": {"secret": "s3cr&t", "timeout_ms": 1500,
                  "endpoint": "http://127.0.0.1:$(cat "$T/sv.port")/siteverify"}
  }
}
JSON
start_lmzd "$D" --config "$T/node.jsonc" || exit 1
H="http://127.0.0.1:$(cat "$D/http.port")"
req() { # req METHOD PATH [curl args...]: body $T/b, headers $T/h, status $S
  local m=$1 p=$2; shift 2
  S=$(curl -s -o "$T/b" -D "$T/h" -w '%{http_code}' -X "$m" "$@" "$H$p")
}
hdr() { grep -i "^$1:" "$T/h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
routed() { curl -s "$H/_lmz/status" | sed -E 's/.*"routed":([0-9]+).*/\1/'; }
mails() { find "$D/outbox" -name '*.eml' 2>/dev/null | wc -l; }
magic() { req POST /auth/email-magic-link -d "{\"email\":\"$1\"${2:+,\"cf-turnstile-response\":\"$2\"}}"; }

magic ann@example.com pass
check "a passed check: 200 and the generic message" \
  grep -q '"message":"Check your email for the magic link"' "$T/b"
wait_until 10 test "$(mails)" = 1
check "a passed check: the mail is sent" test "$(mails)" = 1
check "siteverify got the form {secret, response, remoteip}" \
  grep -q '^POST application/x-www-form-urlencoded secret=s3cr%26t&response=pass&remoteip=127.0.0.1$' "$T/sv.log"

R0=$(routed)
magic bob@example.com fail
check "a refused check never reaches the actor" test "$(routed)" = "$R0"
check "a failed check: 403 turnstile_failed with siteverify's error_codes" bash -c \
  "[ $S = 403 ] && grep -q '\"error\":\"turnstile_failed\".*\"error_codes\":\[\"invalid-input-response\"\]' '$T/b'"
magic bob@example.com
check "no token: 403 turnstile_required" bash -c "[ $S = 403 ] && grep -q turnstile_required '$T/b'"
req POST /auth/email-magic-link -d '{"email":'
check "bad JSON: 400 invalid_request" bash -c "[ $S = 400 ] && grep -q invalid_request '$T/b'"
magic bob@example.com garbage
check "siteverify answers no JSON: 403 turnstile_failed" bash -c \
  "[ $S = 403 ] && grep -q 'siteverify-bad-answer' '$T/b'"

# a check that never gets its answer: the actor still serves meanwhile
curl -s -o "$T/slow" -w '%{http_code}' -X POST "$H/auth/email-magic-link" \
  -d '{"email":"cy@example.com","cf-turnstile-response":"slow"}' >"$T/slow.code" &
SLOW=$!
wait_until 10 grep -q 'response=slow' "$T/sv.log"
req POST /auth/refresh-token
check "while a check is in flight the auth actor answers others" \
  bash -c "[ $S = 401 ] && ! test -s '$T/slow.code'"
wait "$SLOW"
check "the check times out: 403 turnstile_failed" bash -c \
  "[ \"\$(cat '$T/slow.code')\" = 403 ] && grep -q siteverify-unavailable '$T/slow'"
check "no mail for any refused request" test "$(mails)" = 1
req POST /auth/logout
check "other auth POSTs are not checked" test "$S" = 200

# ---- the auth routes' gateway rules ---------------------------------------
req POST /auth/refresh-token -H 'Origin: https://app.example'
check "auth route, allowed origin: Allow-Credentials: true" \
  test "$(hdr Access-Control-Allow-Origin)" = https://app.example -a \
       "$(hdr Access-Control-Allow-Credentials)" = true
req OPTIONS /auth/refresh-token -H 'Origin: https://app.example'
check "auth route preflight: Allow-Credentials: true" test "$S" = 204 -a \
  "$(hdr Access-Control-Allow-Credentials)" = true
req POST /auth/refresh-token -H 'Origin: https://evil.example'
check "auth route, other origin: 403, no credentials" test "$S" = 403 -a \
  -z "$(hdr Access-Control-Allow-Credentials)"
head -c 20000 /dev/zero | tr '\0' 'a' >"$T/big"
R0=$(routed)
req POST /auth/logout --data-binary @"$T/big"
R1=$(routed)
check "an oversized body under the prefix: 413, never forwarded" bash -c \
  "[ $S = 413 ] && grep -q 'Request body too large' '$T/b' && [ -n '$R0' ] && [ '$R1' = '$R0' ]"
# overlap CONFIG_GATEWAY_AND_AUTH: lmzd must refuse it (exit 2, clear error)
overlap() {
  printf '{%s}' "$1" >"$T/ov.jsonc"
  timeout 20 "$BIN/lmzd" --dev --config "$T/ov.jsonc" --data "$T/ov" \
    --listen 127.0.0.1:0 --http 127.0.0.1:0 >"$T/ov.log" 2>&1
  local rc=$?
  check "refused at start, exit 2: $1" bash -c \
    "[ $rc = 2 ] && grep -q 'auth.prefix .* overlaps' '$T/ov.log'"
}
overlap '"gateway": {"route_prefix": "/auth"}, "auth": {}'
overlap '"gateway": {"route_prefix": "auth/"}, "auth": {}'
overlap '"gateway": {"route_prefix": "/api"}, "auth": {"prefix": "/api/login"}'
overlap '"gateway": {"route_prefix": "/auth/v1"}'
overlap '"auth": {"prefix": "/gateway"}'

# the HTTP port is taken (by the fake siteverify): start fails late
cat >"$T/late.jsonc" <<JSON
{"auth": {"bot_check": {"secret": "x", "endpoint": "http://127.0.0.1:9/v"},
          "email": {"kind": "http", "from": "a@b.test", "http_url": "http://127.0.0.1:9/e",
                    "http_api_key": "k"}}}
JSON
timeout 20 "$BIN/lmzd" --dev --config "$T/late.jsonc" --data "$T/late" \
  --listen 127.0.0.1:0 --http "127.0.0.1:$(cat "$T/sv.port")" >"$T/late.log" 2>&1
rc=$?
check "a late start failure: exit 1, the loop left empty" bash -c \
  "[ $rc = 1 ] && grep -q 'address already in use' '$T/late.log' && ! grep -q 'left open' '$T/late.log'"
finish
