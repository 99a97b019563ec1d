#!/usr/bin/env bash
# tests/integration/cli_token.sh - `lmz token mint|verify` with dev keys.
#
# Runs the built binary ($LMZ_BIN_DIR/lmz) on:
#   - a data directory without keys: exit 2, the "start `lmzd --dev` once"
#     hint, nothing on stdout;
#   - a fixture key file (fixed seeds 0x01.. and 0x02.., mode 0600): mint
#     prints one token line whose header is EdDSA/JWT/kid, whose payload has
#     the defaults (iss/aud https://lumenize.local, ttl 3600, the two flags
#     true) or what --claims/--iss/--aud/--ttl/--kid say; verify accepts it
#     and reports the access gate; verify rejects expired, tampered and
#     wrong-audience tokens;
#   - a key file readable by others: refused;
#   - bad arguments: exit 2 with one line on stderr.
# When node is installed, Node's crypto.verify must accept a minted token
# (interop with the JavaScript side). Prints "N passed, M failed".
set -u
export LC_ALL=C

BIN=${LMZ_BIN_DIR:?LMZ_BIN_DIR not set}/lmz
[ -x "$BIN" ] || { echo "cli_token.sh: $BIN not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lmz-cli-token.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() {
  failed=$((failed + 1))
  echo "FAIL: $*"
  if [ -s "$tmp/err" ]; then sed 's/^/  stderr: /' "$tmp/err" | head -5; fi
}
run() { "$BIN" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; }
lines() { awk 'END { print NR }' "$1"; }
# base64url payload of a token -> JSON text
payload() {
  local p
  p=$(printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+')
  while [ $(( ${#p} % 4 )) -ne 0 ]; do p="$p="; done
  printf '%s' "$p" | base64 -d
}
header() {
  local p
  p=$(printf '%s' "$1" | cut -d. -f1 | tr '_-' '/+')
  while [ $(( ${#p} % 4 )) -ne 0 ]; do p="$p="; done
  printf '%s' "$p" | base64 -d
}
expect_fail() { # NAME WANT ARGS...
  local name=$1 want=$2; shift 2
  run "$@"
  if [ "$rc" -eq 2 ] && [ ! -s "$tmp/out" ] && [ "$(lines "$tmp/err")" -eq 1 ] &&
     grep -qF -- "$want" "$tmp/err"; then ok; else bad "$name (rc=$rc)"; fi
}

# 1. no keys
mkdir -p "$tmp/empty"
expect_fail "no keys" "no dev keys in $tmp/empty: start \`lmzd --dev\` once to create them" \
  token mint --data "$tmp/empty" --sub alice
(cd "$tmp" && "$BIN" token mint --sub alice >"$tmp/out" 2>"$tmp/err"); rc=$?
if [ "$rc" -eq 2 ] && grep -qF "no dev keys in ./lmz-data" "$tmp/err"; then ok; else bad "default data dir"; fi

# 2. fixture keys (public keys derived from the seeds with Node's crypto)
D="$tmp/data"
mkdir -p "$D"
cat >"$D/jwt-keys.json" <<'EOF'
{"version":1,"primary":"BLUE","keys":[
 {"kid":"BLUE","seed":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","public":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w"},
 {"kid":"GREEN","seed":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI","public":"gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q"}]}
EOF
chmod 600 "$D/jwt-keys.json"

now=$(date +%s)
run token mint --data "$D" --sub alice
tok=$(cat "$tmp/out")
if [ "$rc" -eq 0 ] && [ "$(lines "$tmp/out")" -eq 1 ] && [ ! -s "$tmp/err" ] &&
   [ "$(printf '%s' "$tok" | tr -cd . | wc -c)" -eq 2 ]; then ok; else bad "mint"; fi
if [ "$(header "$tok")" = '{"alg":"EdDSA","typ":"JWT","kid":"BLUE"}' ]; then ok; else bad "header: $(header "$tok")"; fi
pl=$(payload "$tok")
exp=$(printf '%s' "$pl" | sed -n 's/.*"exp":\([0-9]*\).*/\1/p')
iat=$(printf '%s' "$pl" | sed -n 's/.*"iat":\([0-9]*\).*/\1/p')
case "$pl" in
  '{"emailVerified":true,"adminApproved":true,"iss":"https://lumenize.local","aud":"https://lumenize.local","sub":"alice","exp":'*',"jti":"'????????-????-4???-????-????????????'"}') ok ;;
  *) bad "payload: $pl" ;;
esac
if [ $((exp - iat)) -eq 3600 ] && [ $((iat - now)) -ge 0 ] && [ $((iat - now)) -le 5 ]; then ok; else bad "exp/iat $exp $iat"; fi

run token verify --data "$D" "$tok"
if [ "$rc" -eq 0 ] && [ "$(cat "$tmp/out")" = "$pl" ] &&
   grep -qF "valid (key BLUE); access gate: passes" "$tmp/err"; then ok; else bad "verify"; fi

# claims, ttl, kid, iss/aud
run token mint --data "$D" --sub bob --ttl 60 --kid GREEN --iss https://i --aud https://a \
  --claims '{"adminApproved":false,"role":"x","sub":"mallory"}'
t2=$(cat "$tmp/out"); pl2=$(payload "$t2")
case "$pl2" in
  '{"emailVerified":true,"adminApproved":false,"role":"x","iss":"https://i","aud":"https://a","sub":"bob",'*) ok ;;
  *) bad "claims payload: $pl2" ;;
esac
if [ "$(header "$t2")" = '{"alg":"EdDSA","typ":"JWT","kid":"GREEN"}' ]; then ok; else bad "kid GREEN"; fi
run token verify --data "$D" --iss https://i --aud https://a "$t2"
if [ "$rc" -eq 0 ] && grep -qF "access gate: denied (403 access_denied)" "$tmp/err"; then ok; else bad "verify gate"; fi
expect_fail "wrong audience" "invalid_token (audience)" token verify --data "$D" --iss https://i "$t2"

# expired, tampered
run token mint --data "$D" --sub alice --ttl -10
expect_fail "expired" "invalid_token (expired)" token verify --data "$D" "$(cat "$tmp/out")"
tampered=$(printf '%s' "$tok" | sed 's/\.eyJ/.eyK/')
expect_fail "tampered" "signature does not verify" token verify --data "$D" "$tampered"

# Node's crypto.verify accepts the token (the JavaScript side's view)
if command -v node >/dev/null 2>&1; then
  out=$(node -e '
    const c = require("crypto"); const [t, x] = process.argv.slice(1);
    const k = c.createPublicKey({key: {kty: "OKP", crv: "Ed25519", x}, format: "jwk"});
    const [h, p, s] = t.split(".");
    console.log(c.verify(null, Buffer.from(h + "." + p), k, Buffer.from(s, "base64url")));
  ' "$tok" "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w" 2>&1)
  if [ "$out" = "true" ]; then ok; else bad "node verify: $out"; fi
fi

# 3. a key file others can read is refused
chmod 644 "$D/jwt-keys.json"
expect_fail "mode 0644" "chmod 600" token mint --data "$D" --sub alice
chmod 600 "$D/jwt-keys.json"

# 4. bad arguments
expect_fail "no sub" "--sub SUB is required" token mint --data "$D"
expect_fail "bad ttl" "--ttl wants whole seconds" token mint --data "$D" --sub a --ttl 1x
expect_fail "bad claims" "not a JSON object" token mint --data "$D" --sub a --claims '[1]'
expect_fail "bad claims json" "claims:" token mint --data "$D" --sub a --claims '{"a":'
expect_fail "no such kid" "no key 'RED'" token mint --data "$D" --sub a --kid RED
expect_fail "unknown action" "unknown action" token frob
expect_fail "unknown option" "unknown option '--frob'" token mint --frob
run help token
if [ "$rc" -eq 0 ] && grep -q "usage: lmz token mint" "$tmp/out"; then ok; else bad "help token"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
