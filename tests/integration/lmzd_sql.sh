#!/usr/bin/env bash
# SQL storage through a real lmzd (issue 10): `lmz sql` reads and (with
# --write) writes an actor's database as a turn; notes written through the
# counter's SQL method and acknowledged survive SIGKILL; a read-only `lmz sql`
# refuses a write.
. "$(dirname "$0")/../lib/it_lib.sh"
D=$T/node
start_lmzd "$D" || { bad "lmzd starts"; finish; exit 1; }
lsql() { "$BIN/lmz" sql --node "$NODE" --data "$D" "$@"; }

# writers add notes until the node dies; each acknowledged id is logged
writer() {
  local name=$1 i=0 out
  while out=$(lcall "$D" --timeout 5000 COUNTER_DO "$name" note "\"$name-$i\"" 2>/dev/null); do
    echo "$i" >>"$T/acked.$name"
    i=$((i + 1))
  done
}
for w in s1 s2 s3; do writer "$w" & done
wait_until 60 bash -c "[ \$(cat $T/acked.s* 2>/dev/null | wc -l) -ge 90 ]"
kill -9 "$LMZD_PID"
wait "$LMZD_PID" 2>/dev/null
wait
total=$(cat "$T"/acked.s* | wc -l)
check "notes acknowledged before the crash ($total)" test "$total" -ge 90

start_lmzd "$D" || { bad "lmzd restarts after SIGKILL"; finish; exit 1; }
for w in s1 s2 s3; do
  last=$(tail -n 1 "$T/acked.$w")
  # every acknowledged note is there: count rows with i <= last
  got=$(lsql COUNTER_DO "$w" "SELECT count(*) FROM notes WHERE text = ? OR id <= ?" \
        "\"$w-$last\"" "$((last + 1))" 2>/dev/null | tail -n 1)
  check "$w: acknowledged notes 0..$last all present ($got rows)" \
    bash -c '[ "$2" -ge $(( $1 + 1 )) ]' _ "$last" "$got"
  have=$(lsql COUNTER_DO "$w" "SELECT text FROM notes WHERE text = ?" "\"$w-$last\"" 2>/dev/null | tail -n 1)
  check "$w: the last acknowledged note ($w-$last) is present" test "$have" = "$w-$last"
done

out=$(lsql COUNTER_DO s1 "DELETE FROM notes" 2>/dev/null); rc=$?
check "lmz sql without --write refuses a write (exit 3)" test "$rc" -eq 3
check "...saying why" grep -q "only reads are allowed" <<<"$out"
lsql --write COUNTER_DO s1 "INSERT INTO notes(text) VALUES (?)" '"from-cli"' >/dev/null 2>&1
check "lmz sql --write inserts" test "$(lsql COUNTER_DO s1 "SELECT text FROM notes WHERE text = 'from-cli'" 2>/dev/null | tail -n 1)" = "from-cli"
check "the counter sees the operator's row" \
  bash -c "\"$BIN/lmz\" call --node $NODE --data $D COUNTER_DO s1 notes 1 | grep -q from-cli"
out=$(lsql COUNTER_DO s1 "ATTACH 'x' AS x" 2>/dev/null); rc=$?
check "ATTACH is refused (exit 3, SQLITE_AUTH)" bash -c "[ $rc -eq 3 ] && grep -q SQLITE_AUTH <<<'$out'"
# /metrics counts SQL work: rows were written and read, a database is open
m=$(curl -sf "http://127.0.0.1:$(cat "$D/http.port")/metrics")
metric() { awk -v k="$1" 'index($1, k "{") == 1 { print $2 }' <<<"$m"; }
check "/metrics: SQL rows written > 0" bash -c '[ "${1:-0}" -gt 0 ]' _ "$(metric lmz_sql_rows_written_total)"
check "/metrics: SQL rows read > 0" bash -c '[ "${1:-0}" -gt 0 ]' _ "$(metric lmz_sql_rows_read_total)"
check "/metrics: SQL database bytes > 0" bash -c '[ "${1:-0}" -gt 0 ]' _ "$(metric lmz_sql_database_bytes)"
kill -TERM "$LMZD_PID"; wait "$LMZD_PID" 2>/dev/null

# the "sql" section of the config sets the limits
LIB=${LMZ_LIB_DIR:-$BIN/../lib}
cat >"$T/sql.jsonc" <<CFG
{
  "modules": ["$LIB/libcounter.so"],
  "durable_objects": {"bindings": [{"name": "COUNTER_DO", "class_name": "CounterDO"}]},
  "services": [{"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"}],
  "sql": {"max_params": 2, "max_db_bytes": 1000000}
}
CFG
D2=$T/cfg
rm -f "$D2/node.port"
"$BIN/lmzd" --config "$T/sql.jsonc" --data "$D2" --listen 127.0.0.1:0 --http 127.0.0.1:0 >>"$D2.log" 2>&1 &
LMZD_PID=$!; PIDS+=("$LMZD_PID")
if wait_until 20 test -s "$D2/node.port"; then
  NODE="127.0.0.1:$(cat "$D2/node.port")"; D=$D2
  wait_until 20 "$BIN/lmz" call --node "$NODE" --data "$D2" ECHO_WORKER - echo 1 >/dev/null
  out=$(lsql COUNTER_DO c 'SELECT ?, ?, ?' 1 2 3 2>/dev/null); rc=$?
  check "sql.max_params = 2 refuses 3 parameters" bash -c "[ $rc -eq 3 ] && grep -q 'too many SQL variables' <<<'$out'"
  check "...and allows 2" test "$(lsql COUNTER_DO c 'SELECT ? + ?' 1 2 2>/dev/null | tail -n 1)" = 3
else
  bad "lmzd starts with an sql config section"; tail -5 "$D2.log"
fi
printf '{\n  "sql": {"max_params": 0}\n}\n' >"$T/badsql.jsonc"
err=$("$BIN/lmzd" --config "$T/badsql.jsonc" --data "$T/badsql" 2>&1); rc=$?
check "a bad sql limit stops lmzd naming file:line" bash -c '[ "$1" = 2 ] && grep -q "badsql.jsonc:2:" <<<"$2" && grep -q "sql.max_params" <<<"$2"' _ "$rc" "$err"
finish
