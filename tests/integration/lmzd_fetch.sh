#!/usr/bin/env bash
# lmz_fetch through a real lmzd (issue 13 item 2): the "fetch" config
# section reaches the node. The editor's SpellCheckWorker, pointed at a fake
# spell-check service (node, port 0) by vars.SPELLCHECK_URL, POSTs the
# content there when its host is on fetch.allow; with the host not on the
# list the check fails with FetchError EACCESS and the service hears
# nothing; a malformed fetch section stops lmzd naming file:line.
. "$(dirname "$0")/../lib/it_lib.sh"
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
LIB=${LMZ_LIB_DIR:-$BIN/../lib}

# the fake service: logs each request body, answers one finding
cat >"$T/svc.mjs" <<'JS'
import http from 'node:http';
import fs from 'node:fs';
const [portFile, logFile] = process.argv.slice(2);
const srv = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    fs.appendFileSync(logFile, `${req.method} ${req.url} ${req.headers['content-type']} ${body}\n`);
    res.writeHead(200, {'Content-Type': 'application/json'});
    res.end(JSON.stringify({findings: [{word: 'cat', position: 4, suggestions: ['cot']}]}));
  });
});
srv.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(srv.address().port)));
JS
node "$T/svc.mjs" "$T/svc.port" "$T/svc.log" &
PIDS+=("$!")
wait_until 20 test -s "$T/svc.port" || { bad "the fake service starts"; finish; exit 1; }
PORT=$(cat "$T/svc.port")

# start_cfg NAME ALLOW_JSON: lmzd with the editor and counter modules
start_cfg() {
  local d=$T/$1
  cat >"$T/$1.jsonc" <<CFG
{
  "modules": ["$LIB/libcounter.so", "$LIB/libeditor.so"],
  "services": [{"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"},
               {"binding": "SPELLCHECK_WORKER", "entrypoint": "SpellCheckWorker"}],
  "vars": {"SPELLCHECK_URL": "http://127.0.0.1:$PORT/spell"},
  "fetch": {"allow": $2, "timeout_ms": 5000, "max_response_bytes": 65536}
}
CFG
  rm -f "$d/node.port"
  "$BIN/lmzd" --config "$T/$1.jsonc" --data "$d" --listen 127.0.0.1:0 --http 127.0.0.1:0 \
    >>"$d.log" 2>&1 &
  LMZD_PID=$!; PIDS+=("$LMZD_PID")
  wait_until 20 test -s "$d/node.port" || { tail -5 "$d.log"; return 1; }
  NODE="127.0.0.1:$(cat "$d/node.port")"; D=$d
  wait_until 20 "$BIN/lmz" call --node "$NODE" --data "$d" ECHO_WORKER - echo 1 >/dev/null
}

if start_cfg allowed '["127.0.0.1"]'; then
  lcall "$D" SPELLCHECK_WORKER - check '"teh cat"' '"alice.t1"' '"doc1"' >/dev/null 2>&1
  check "the service got the content as text/plain" \
    wait_until 20 grep -q "^POST /spell text/plain; charset=utf-8 teh cat$" "$T/svc.log"
  kill -TERM "$LMZD_PID"; wait "$LMZD_PID" 2>/dev/null
  check "lmzd stops cleanly with fetch configured" test $? -ne 139
else
  bad "lmzd starts with a fetch section"
fi

: >"$T/svc.log"
if start_cfg denied '["api.example.invalid"]'; then
  out=$(lcall "$D" SPELLCHECK_WORKER - check '"teh cat"' '"alice.t1"' '"doc1"' 2>&1); rc=$?
  check "a host not on fetch.allow: the call fails" test "$rc" -ne 0
  check "...with FetchError naming the allow-list" grep -q "fetch allow-list" <<<"$out"
  check "...and the service heard nothing" test ! -s "$T/svc.log"
  kill -TERM "$LMZD_PID"; wait "$LMZD_PID" 2>/dev/null
else
  bad "lmzd starts with a denying fetch section"
fi

printf '{\n  "fetch": {"allow": "127.0.0.1"}\n}\n' >"$T/badfetch.jsonc"
err=$("$BIN/lmzd" --config "$T/badfetch.jsonc" --data "$T/badfetch" 2>&1); rc=$?
check "a malformed fetch section stops lmzd naming file:line" \
  bash -c '[ "$1" = 2 ] && grep -q "badfetch.jsonc:2:" <<<"$2" && grep -q "fetch.allow" <<<"$2"' _ "$rc" "$err"
printf '{\n  "fetch": {"allow": ["a.test"], "max_redirects": 99}\n}\n' >"$T/badredir.jsonc"
err=$("$BIN/lmzd" --config "$T/badredir.jsonc" --data "$T/badredir" 2>&1); rc=$?
check "fetch.max_redirects is bounded" \
  bash -c '[ "$1" = 2 ] && grep -q "fetch.max_redirects" <<<"$2"' _ "$rc" "$err"
finish
