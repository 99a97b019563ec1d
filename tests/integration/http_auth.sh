#!/usr/bin/env bash
# tests/integration/http_auth.sh - hostile HTTP against a real `lmzd --dev`
# (issue 11 item 6): the actor routes /api/{binding}/{instance} need a
# verified bearer token before anything runs or is claimed.
#  - thousands of distinct actor names without a token: every one 401, and
#    the directory's actor count (`lmz status`), the claims counter
#    (/metrics lmz_cluster_claims_total), turns and activations unchanged;
#    `lmz locate` finds none of those names;
#  - forged signature, `alg: none`, expired, wrong aud, wrong iss, a token
#    of other keys, malformed headers: 401 (the original's bodies and
#    WWW-Authenticate); the access gate refusing: 403;
#  - a valid token: the turn runs and the handler sees origin auth's sub;
#  - a binding declared public (gateway.public_bindings) runs without one;
#  - per-subject limits (gateway.rate_limits): 429 + Retry-After on HTTP
#    and on WebSocket upgrades, other subjects unaffected;
#  - config mistakes (a public binding that is not a durable object, bad
#    limits) stop lmzd with FILE:LINE.
# lmzd binds port 0 and reports its ports in the data directory; every wait
# has a deadline; lmzd is killed at exit (it_lib.sh).
set -u
SRC=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/lib/it_lib.sh"
command -v curl >/dev/null || { echo "http_auth.sh: curl not found: skipped"; exit 77; }
LIB=${LMZ_LIB_DIR:-$BIN/../lib}
N_NAMES=${LMZ_HTTP_AUTH_NAMES:-3000}

cat >"$T/node.jsonc" <<CFG
{
  "modules": ["$LIB/libcounter.so"],
  "durable_objects": {"bindings": [
    {"name": "HTTP_COUNTER_DO", "class_name": "CounterHttpDO"},
    {"name": "WEBHOOK_DO", "class_name": "CounterHttpDO"}]},
  "services": [{"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"}],
  "gateway": {
    "public_bindings": ["WEBHOOK_DO"],
    "rate_limits": {"http": {"per_minute": 1, "burst": 5},
                    "connections": {"per_minute": 60, "burst": 1}}
  }
}
CFG

D=$T/data
mkdir -p "$D"
if ! start_lmzd "$D" --config "$T/node.jsonc" || ! wait_until 20 test -s "$D/http.port"; then
  bad "lmzd --dev --config started"
  finish
  exit 1
fi
PORT=$(cat "$D/http.port")
URL="http://127.0.0.1:$PORT"
mint() { "$BIN/lmz" token mint --data "$D" "$@"; }

# status TOKEN_HEADER_ARGS... URL_PATH: the HTTP status only
code() { curl -sS --max-time 15 -o /dev/null -w '%{http_code}' "$@"; }
metric() { curl -sS --max-time 10 "$URL/metrics" | sed -nE "s/^$1\{[^}]*\} ([0-9]+)$/\1/p"; }
actors() { "$BIN/lmz" status --node "$NODE" --data "$D" 2>/dev/null |
  grep -o '"actors":[0-9]*' | head -1 | cut -d: -f2; }

# --- a valid token runs a turn (and proves the counters move) -------------
ALICE=$(mint --sub alice)
check "lmz token mint makes a token" test "${#ALICE}" -gt 100
claims0=$(metric lmz_cluster_claims_total)
hdr=$(curl -sS --max-time 15 -D - -o "$T/body" -H "Authorization: Bearer $ALICE" \
  "$URL/api/http-counter-do/warm" | tr -d '\r')
check "valid token: 200 and the counter's body" \
  bash -c 'grep -q "^HTTP/1.1 200" <<<"$1" && grep -Eq "^total=0 node=node-1 activation=" "$2"' _ "$hdr" "$T/body"
check "the handler sees origin auth's sub (X-Origin-Sub: alice)" \
  grep -qi '^X-Origin-Sub: alice$' <<<"$hdr"
claims1=$(metric lmz_cluster_claims_total)
check "the claims counter is live: $claims0 -> $claims1 after one new actor" \
  bash -c '[ -n "$1" ] && [ -n "$2" ] && [ "$2" -gt "$1" ]' _ "$claims0" "$claims1"

# --- thousands of names without a token: refused, nothing claimed ---------
before_actors=$(actors)
before_claims=$(metric lmz_cluster_claims_total)
before_turns=$(metric lmz_turns_total)
before_act=$(metric lmz_activations_total)
check "lmz status reports the directory's actor count ($before_actors)" test -n "$before_actors"
: >"$T/urls"
for i in $(seq 1 "$N_NAMES"); do
  printf 'url = "%s"\noutput = "/dev/null"\n' "$URL/api/http-counter-do/grab-$i"
done >"$T/urls"
# one curl, keep-alive: every answer's status on its own line
curl -sS --max-time 300 -K "$T/urls" -w '%{http_code}\n' >"$T/codes" 2>"$T/curl.err"
n401=$(grep -c '^401$' "$T/codes")
check "$N_NAMES distinct actor names without a token: all 401 ($n401)" test "$n401" = "$N_NAMES"
# the same with junk and forged credentials on a few hundred names
sed -n '1,600p' "$T/urls" >"$T/urls300"
curl -sS --max-time 120 -K "$T/urls300" -H "Authorization: Bearer ${ALICE%?}x" \
  -w '%{http_code}\n' >"$T/codes2" 2>>"$T/curl.err"
check "300 names with a forged token: all 401" test "$(grep -c '^401$' "$T/codes2")" = 300
after_actors=$(actors)
after_claims=$(metric lmz_cluster_claims_total)
echo "# directory actors $before_actors -> $after_actors, claims $before_claims -> $after_claims"
check "nothing claimed: directory actors unchanged" \
  bash -c '[ -n "$1" ] && [ "$1" = "$2" ]' _ "$before_actors" "$after_actors"
check "nothing claimed: lmz_cluster_claims_total unchanged" \
  bash -c '[ -n "$1" ] && [ "$1" = "$2" ]' _ "$before_claims" "$after_claims"
check "no turn ran, nothing activated" bash -c '[ -n "$1" ] && [ "$1" = "$2" ] && [ -n "$3" ] && [ "$3" = "$4" ]' \
  _ "$before_turns" "$(metric lmz_turns_total)" "$before_act" "$(metric lmz_activations_total)"
loc=$("$BIN/lmz" locate --node "$NODE" --data "$D" HTTP_COUNTER_DO grab-17 2>&1)
echo "# lmz locate HTTP_COUNTER_DO grab-17: $loc"
check "lmz locate does not find a refused name" bash -c '! grep -q "node-1" <<<"$1"' _ "$loc"
check "the refusals are counted (lmz_gateway_http_unauthorized_total)" \
  bash -c '[ "$(( $1 ))" -ge "$2" ]' _ "$(metric lmz_gateway_http_unauthorized_total)" "$((N_NAMES + 300))"

# --- every kind of bad credential ------------------------------------------
# refused NAME EXPECT_STATUS BODY_SUBSTRING [curl args...]
refused() {
  local name=$1 want=$2 body=$3; shift 3
  local h
  h=$(curl -sS --max-time 15 -D - -o "$T/rb" "$@" "$URL/api/http-counter-do/victim" | tr -d '\r')
  if grep -q "^HTTP/1.1 $want" <<<"$h" && grep -qF "$body" "$T/rb" &&
     { [ "$want" != 401 ] || grep -qi '^WWW-Authenticate: Bearer realm="Lumenize"' <<<"$h"; }; then
    ok "$name: $want"
  else
    bad "$name: $want (got: $(head -1 <<<"$h") $(cat "$T/rb"))"
  fi
}
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
PAYLOAD=$(cut -d. -f2 <<<"$ALICE")
SIG=$(cut -d. -f3 <<<"$ALICE")
FLIP=$( [ "${SIG:10:1}" = A ] && echo B || echo A )
FORGED="$(cut -d. -f1 <<<"$ALICE").$PAYLOAD.${SIG:0:10}$FLIP${SIG:11}"
NONE="$(printf '{"alg":"none","typ":"JWT"}' | b64url).$PAYLOAD."
HS="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$PAYLOAD.$SIG"
# a payload for another sub under alice's signature
SWAP="$(cut -d. -f1 <<<"$ALICE").$(printf '{"sub":"root","exp":9999999999,"isAdmin":true}' | b64url).$SIG"
# a second, unrelated key set (BLUE and GREEN, as lmzd --dev writes them)
other_keys() {
  command -v openssl >/dev/null || return 1
  mkdir -p "$T/other" && chmod 700 "$T/other" || return 1
  local k entries="" sep=""
  for k in BLUE GREEN; do
    openssl genpkey -algorithm ed25519 -outform DER -out "$T/other/$k.der" 2>/dev/null || return 1
    local seed pub
    seed=$(tail -c 32 "$T/other/$k.der" | b64url)
    pub=$(openssl pkey -inform DER -in "$T/other/$k.der" -pubout -outform DER 2>/dev/null | tail -c 32 | b64url)
    entries="$entries$sep{\"kid\":\"$k\",\"seed\":\"$seed\",\"public\":\"$pub\"}"
    sep=","
  done
  (umask 077; printf '{"version":1,"primary":"BLUE","keys":[%s]}' "$entries" >"$T/other/jwt-keys.json")
  "$BIN/lmz" token mint --data "$T/other" --sub alice
}
OTHER_KEYS=$(other_keys 2>"$T/other.err") || OTHER_KEYS=
INV='"error":"invalid_token"'
refused "no Authorization header" 401 '"error":"invalid_request"'
refused "Basic credentials" 401 'Missing Authorization header with Bearer token' -H 'Authorization: Basic YWxpY2U6eA=='
refused "Bearer without a token" 401 '"error":"invalid_request"' -H 'Authorization: Bearer'
refused "two spaces" 401 '"error":"invalid_request"' -H "Authorization: Bearer  $ALICE"
refused "garbage token" 401 "$INV" -H 'Authorization: Bearer not.a.jwt'
refused "forged signature" 401 'Token is invalid or expired' -H "Authorization: Bearer $FORGED"
refused "alg none" 401 'Token is invalid or expired' -H "Authorization: Bearer $NONE"
refused "alg HS256" 401 'Token is invalid or expired' -H "Authorization: Bearer $HS"
refused "payload swapped under a good signature" 401 'Token is invalid or expired' -H "Authorization: Bearer $SWAP"
if [ -n "$OTHER_KEYS" ]; then
  refused "a token of other keys (same kid BLUE)" 401 'Token is invalid or expired' -H "Authorization: Bearer $OTHER_KEYS"
elif command -v openssl >/dev/null; then
  bad "minting with a second key set: $(cat "$T/other.err")"
else
  echo "# no openssl: the other-keys case is covered by tests/unit/gateway/test_jwt.c only"
fi
refused "expired" 401 'Token is invalid or expired' -H "Authorization: Bearer $(mint --sub alice --ttl -10)"
refused "wrong audience" 401 'Token audience mismatch' -H "Authorization: Bearer $(mint --sub alice --aud https://elsewhere.example)"
refused "wrong issuer" 401 'Token issuer mismatch' -H "Authorization: Bearer $(mint --sub alice --iss https://evil.example)"
refused "access gate (not approved)" 403 '"error":"access_denied"' \
  -H "Authorization: Bearer $(mint --sub eve --claims '{"adminApproved":false}')"
refused "access gate (email not verified)" 403 'Account not yet approved' \
  -H "Authorization: Bearer $(mint --sub eve --claims '{"emailVerified":false}')"
check "the victim actor was never placed" bash -c '! "$1" locate --node "$2" --data "$3" HTTP_COUNTER_DO victim 2>&1 | grep -q node-1' \
  _ "$BIN/lmz" "$NODE" "$D"
# isAdmin alone passes the gate, as in the original
check "isAdmin without approval: 200" test "$(code -H "Authorization: Bearer $(mint --sub root \
  --claims '{"adminApproved":false,"emailVerified":false,"isAdmin":true}')" "$URL/api/http-counter-do/adm")" = 200

# --- a public binding ------------------------------------------------------
h=$(curl -sS --max-time 15 -D - -o "$T/pb" -X POST --data-binary 3 "$URL/api/webhook-do/hook" | tr -d '\r')
check "public binding without a token: 200, the turn ran (total=3)" \
  bash -c 'grep -q "^HTTP/1.1 200" <<<"$1" && grep -q "^total=3 " "$2"' _ "$h" "$T/pb"
check "public binding: no origin auth in the turn (X-Origin-Sub: -)" grep -qi '^X-Origin-Sub: -$' <<<"$h"

# --- per-subject rate limits ----------------------------------------------
LIM=$(mint --sub limited)
: >"$T/lim"
for i in 1 2 3 4 5 6; do code -H "Authorization: Bearer $LIM" "$URL/api/http-counter-do/lim" >>"$T/lim"; echo >>"$T/lim"; done
check "burst of 5 then 429 ($(tr '\n' ' ' <"$T/lim"))" test "$(tr '\n' ' ' <"$T/lim")" = "200 200 200 200 200 429 "
h=$(curl -sS --max-time 15 -D - -o "$T/rl" -H "Authorization: Bearer $LIM" "$URL/api/http-counter-do/lim" | tr -d '\r')
check "429 carries Retry-After and the rate_limited body" \
  bash -c 'grep -q "^HTTP/1.1 429" <<<"$1" && grep -Eqi "^Retry-After: [0-9]+$" <<<"$1" && grep -q "\"error\":\"rate_limited\"" "$2"' _ "$h" "$T/rl"
check "another subject is not limited" test "$(code -H "Authorization: Bearer $(mint --sub other)" "$URL/api/http-counter-do/lim")" = 200

# WebSocket upgrades: 1 at once per subject, then 429 (raw bash socket)
upgrade() { # upgrade TOKEN INSTANCE: the status line of the answer
  local line=""
  exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
  printf 'GET /gateway/LUMENIZE_CLIENT_GATEWAY/%s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: lmz, lmz.access-token.%s\r\n\r\n' "$2" "$1" >&3
  IFS= read -r -t 10 line <&3
  exec 3>&-
  printf '%s' "${line%$'\r'}"
}
WST=$(mint --sub wsuser)
s1=$(upgrade "$WST" wsuser.t1); s2=$(upgrade "$WST" wsuser.t2)
check "first upgrade of a subject: 101 ($s1)" grep -q '^HTTP/1.1 101' <<<"$s1"
check "second upgrade at once: 429 ($s2)" grep -q '^HTTP/1.1 429' <<<"$s2"

# --- config mistakes stop lmzd with file:line ---------------------------------
printf '{\n  "modules": [],\n  "gateway": {\n    "public_bindings": ["NOPE"]}\n}\n' >"$T/bad1.jsonc"
err=$("$BIN/lmzd" --config "$T/bad1.jsonc" --data "$T/bad1" 2>&1); rc=$?
check "a public binding that is not a durable object: exit 2 naming file:line" \
  bash -c '[ "$1" = 2 ] && grep -q "bad1.jsonc:4:" <<<"$2" && grep -q public_bindings <<<"$2"' _ "$rc" "$err"
printf '{\n  "gateway": {"rate_limits": {"http": {"per_minute": 0}}}\n}\n' >"$T/bad2.jsonc"
err=$("$BIN/lmzd" --config "$T/bad2.jsonc" --data "$T/bad2" 2>&1); rc=$?
check "rate_limits.http.per_minute 0: exit 2 naming it" \
  bash -c '[ "$1" = 2 ] && grep -q "bad2.jsonc:2:" <<<"$2" && grep -q "rate_limits.http.per_minute" <<<"$2"' _ "$rc" "$err"

if kill -0 "$LMZD_PID" 2>/dev/null; then ok "lmzd still running"; else bad "lmzd still running"; fi
if grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' "$D.log"; then
  bad "sanitizer reports in the lmzd log"
fi
[ "$FAIL" -eq 0 ] || { echo "--- lmzd log (last 30 lines) ---"; tail -30 "$D.log"; }
finish
