#!/usr/bin/env bash
# lmzd --dev as a new user meets it: lmz call increments, access control,
# errors, workers, unreachable nodes, a missing key, a bad config.
. "$(dirname "$0")/../lib/it_lib.sh"
D=$T/node
start_lmzd "$D" || { bad "lmzd starts"; finish; exit 1; }
ok "lmzd --dev starts and answers"

check "increment 5 prints 5" test "$(lcall "$D" COUNTER_DO a increment 5)" = '{"json":5,"meta":{}}'
check "increment 5 again prints 10" test "$(lcall "$D" COUNTER_DO a increment 5)" = '{"json":10,"meta":{}}'
out=$(lcall "$D" COUNTER_DO a secret); rc=$?
check "secret is refused (exit 3)" test "$rc" = 3
check "secret's error is the original's text" grep -q "Method 'secret' is not mesh-callable" <<<"$out"
out=$(lcall "$D" COUNTER_DO a fail '"bad"'); rc=$?
check "fail: exit 3 with CounterError, code and cause" \
  bash -c '[ "$1" = 3 ] && grep -q "\"name\":\"CounterError\"" <<<"$2" && grep -q "\"code\":\"E_COUNTER\"" <<<"$2" && grep -q "root cause" <<<"$2"' _ "$rc" "$out"
out=$(lcall "$D" COUNTER_DO a guarded); rc=$?
check "guarded without the token is refused by its guard" \
  bash -c '[ "$1" = 3 ] && grep -q "Guard: valid token required" <<<"$2"' _ "$rc" "$out"
check "guarded with --state token passes" test "$(lcall "$D" --state '{"token":"letmein"}' COUNTER_DO a guarded)" = '{"json":"ok","meta":{}}'
check "worker echo" test "$(lcall "$D" ECHO_WORKER - echo '{"a":[1,2]}')" = '{"json":{"a":[1,2]},"meta":{}}'
check "worker whereami" test "$(lcall "$D" ECHO_WORKER - whereami)" = '{"json":"node-1","meta":{}}'
printf '[{"json":{"$type":"map","entries":[["k",{"$type":"date","iso":"2026-01-01T00:00:00.000Z"}]]},"meta":{}}]' >"$T/args.json"
check "rich values via --scjson round-trip" test "$(lcall "$D" --scjson "$T/args.json" COUNTER_DO a echo)" = '{"json":{"$type":"map","entries":[["k",{"$type":"date","iso":"2026-01-01T00:00:00.000Z"}]]},"meta":{}}'
who=$(lcall "$D" COUNTER_DO a whoami)
check "whoami: origin is the CLI, no origin auth, the call's trace and call ids ($who)" \
  grep -Eq '^\{"json":\{"callChain":\[\{"type":"LmzCli","bindingName":"lmz-cli"\}\],"state":\{\},"traceId":"[0-9a-f]{32}","callId":"[0-9a-f]{16}"\},"meta":\{\}\}$' <<<"$who"
who=$(lcall "$D" --trace-id 0af7651916cd43dd8448eb211c80319c COUNTER_DO a whoami)
check "whoami: lmz call --trace-id sets the trace" grep -q '"traceId":"0af7651916cd43dd8448eb211c80319c"' <<<"$who"
err=$(lcall "$D" NOPE x get 2>&1); rc=$?
check "unknown binding: error names it" bash -c '[ "$1" = 3 ] && grep -q "no binding named '"'"'NOPE'"'"'" <<<"$2"' _ "$rc" "$err"
err=$("$BIN/lmz" call --node 127.0.0.1:1 --data "$D" COUNTER_DO a get 2>&1); rc=$?
check "unreachable node: exit 2 and a clear line" bash -c '[ "$1" = 2 ] && grep -q "cannot connect to 127.0.0.1:1" <<<"$2"' _ "$rc" "$err"
err=$("$BIN/lmz" call --node "$NODE" --data "$T/nokey" COUNTER_DO a get 2>&1); rc=$?
check "missing key: exit 2 and a clear line" bash -c '[ "$1" = 2 ] && grep -q "no cluster key" <<<"$2"' _ "$rc" "$err"
"$BIN/lmzd" --dev --data "$T/k2" --listen 127.0.0.1:0 >"$T/k2.log" 2>&1 & PIDS+=($!)
wait_until 20 test -s "$T/k2/cluster.key"
err=$("$BIN/lmz" call --node "$NODE" --data "$T/k2" COUNTER_DO a get 2>&1); rc=$?
check "wrong key: refused with a clear line" bash -c '[ "$1" = 2 ] && grep -q "rejected our cluster key" <<<"$2"' _ "$rc" "$err"
check "node still serves after a wrong-key client" test "$(lcall "$D" COUNTER_DO a get)" = '{"json":10,"meta":{}}'

printf '{\n  "modules": [],\n  "durable_objects": {"bindings": [\n    {"name": "X", "class_name": "NoSuchClass"}]}\n}\n' >"$T/bad.jsonc"
err=$("$BIN/lmzd" --config "$T/bad.jsonc" --data "$T/bad" 2>&1); rc=$?
check "unknown class: refuses to start naming file:line" bash -c '[ "$1" = 2 ] && grep -q "bad.jsonc:4:" <<<"$2" && grep -q "NoSuchClass" <<<"$2"' _ "$rc" "$err"
printf '{\n  "vars": {"a": 1,}\n  oops\n}\n' >"$T/bad2.jsonc"
err=$("$BIN/lmzd" --config "$T/bad2.jsonc" --data "$T/bad2" 2>&1); rc=$?
check "bad JSON: refuses to start naming file:line:col" bash -c '[ "$1" = 2 ] && grep -q "bad2.jsonc:3:3" <<<"$2"' _ "$rc" "$err"

kill -TERM "$LMZD_PID"
check "SIGTERM: clean stop" wait_until 20 bash -c "! kill -0 $LMZD_PID"
check "clean stop is logged" grep -q "stopped cleanly" "$D.log"
finish
