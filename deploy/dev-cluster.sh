#!/usr/bin/env bash
# deploy/dev-cluster.sh - a 3-node lmz cluster on this machine (loopback).
#
#   deploy/dev-cluster.sh start          start nodes 1-3 (builds nothing: run `make` first)
#   deploy/dev-cluster.sh stop           SIGTERM all nodes (clean shutdown)
#   deploy/dev-cluster.sh status         process state + `lmz status` from a live node
#   deploy/dev-cluster.sh kill N         SIGKILL node N (crash it)
#   deploy/dev-cluster.sh restart N      start node N again on its data
#   deploy/dev-cluster.sh join N         start a new node N (>= 4) and add it to
#                                        the cluster (lmz node add) as a voter
#   deploy/dev-cluster.sh port N         print node N's node port (http-port N:
#                                        its HTTP port)
#
# Node N: node port 7100+N, HTTP 8780+N, Raft id address 7200+N (nothing binds
# it: Raft rides the node port), data ./lmz-cluster/nodeN,
# log ./lmz-cluster/nodeN.log. LMZ_PORT_OFFSET=K adds K to every port;
# LMZ_PORT_OFFSET=ephemeral binds port 0 instead (tests: no port can clash):
# each node reports its ports in DATA/node.port and DATA/http.port (and gets
# new ones on restart); nodes start one after another, each configured with
# the ports of the nodes already up and a placeholder (127.0.0.1:1) for the
# others, which dial in when they start (the node transport serves a peer's
# incoming connection as the link to it).
# LMZ_CLUSTER_DIR changes ./lmz-cluster; LMZ_BIN_DIR changes build/bin.
# Replication (DESIGN.md 4.1): LMZ_REPLICATION_FACTOR=R writes
# cluster.replication.factor (copies of each durable object; unset: the
# key is left out and lmzd's default applies, 3 capped by the live nodes),
# LMZ_REPL_MAX_LAG_MS=MS writes cluster.replication.max_lag_ms (how far a
# backup may fall behind before it leaves the in-sync set). Both are read
# whenever a node's config is written (start, restart, join).
# LMZ_AUTH_JSON='{...}' adds that "auth" block (the auth service, README
# "Logging in"; set its hash_key: the same on every node).
# LMZ_IDLE_EVICT_MS=MS writes actors.idle_evict_ms (how long an idle
# actor stays activated; one with nothing stored is then released).
# All nodes share one cluster key (./lmz-cluster/cluster.key, made on first
# start); `lmz call --node 127.0.0.1:710N --key-file ./lmz-cluster/cluster.key`
# (or --data ./lmz-cluster/nodeN) talks to node N. Browser and Node.js
# clients connect to any node's HTTP port (all nodes share one set of dev JWT
# keys; `lmz token mint --data ./lmz-cluster/node1 --sub alice` makes a token).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${LMZ_BIN_DIR:-$ROOT/build/bin}
LIB=${LMZ_LIB_DIR:-$(cd "$BIN/../lib" 2>/dev/null && pwd || echo "$ROOT/build/lib")}
DIR=${LMZ_CLUSTER_DIR:-$PWD/lmz-cluster}
OFF=${LMZ_PORT_OFFSET:-0}
NODES=(1 2 3)

EPH=false
[ "$OFF" = ephemeral ] && EPH=true
reported() { # reported N FILE: a port node N reported, or the placeholder 1
  local p
  p=$(cat "$DIR/node$1/$2" 2>/dev/null || true)
  echo "${p:-1}"
}
node_port() { if $EPH; then reported "$1" node.port; else echo $((7100 + $1 + OFF)); fi; }
http_port() { if $EPH; then reported "$1" http.port; else echo $((8780 + $1 + OFF)); fi; }
raft_port() { if $EPH; then echo $((7200 + $1)); else echo $((7200 + $1 + OFF)); fi; }
# a peer's node port for a config: with ephemeral ports only a live node's
# (a dead node's old port may belong to another process by now)
peer_port() { if $EPH && ! alive "$1"; then echo 1; else node_port "$1"; fi; }
listen_port() { if $EPH; then echo 0; else node_port "$1"; fi; }
listen_http() { if $EPH; then echo 0; else http_port "$1"; fi; }
pid_of() { cat "$DIR/node$1.pid" 2>/dev/null || true; }
alive() { # running and not a zombie waiting to be reaped
  local p; p=$(pid_of "$1")
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$p/stat" 2>/dev/null
}

# replication_json: the "replication" member of the cluster section (with
# its trailing comma), or nothing when neither variable is set
replication_json() {
  local f=${LMZ_REPLICATION_FACTOR:-} lag=${LMZ_REPL_MAX_LAG_MS:-} body=""
  [[ -z "$f" || "$f" =~ ^[1-9][0-9]*$ ]] || { echo "LMZ_REPLICATION_FACTOR must be a positive integer" >&2; return 1; }
  [[ -z "$lag" || "$lag" =~ ^[1-9][0-9]*$ ]] || { echo "LMZ_REPL_MAX_LAG_MS must be a positive integer" >&2; return 1; }
  [ -n "$f" ] && body="\"factor\": $f"
  [ -n "$lag" ] && body+="${body:+, }\"max_lag_ms\": $lag"
  [ -z "$body" ] || printf '"replication": {%s},\n              ' "$body"
}

write_config() { # write_config N [join]
  local n=$1 join=${2:-false} voters="" i repl
  repl=$(replication_json) || return 1
  local extra="" idle=${LMZ_IDLE_EVICT_MS:-}
  [ -z "${LMZ_AUTH_JSON:-}" ] || extra=$'\n'"  \"auth\": $LMZ_AUTH_JSON,"
  [[ -z "$idle" || "$idle" =~ ^[1-9][0-9]*$ ]] || { echo "LMZ_IDLE_EVICT_MS must be a positive integer" >&2; return 1; }
  [ -z "$idle" ] || extra+=$'\n'"  \"actors\": {\"idle_evict_ms\": $idle},"
  for i in "${NODES[@]}"; do
    voters+="${voters:+,}
      {\"id\": $i, \"node\": \"127.0.0.1:$(peer_port "$i")\", \"raft\": \"127.0.0.1:$(raft_port "$i")\"}"
  done
  cat >"$DIR/node$n.jsonc" <<CFG
// generated by deploy/dev-cluster.sh
{
  "node": {"id": "node-$n", "data": "$DIR/node$n",
           "listen": "127.0.0.1:$(listen_port "$n")", "http": "127.0.0.1:$(listen_http "$n")"},
  "modules": ["$LIB/libcounter.so", "$LIB/libeditor.so"],
  "durable_objects": {"bindings": [
    {"name": "COUNTER_DO", "class_name": "CounterDO"},
    {"name": "HTTP_COUNTER_DO", "class_name": "CounterHttpDO"},
    {"name": "DOCUMENT_DO", "class_name": "DocumentDO"}]},
  "services": [
    {"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"},
    {"binding": "SPELLCHECK_WORKER", "entrypoint": "SpellCheckWorker"}],
  "storage": {"sync": true},
  "gateway": {"jwt": {"dev_keys": true}},$extra
  "cluster": {"id": $n, "raft": "127.0.0.1:$(raft_port "$n")", "join": $join,
              ${repl}"voters": [$voters]}
}
CFG
}

start_node() { # start_node N [join]
  local n=$1
  if alive "$n"; then echo "node $n already running (pid $(pid_of "$n"))"; return 0; fi
  mkdir -p "$DIR/node$n"
  chmod 700 "$DIR/node$n"
  [ -f "$DIR/node$n/cluster.key" ] || install -m 600 "$DIR/cluster.key" "$DIR/node$n/cluster.key"
  # one set of dev JWT keys for the whole cluster (made by the first node)
  if [ ! -f "$DIR/node$n/jwt-keys.json" ] && [ -f "$DIR/jwt-keys.json" ]; then
    install -m 600 "$DIR/jwt-keys.json" "$DIR/node$n/jwt-keys.json"
  fi
  [ -f "$DIR/node$n.jsonc" ] && grep -q '"join": true' "$DIR/node$n.jsonc" && set -- "$n" true
  write_config "$n" "${2:-false}" || return 1
  rm -f "$DIR/node$n/node.port" "$DIR/node$n/http.port"
  "$BIN/lmzd" --config "$DIR/node$n.jsonc" >>"$DIR/node$n.log" 2>&1 &
  echo $! >"$DIR/node$n.pid"
  if $EPH; then wait_ports "$n" || return 1; fi
  echo "node $n: pid $(pid_of "$n"), node port $(node_port "$n"), http $(http_port "$n"), log $DIR/node$n.log"
}

wait_ports() { # ephemeral ports: until node N has reported both (30 s)
  local n=$1 deadline=$(( $(date +%s) + 30 ))
  until [ -s "$DIR/node$n/node.port" ] && [ -s "$DIR/node$n/http.port" ]; do
    if ! alive "$n"; then echo "node $n died; see $DIR/node$n.log" >&2; tail -5 "$DIR/node$n.log" >&2; return 1; fi
    [ "$(date +%s)" -ge "$deadline" ] && { echo "node $n reported no ports after 30 s" >&2; return 1; }
    sleep 0.05
  done
}

wait_ready() { # every node answers a call
  local n deadline=$(( $(date +%s) + 30 ))
  for n in "$@"; do
    until "$BIN/lmz" call --node "127.0.0.1:$(node_port "$n")" --key-file "$DIR/cluster.key" \
        --timeout 2000 ECHO_WORKER - whereami >/dev/null 2>&1; do
      if ! alive "$n"; then echo "node $n died; see $DIR/node$n.log" >&2; tail -5 "$DIR/node$n.log" >&2; return 1; fi
      [ "$(date +%s)" -ge "$deadline" ] && { echo "node $n not ready after 30 s" >&2; return 1; }
      sleep 0.1
    done
  done
}

wait_leased() { # each node is registered and holds a valid lease (a placement candidate)
  local n deadline=$(( $(date +%s) + 30 ))
  for n in "$@"; do
    until "$BIN/lmz" status --node "127.0.0.1:$(node_port "$n")" --key-file "$DIR/cluster.key" \
        2>/dev/null | grep -q '"lease":{"valid":true'; do
      if ! alive "$n"; then echo "node $n died; see $DIR/node$n.log" >&2; tail -5 "$DIR/node$n.log" >&2; return 1; fi
      [ "$(date +%s)" -ge "$deadline" ] && { echo "node $n holds no lease after 30 s" >&2; return 1; }
      sleep 0.1
    done
  done
}

cmd=${1:-}
case "$cmd" in
start)
  [ -x "$BIN/lmzd" ] || { echo "no $BIN/lmzd: build first (make)" >&2; exit 2; }
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  if [ ! -f "$DIR/cluster.key" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/cluster.key.tmp"
    echo >>"$DIR/cluster.key.tmp"
    chmod 600 "$DIR/cluster.key.tmp"
    mv "$DIR/cluster.key.tmp" "$DIR/cluster.key"
  fi
  start_node 1
  for _ in $(seq 300); do [ -f "$DIR/node1/jwt-keys.json" ] && break; sleep 0.05; done
  [ -f "$DIR/jwt-keys.json" ] || install -m 600 "$DIR/node1/jwt-keys.json" "$DIR/jwt-keys.json"
  for n in "${NODES[@]}"; do [ "$n" = 1 ] || start_node "$n"; done
  wait_ready "${NODES[@]}" && wait_leased "${NODES[@]}" || exit 1
  echo "cluster up: try  $BIN/lmz call --node 127.0.0.1:$(node_port 1) --key-file $DIR/cluster.key COUNTER_DO a increment 1"
  ;;
stop)
  all=("${NODES[@]}")
  for f in "$DIR"/node*.pid; do [ -f "$f" ] && n=${f##*/node} && n=${n%.pid} && [ "$n" -gt 3 ] && all+=("$n"); done
  for n in "${all[@]}"; do alive "$n" && kill -TERM "$(pid_of "$n")"; done
  for n in "${all[@]}"; do
    for _ in $(seq 100); do alive "$n" || break; sleep 0.1; done
    rm -f "$DIR/node$n.pid"
  done
  echo "stopped"
  ;;
status)
  for n in "${NODES[@]}"; do
    if alive "$n"; then echo "node $n: running (pid $(pid_of "$n"))"; else echo "node $n: stopped"; fi
  done
  for n in "${NODES[@]}"; do
    if alive "$n"; then "$BIN/lmz" status --node "127.0.0.1:$(node_port "$n")" --key-file "$DIR/cluster.key" && break; fi
  done
  ;;
kill)
  n=${2:?node number}
  if alive "$n"; then
    kill -9 "$(pid_of "$n")"
    for _ in $(seq 200); do alive "$n" || break; sleep 0.02; done
    echo "node $n killed (SIGKILL)"
  else
    echo "node $n not running"
  fi
  ;;
join)
  n=${2:?node number}
  [ "$n" -ge 4 ] || { echo "join: use a new node number (4, 5, ...)" >&2; exit 2; }
  mkdir -p "$DIR/node$n"
  write_config "$n" true || exit 2
  start_node "$n"
  "$BIN/lmz" node add --node "127.0.0.1:$(node_port 1)" --key-file "$DIR/cluster.key" \
    "$n" "127.0.0.1:$(raft_port "$n")" || \
  "$BIN/lmz" node add --node "127.0.0.1:$(node_port 2)" --key-file "$DIR/cluster.key" \
    "$n" "127.0.0.1:$(raft_port "$n")"
  wait_ready "$n"
  ;;
restart)
  n=${2:?node number}
  # a node just SIGKILLed may still be exiting (a large process takes a
  # while under load): wait for it (bounded) rather than call it running
  for _ in $(seq 250); do alive "$n" || break; sleep 0.02; done
  start_node "$n"
  wait_ready "$n"
  ;;
port)
  node_port "${2:?node number}"
  ;;
http-port)
  http_port "${2:?node number}"
  ;;
*)
  sed -n '2,/^set -eu$/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
