#!/usr/bin/env bash
# Issue 10, "drain moves an actor with its SQL data", and issue 9's promise
# for SQL rows: a real 3-node cluster on loopback (deploy/dev-cluster.sh,
# ephemeral ports, the default R = 3). Notes (the counter example's SQL
# table, examples/counter/counter.c `note`) are inserted into 12 actors and
# every acknowledged id is recorded. Then:
#   1. the follower that owns the most of them is drained: every actor
#      answers `notes` from its new owner with every acknowledged row;
#   2. the other follower (which owns some of them) is SIGKILLed: every
#      actor answers again through the live node, its rows all there (its
#      SQL pages are keys of its range: they were replicated with each
#      turn), within a liveness bound (bench/ measures failover times).
# Skipped (77) unless the cluster replicates (tests/lib/repl_lib.sh).
. "$(dirname "$0")/../lib/repl_lib.sh"
dc_setup
dc_start

ACTORS=12
NOTES=15
call_via() { # call_via NODE INSTANCE METHOD [ARG...]
  local n=$1; shift
  "$BIN/lmz" call --node "127.0.0.1:$(port "$n")" --key-file "$KEY" --timeout 5000 \
    COUNTER_DO "$@"
}
owner_of() { loc 1 "$1" 2>/dev/null | sed -nE 's/.*"node":([0-9]+).*/\1/p'; }

# notes sql0-0 .. sql11-14 by three writers (actors a = w mod 3), through
# every node in turn; acknowledged ones logged
writer() {
  local w=$1 i a
  for ((i = 0; i < NOTES; i++)); do
    for ((a = w; a < ACTORS; a += 3)); do
      call_via $(( (a + i) % 3 + 1 )) "sql$a" note "\"sql$a-$i\"" >/dev/null 2>&1 &&
        echo "sql$a $i" >>"$T/acked.$w"
    done
  done
}
for w in 0 1 2; do writer "$w" & done
wait
cat "$T"/acked.* >"$T/acked" 2>/dev/null
acked=$(wc -l <"$T/acked" 2>/dev/null || echo 0)
check "every note is acknowledged ($acked of $((ACTORS * NOTES)))" test "$acked" = $((ACTORS * NOTES))

# rows_ok VIA: every actor answers `notes` through node VIA with all its
# acknowledged rows (texts compared, not just counted)
rows_ok() {
  local via=$1 a out want got
  for ((a = 0; a < ACTORS; a++)); do
    out=$(call_via "$via" "sql$a" notes 1000 2>/dev/null) || return 1
    want=$(awk -v k="sql$a" '$1 == k { print k "-" $2 }' "$T/acked" | sort)
    got=$(grep -oE "sql$a-[0-9]+" <<<"$out" | sort -u)
    [ -n "$want" ] && [ "$want" = "$got" ] || { echo "  sql$a through node $via: $(wc -w <<<"$got") of $(wc -w <<<"$want") rows"; return 1; }
  done
}
check "every actor reads all its acknowledged rows" rows_ok 2

check "nodes 1 and 2 agree on a leader" wait_until 15 agreed_leader 1 2
L=$(cat "$T/leader" 2>/dev/null)
is_num "$L" || { finish; exit 1; }
count_on() { local a k=0; for ((a = 0; a < ACTORS; a++)); do [ "$(owner_of "sql$a")" = "$1" ] && k=$((k + 1)); done; echo $k; }
B=0; most=-1
for n in 1 2 3; do
  [ "$n" = "$L" ] && continue
  k=$(count_on "$n"); [ "$k" -gt "$most" ] && most=$k && B=$n
done
echo "  leader $L; draining node $B, owner of $most of the $ACTORS actors"
check "node $B owns some of them before the drain ($most)" test "$most" -gt 0
out=$("$BIN/lmz" node drain --node "127.0.0.1:$(port "$L")" --key-file "$KEY" "$B" 2>&1)
echo "  lmz node drain $B: $out"
check "lmz node drain $B moves every actor" grep -q '"failed":0' <<<"$out"
check "node $B owns none of them after the drain" test "$(count_on "$B")" = 0
VIA=$L
check "after the drain every actor reads all its rows through node $VIA" rows_ok "$VIA"

# the other follower dies (the leader when that one owns none of them)
for n in 1 2 3; do [ "$n" != "$L" ] && [ "$n" != "$B" ] && K=$n; done
[ "$(count_on "$K")" -gt 0 ] || K=$L
for n in 1 2 3; do [ "$n" != "$K" ] && [ "$n" != "$B" ] && LIVE=$n; done
echo "  killing node $K, owner of $(count_on "$K") actors; reading through node $LIVE"
t_kill=$(now_us)
"$DC" kill "$K" >/dev/null
# a liveness bound, generous for a loaded machine (bench/ measures failover)
check "after the kill every actor reads all its rows through node $LIVE" \
  wait_until 20 rows_ok "$LIVE"
echo "  rows back $(( ($(now_us) - t_kill) / 1000 )) ms after the kill"
finish
