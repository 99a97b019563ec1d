# tests/lib/pause_lib.sh - a 3-node dev cluster (deploy/dev-cluster.sh,
# ephemeral ports) whose lmzd run with cluster.lease_ms = $LEASE_MS and one
# of whose followers gets paused (SIGSTOP): shared by
# tests/cluster/cluster_pause.sh and cluster_unactivated.sh.
#
# Set LEASE_MS (and any LMZ_* the cluster needs) first, then source it
# after it_lib.sh. dev-cluster.sh starts lmzd from LMZ_BIN_DIR: here a
# wrapper that adds cluster.lease_ms to the generated config and execs the
# real lmzd (same pid, so dev-cluster.sh's kill and stop work).
# pause_cluster_start starts the cluster and sets L (the leader, as every
# node sees it), P (a follower, the one to pause) and Q (the other
# follower), or ends the test. Helpers: port N, st N (`lmz status`),
# pid_of N, is_num, leader_of STATUS_JSON, node_field STATUS_JSON ID FIELD.
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
mkdir -p "$T/bin"
ln -s "$BIN/lmz" "$T/bin/lmz"
cat >"$T/bin/lmzd" <<WRAP
#!/usr/bin/env bash
[ "\$1" = --config ] && sed -i 's/"cluster": {/"cluster": {"lease_ms": $LEASE_MS, /' "\$2"
exec "$BIN/lmzd" "\$@"
WRAP
chmod +x "$T/bin/lmzd"
export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$T/bin LMZ_PORT_OFFSET=ephemeral
export LMZ_LIB_DIR=${LMZ_LIB_DIR:-$(cd "$BIN/../lib" && pwd)}
DC="$ROOT/deploy/dev-cluster.sh"
KEY=$LMZ_CLUSTER_DIR/cluster.key
port() { "$DC" port "$1"; }
st() { "$BIN/lmz" status --node "127.0.0.1:$(port "$1")" --key-file "$KEY"; }
pid_of() { cat "$LMZ_CLUSTER_DIR/node$1.pid" 2>/dev/null; }
# every node is resumed before it is stopped: a stopped process ignores SIGTERM
stop_cluster() {
  local n p
  for n in 1 2 3; do p=$(pid_of "$n") && [ -n "$p" ] && kill -CONT "$p" 2>/dev/null; done
  "$DC" stop >/dev/null 2>&1
  for n in 1 2 3; do "$DC" kill "$n" >/dev/null 2>&1; done
}
trap 'stop_cluster; cleanup' EXIT
export -f port
export DC KEY BIN

is_num() { [[ "$1" =~ ^[0-9]+$ ]]; }
# node_field STATUS_JSON ID FIELD: FIELD of node ID in a status answer
node_field() { grep -o "{\"id\":$2,[^}]*" <<<"$1" | grep -o "\"$3\":\"\\{0,1\\}[a-z0-9]*" | sed 's/.*://; s/"//g'; }
leader_of() { sed -nE 's/.*"leader":([1-3]),.*/\1/p' <<<"$1"; }

# the leader, as every node sees it (an election may still be settling)
agreed_leader() {
  local a b d
  a=$(leader_of "$(st 1)"); b=$(leader_of "$(st 2)"); d=$(leader_of "$(st 3)")
  is_num "$a" && [ "$a" = "$b" ] && [ "$b" = "$d" ] && echo "$a" >"$T/leader"
}

pause_cluster_start() {
  "$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; bad "cluster starts"; finish; exit 1; }
  ok "3-node cluster starts"
  check "the three nodes agree on a leader" wait_until 15 agreed_leader
  L=$(cat "$T/leader" 2>/dev/null)
  is_num "$L" || { finish; exit 1; }
  P=$(( L % 3 + 1 ))              # the node to pause: not the leader
  Q=$(( P % 3 + 1 ))              # the other follower
}
