#!/usr/bin/env bash
# Issue 9, "never serves a stale copy": a real 3-node cluster on loopback
# (deploy/dev-cluster.sh, ephemeral ports, the default R = 3,
# cluster.replication.max_lag_ms = 1000, actors.idle_evict_ms = 3000: the
# re-claimed counter stays placed until its owner is killed).
# A backup that leaves the in-sync set keeps its copy of the actor; when the
# actor is then emptied, released and claimed afresh with that node as its
# first backup, the copy is stale (cluster/directory.h FRESH). Checked:
#   - counter c: total 5 on its owner O and backups B1, B2;
#   - B1 paused (SIGSTOP): it leaves c's backups; c is reset (its range
#     empty) and, idle, released (lmz locate: not placed); B1 resumed;
#   - c claimed again (a `get` answers 0) on O with B1 first in its backups
#     (the same ranking as before);
#   - O is SIGKILLed: c fails over to B1, which answers 0 - not the 5 of its
#     old copy - and counts the copy it dropped (/metrics
#     lmz_stale_copies_dropped_total);
#   - an increment then answers 1.
# Skipped (77) unless the cluster replicates (tests/lib/repl_lib.sh).
. "$(dirname "$0")/../lib/repl_lib.sh"
export LMZ_REPL_MAX_LAG_MS=1000 LMZ_IDLE_EVICT_MS=3000
dc_setup
dc_start " (max_lag_ms 1000, idle_evict_ms 3000)"

cl() { "$BIN/lmz" call --node "127.0.0.1:$(port "$1")" --key-file "$KEY" --timeout 10000 COUNTER_DO "${@:2}"; }
num() { sed -nE 's/^\{"json":(-?[0-9]+),.*/\1/p'; }
owner_of() { sed -nE 's/.*"node":([0-9]+).*/\1/p'; }
backups_of() { sed -nE 's/.*"backups":\[([0-9,]*)\].*/\1/p'; }
C=stale-copy

check "nodes 1 and 2 agree on a leader" wait_until 15 agreed_leader 1 2
check "counter $C counts to 5" bash -c '[ "$("$@" | sed -nE "s/^\{\"json\":(-?[0-9]+),.*/\1/p")" = 5 ]' _ \
  "$BIN/lmz" call --node "127.0.0.1:$(port 1)" --key-file "$KEY" --timeout 10000 COUNTER_DO "$C" increment 5
two_backups() { [ "$(backups_of <<<"$(loc 1 "$C")" | tr ',' '\n' | grep -c .)" = 2 ]; }
check "counter $C has two backups" wait_until 20 two_backups
placement=$(loc 1 "$C")
O=$(owner_of <<<"$placement")
B1=$(backups_of <<<"$placement" | cut -d, -f1)
B2=$(backups_of <<<"$placement" | cut -d, -f2)
echo "  $placement"
echo "  owner $O, backups $B1 then $B2"
is_num "$O" && is_num "$B1" && is_num "$B2" || { bad "a placement with two backups"; finish; exit 1; }

b1pid=$(dc_pid "$B1")
kill -STOP "$b1pid"
ok "node $B1 paused (SIGSTOP)"
not_backed() { ! backups_of <<<"$(loc "$O" "$C")" | tr ',' '\n' | grep -qx "$B1"; }
check "node $B1 leaves the backups of $C" wait_until 15 not_backed
check "counter $C is reset through node $O" bash -c '[ "$("$@")" = "{\"json\":0,\"meta\":{}}" ]' _ \
  "$BIN/lmz" call --node "127.0.0.1:$(port "$O")" --key-file "$KEY" --timeout 10000 COUNTER_DO "$C" reset
released() { grep -q '"placed":false' <<<"$(loc "$O" "$C")"; }
check "counter $C, empty and idle, is released" wait_until 15 released
kill -CONT "$b1pid"
ok "node $B1 resumed (SIGCONT)"
# B1 serves again and is a candidate for placements: up, its lease renewed
# within the last 1.5 s as the leader (which picks owners and backups) sees it
b1_up() {
  local L; L=$(leader_of "$(st "$O")")
  is_num "$L" && [ "$L" != 0 ] &&
    grep -qE "\{\"id\":$B1,\"state\":\"up\"[^}]*\"lease_age_ms\":([0-9]{1,3}|1[0-4][0-9]{2})\}" <<<"$(st "$L")" &&
    [ -n "$(cl "$B1" "probe-$B1" get)" ]
}
check "node $B1 is up again" wait_until 20 b1_up

check "counter $C claimed afresh answers 0" bash -c '[ "$("$@")" = "{\"json\":0,\"meta\":{}}" ]' _ \
  "$BIN/lmz" call --node "127.0.0.1:$(port "$O")" --key-file "$KEY" --timeout 10000 COUNTER_DO "$C" get
placement=$(loc "$O" "$C")
echo "  $placement"
check "it is placed on node $O again, node $B1 its first backup" \
  test "$(owner_of <<<"$placement"),$(backups_of <<<"$placement" | cut -d, -f1)" = "$O,$B1"

"$DC" kill "$O" >/dev/null
ok "node $O killed (SIGKILL)"
S=$B2 # a live node to ask through
moved() { [ "$(owner_of <<<"$(loc "$S" "$C")")" = "$B1" ]; }
check "counter $C fails over to node $B1" wait_until 20 moved || {
  echo "  $(loc "$S" "$C")"; echo "  $(st "$S")"; }
v=$(cl "$S" "$C" get | num)
check "node $B1 answers 0 for $C, not its old copy's 5 (got ${v:-nothing})" test "$v" = 0
m=$(curl -s --max-time 10 "http://127.0.0.1:$("$DC" http-port "$B1")/metrics" |
  awk 'index($1, "lmz_stale_copies_dropped_total{") == 1 || $1 == "lmz_stale_copies_dropped_total" { print $2 }')
check "node $B1 counts the copy it dropped (lmz_stale_copies_dropped_total ${m:-absent})" \
  bash -c '[[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ]' _ "$m"
v=$(cl "$S" "$C" increment | num)
check "an increment then answers 1 (got ${v:-nothing})" test "$v" = 1
finish
