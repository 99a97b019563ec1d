#!/usr/bin/env bash
# tests/integration/auth_login.sh - the auth service (auth/auth.h) black-box
# over HTTP against a real `lmzd --dev --config` (the dev mail outbox, test
# mode for links in answers, a bootstrap admin, a tight per-address limit):
#   login by the dev outbox link (file + log line), single use, the cookie's
#   attributes, refresh (rotation), reuse detection (family revoked),
#   logout, the bootstrap admin's claims, subject admin 401/403/200,
#   invites + accept, delegation (act claim), the per-address limit (429 +
#   Retry-After), and hostile input (malformed JSON, oversized body, header
#   injection in the address, unknown paths, a path that only starts like
#   the prefix), token guessing (429 per IP), the CORS allow-list on the
#   auth routes, cookies of another path, and a cluster config without
#   auth.hash_key refused at start. Expiry is tested on fake time in
#   tests/unit/auth.
# Prints "N passed, M failed".
. "$(dirname "$0")/../lib/it_lib.sh"
command -v curl >/dev/null || { echo "curl not installed: skipped"; exit 77; }

LIB=${LMZ_LIB_DIR:?LMZ_LIB_DIR not set}
D=$T/data
mkdir -p "$D"
cat >"$T/node.jsonc" <<JSON
{
  "modules": ["$LIB/libcounter.so"],
  "durable_objects": {"bindings": [{"name": "COUNTER_DO", "class_name": "CounterDO"}]},
  "services": [{"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"}],
  "gateway": {"cors_origins": ["https://app.example"]},
  "auth": {
    "test_mode": true,
    "bootstrap_admin": "Boss@Example.com",
    "refresh_reuse_grace_s": 0,
    "rate_limits": {"magic_link_per_address": {"burst": 3, "per_hour": 2}}
  }
}
JSON
start_lmzd "$D" --config "$T/node.jsonc" || exit 1
H="http://127.0.0.1:$(cat "$D/http.port")"

# req METHOD PATH [curl args...]: body in $T/b, headers in $T/h, status in $S
req() {
  local m=$1 p=$2; shift 2
  S=$(curl -s -o "$T/b" -D "$T/h" -w '%{http_code}' -X "$m" "$@" "$H$p")
}
hdr() { grep -i "^$1:" "$T/h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
cookie() { hdr Set-Cookie | sed -E 's/^refresh-token=([^;]*);.*/\1/'; }
jget() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\1/" "$T/b"; }
payload() { # JWT payload JSON
  local p; p=$(printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+')
  while [ $(( ${#p} % 4 )) -ne 0 ]; do p="$p="; done
  printf '%s' "$p" | base64 -d
}
# login EMAIL: follows a test-mode link; sets C (refresh cookie)
login() {
  req POST '/auth/email-magic-link?_test=true' -d "{\"email\":\"$1\"}"
  local link; link=$(jget magic_link)
  req GET "/${link#http://*/}"
  C=$(cookie)
}
# refresh COOKIE: sets C (next) and A (access token)
refresh() { req POST /auth/refresh-token -H "Cookie: refresh-token=$1"; C=$(cookie); A=$(jget access_token); }

# ---- login through the dev outbox ----------------------------------------
req POST /auth/email-magic-link -d '{"email":"Alice@Example.com"}'
check "magic-link request: 200 and the generic message" \
  grep -q '"message":"Check your email for the magic link","expires_in":1800' "$T/b"
wait_until 10 grep -q 'dev mail written to .*/outbox/.*link: http' "$D.log"
check "the dev sender logs the link and writes the outbox file" \
  bash -c "ls '$D/outbox/'*.eml >/dev/null && grep -q 'To: alice@example.com' '$D/outbox/'*.eml"
LINK=$(grep -o 'link: http://[^ ]*' "$D.log" | tail -1 | cut -d' ' -f2)
req GET "/${LINK#http://*/}"
SC=$(hdr Set-Cookie)
check "following it: 302 to / with the refresh cookie" test "$S" = 302 -a "$(hdr Location)" = /
check "cookie attributes" bash -c "[[ '$SC' == *'; Path=/auth; HttpOnly; Secure; SameSite=Strict; Max-Age=2592000' ]]"
C1=$(cookie)
req GET "/${LINK#http://*/}"
check "a replayed link: token_used" test "$(hdr Location)" = "/?error=token_used"

# ---- refresh, rotation, reuse detection, logout ---------------------------
refresh "$C1"; C2=$C; A1=$A
check "refresh: 200 with access_token and sub" test "$S" = 200 -a -n "$A1" -a -n "$(jget sub)"
P=$(payload "$A1")
check "claims: iss/aud/sub/emailVerified, not approved" \
  bash -c "[[ '$P' == *'\"emailVerified\":true,\"adminApproved\":false'* && '$P' == *'\"iss\":\"https://lumenize.local\"'* ]]"
check "the token verifies with the node's keys" "$BIN/lmz" token verify --data "$D" "$A1"
check "rotation: a new cookie" test -n "$C2" -a "$C2" != "$C1"
refresh "$C1"
check "reuse of a rotated token: 401 token_revoked" bash -c "[ $S = 401 ] && grep -q token_revoked '$T/b'"
refresh "$C2"
check "... and the whole family is revoked" test "$S" = 401
check "the reuse is logged" grep -q 'token.reuse' "$D.log"
login alice@example.com; C3=$C
req POST /auth/logout -H "Cookie: refresh-token=$C3"
check "logout: 200 and the cookie cleared" bash -c "[ $S = 200 ] && grep -qi 'Set-Cookie: refresh-token=; Path=/auth;.*Max-Age=0' '$T/h'"
refresh "$C3"
check "after logout the token is refused" test "$S" = 401
refresh "not-a-token"
check "a garbage cookie: 401 invalid_token" bash -c "[ $S = 401 ] && grep -q invalid_token '$T/b'"
req POST /auth/refresh-token
check "no cookie: 401" test "$S" = 401
# cookies of another path: a browser sends the longest Path first (RFC 6265
# 5.4), so the first refresh-token is the one set for /auth; others are ignored
login carol@example.com; C4=$C
req POST /auth/refresh-token -H "Cookie: refresh-token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; refresh-token=$C4"
check "a cookie of another path first: 401 (never tried past the first)" test "$S" = 401
req POST /auth/refresh-token -H "Cookie: theme=dark; refresh-token=$C4; refresh-token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
check "the /auth cookie first: 200" test "$S" = 200

# ---- bootstrap admin, admin endpoints, invites, delegation ---------------
login boss@example.com; refresh "$C"; BOSS=$A; BSUB=$(jget sub)
check "bootstrap admin: isAdmin and approved" bash -c "[[ '$(payload "$BOSS")' == *'\"adminApproved\":true,\"isAdmin\":true'* ]]"
login alice@example.com; refresh "$C"; ALICE=$A; ASUB=$(jget sub)
req GET /auth/subjects
check "subjects without credentials: 401" test "$S" = 401
req GET /auth/subjects -H "Authorization: Bearer $ALICE"
check "subjects as a non-admin: 403" test "$S" = 403
req GET /auth/subjects -H "Authorization: Bearer $BOSS"
check "subjects as the admin: both listed" bash -c "[ $S = 200 ] && grep -q alice@example.com '$T/b' && grep -q boss@example.com '$T/b'"
req PATCH "/auth/subject/$ASUB" -H "Authorization: Bearer $BOSS" -d '{"adminApproved":true}'
check "approve alice by PATCH" bash -c "[ $S = 200 ] && grep -q '\"adminApproved\":true' '$T/b'"
req POST '/auth/invite?_test=true' -H "Authorization: Bearer $BOSS" -d '{"emails":["new@example.com","nope"]}'
check "invite: one invited, one error" bash -c "grep -q '\"invited\":\[\"new@example.com\"\]' '$T/b' && grep -q '\"email\":\"nope\"' '$T/b'"
INV=$(grep -o 'accept-invite?invite_token=[A-Za-z0-9_-]*' "$T/b")
req GET "/auth/$INV"; req GET "/auth/$INV"
check "accept-invite (reusable): 302 + cookie" test "$S" = 302 -a -n "$(cookie)"
refresh "$(cookie)"
check "the invitee's token passes the gate" bash -c "[[ '$(payload "$A")' == *'\"emailVerified\":true,\"adminApproved\":true'* ]]"
req POST /auth/delegated-token -H "Authorization: Bearer $BOSS" -d "{\"actFor\":\"$ASUB\"}"
DT=$(jget access_token)
check "delegation: sub = principal, act.sub = the admin" \
  bash -c "[[ '$(payload "$DT")' == *'\"act\":{\"sub\":\"$BSUB\"}'* && '$(payload "$DT")' == *'\"sub\":\"$ASUB\"'* ]]"
req POST /auth/delegated-token -H "Authorization: Bearer $ALICE" -d "{\"actFor\":\"$BSUB\"}"
check "delegation without a grant: 403" test "$S" = 403

# ---- rate limits ---------------------------------------------------------
for i in 1 2 3; do req POST /auth/email-magic-link -d '{"email":"limited@example.com"}'; done
check "3 requests for one address pass" test "$S" = 200
req POST /auth/email-magic-link -d '{"email":"LIMITED@example.com "}'
# 1800 s while the bucket is full; a slow (sanitized) run lets a second or
# two of refill pass between the requests
ra=$(hdr Retry-After)
check "the 4th: 429 with Retry-After about 1800 ($S, ${ra:-none})" \
  bash -c '[ "$1" = 429 ] && [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1790 ] && [ "$2" -le 1800 ]' _ "$S" "$ra"

# ---- hostile input -------------------------------------------------------
req POST /auth/email-magic-link -d '{"email":'
check "malformed JSON: 400" test "$S" = 400
req POST /auth/email-magic-link -d '{"email":"a@b.com\r\nBcc: evil@example.com"}'
check "CR/LF in the address: 400" test "$S" = 400
head -c 20000 /dev/zero | tr '\0' ' ' >"$T/big"
req POST /auth/email-magic-link --data-binary @"$T/big"
check "oversized body: 413" test "$S" = 413
req GET /auth/nothing-here
check "unknown auth path: 404" test "$S" = 404
req GET /authx/magic-link
check "a path that only starts like the prefix is not routed there" test "$S" = 404
req GET '/auth/magic-link?one_time_token=%0d%0aSet-Cookie:%20x=y'
check "an injected token: refused, no header injected" bash -c "! grep -qi '^x=y' '$T/h' && [ $S = 302 -o $S = 400 ]"

# ---- token guessing: unknown tokens count against the client's IP ----------
n=0
while [ $n -lt 25 ]; do
  n=$((n + 1))
  req GET "/auth/magic-link?one_time_token=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-43)"
  [ "$S" = 429 ] && break
done
check "guessing magic-link tokens: 429 within 21 tries (got $S after $n)" test "$S" = 429 -a "$n" -le 21
check "... with Retry-After" test -n "$(hdr Retry-After)"

# ---- CORS: the gateway's allow-list applies to the auth routes too ---------
req POST /auth/logout -H "Origin: https://evil.example"
check "a disallowed Origin: 403" test "$S" = 403
req POST /auth/logout -H "Origin: https://app.example"
check "an allowed Origin: answered with Access-Control-Allow-Origin" \
  test "$S" = 200 -a "$(hdr Access-Control-Allow-Origin)" = https://app.example

# ---- configuration ---------------------------------------------------------
cat >"$T/cl.jsonc" <<JSON
{"cluster": {"id": 1, "voters": [{"id": 1, "node": "127.0.0.1:1", "raft": "127.0.0.1:2"},
                                 {"id": 2, "node": "127.0.0.1:3", "raft": "127.0.0.1:4"}]},
 "auth": {"test_mode": true}}
JSON
timeout 60 "$BIN/lmzd" --config "$T/cl.jsonc" --data "$T/cl" --listen 127.0.0.1:0 --http 127.0.0.1:0 >"$T/cl.log" 2>&1
rc=$?
check "a cluster node without auth.hash_key refuses to start" \
  bash -c "[ $rc = 2 ] && grep -q 'auth.hash_key is required in a cluster' '$T/cl.log'"

finish
