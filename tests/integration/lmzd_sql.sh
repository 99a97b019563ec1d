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
finish
