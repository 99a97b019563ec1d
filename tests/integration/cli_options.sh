#!/usr/bin/env bash
# lmz options anywhere on the command line (getopt_long, server/cli_getopt.c):
# options after the positionals, --opt=value, `--` ending the options so a
# JSON argument may start with '-', and one clear line for an unknown
# option. Against a real lmzd --dev on an ephemeral port.
. "$(dirname "$0")/../lib/it_lib.sh"
D=$T/node
start_lmzd "$D" || { bad "lmzd starts"; finish; exit 1; }
L="$BIN/lmz"
# expect_out NAME WANT CMD...: exit 0 and exactly WANT on stdout
expect_out() {
  local name=$1 want=$2 out rc; shift 2
  out=$("$@" 2>"$T/err"); rc=$?
  if [ "$rc" = 0 ] && [ -n "$out" ] && [ "$out" = "$want" ]; then ok "$name"
  else bad "$name (rc=$rc, out='$out', err='$(head -c 300 "$T/err")')"; fi
}
# expect_usage NAME WANT_IN_STDERR CMD...: exit 2, nothing on stdout, one
# stderr line containing WANT
expect_usage() {
  local name=$1 want=$2 out rc; shift 2
  out=$("$@" 2>"$T/err"); rc=$?
  if [ "$rc" = 2 ] && [ -z "$out" ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -qF -- "$want" "$T/err"; then ok "$name"
  else bad "$name (rc=$rc, out='$out', err='$(head -c 300 "$T/err")')"; fi
}

expect_out "options before the positionals (as before)" '{"json":"hi","meta":{}}' \
  "$L" call --node "$NODE" --data "$D" COUNTER_DO a echo '"hi"'
expect_out "options after the positionals" '{"json":"hi","meta":{}}' \
  "$L" call COUNTER_DO a echo '"hi"' --node "$NODE" --data "$D"
expect_out "options between the positionals, --opt=value" '{"json":[1,2],"meta":{}}' \
  "$L" call COUNTER_DO --node="$NODE" a echo --data="$D" '[1,2]'
printf '[{"json":{"$type":"bigint","value":"12345678901234567890"},"meta":{}}]' >"$T/args.json"
expect_out "--scjson after the method is an option, not a JSON argument" \
  '{"json":{"$type":"bigint","value":"12345678901234567890"},"meta":{}}' \
  "$L" call COUNTER_DO a echo --scjson "$T/args.json" --node "$NODE" --data "$D"
expect_out "-- ends the options: a negative number argument" '{"json":-5,"meta":{}}' \
  "$L" call --node "$NODE" --data "$D" COUNTER_DO neg increment -- -5
expect_out "... with options after the positionals too" '{"json":-8,"meta":{}}' \
  "$L" call COUNTER_DO neg increment --node "$NODE" --data "$D" -- -3
expect_out "a worker (instance -) with options last" '{"json":7,"meta":{}}' \
  "$L" call ECHO_WORKER - echo 7 --node "$NODE" --data "$D"
expect_usage "an argument starting with '-' without --: one line naming it and --" \
  "unknown option '-5'" "$L" call COUNTER_DO a increment -5 --node "$NODE" --data "$D"
grep -qF -- "put -- before" "$T/err" && ok "... and the line suggests --" || bad "... and the line suggests -- ($(cat "$T/err"))"
expect_usage "unknown long option" "unknown option '--frob'" "$L" call COUNTER_DO a get --frob
expect_usage "option without its value" "--node needs a value" "$L" call COUNTER_DO a get --node
check "the neg counter holds -8 (the -- calls ran once each)" \
  test "$("$L" call COUNTER_DO neg get --data "$D" --node "$NODE")" = '{"json":-8,"meta":{}}'

# token: options before the action, after it, and after the subject
tok=$("$L" token --data "$D" mint --sub alice 2>"$T/err"); rc=$?
check "token: options before the action" bash -c '[ "$1" = 0 ] && [ "$(tr -cd . <<<"$2" | wc -c)" = 2 ]' _ "$rc" "$tok"
out=$("$L" token verify "$tok" --data "$D" 2>"$T/err"); rc=$?
check "token verify: options after the token" bash -c '[ "$1" = 0 ] && grep -q "\"sub\":\"alice\"" <<<"$2"' _ "$rc" "$out"
expect_usage "token: a negative --ttl is a value, not an option" "invalid_token (expired)" \
  "$L" token verify --data "$D" "$("$L" token mint --sub bob --ttl -10 --data "$D")"

# codec: the path before the options
printf '{"json":[1,"x"],"meta":{}}' >"$T/v.json"
expect_out "codec: options after the path" '{"json":[1,"x"],"meta":{}}' \
  "$L" codec roundtrip "$T/v.json" --max-bytes 1k
expect_usage "codec: --max-bytes after the path still applies" "input too large" \
  "$L" codec roundtrip "$T/v.json" --max-bytes 8
finish
