#!/usr/bin/env bash
# tests/integration/auth_mail.sh - the auth service's real email senders end
# to end: `lmzd` with auth.email.kind "smtp" against a fake SMTP server and
# with kind "http" (Resend-compatible) against a fake HTTP API, both node
# scripts on port 0. For each: a magic-link request delivers a message that
# carries the link, following the link logs in (302 + cookie), the cookie
# refreshes (200 + access token). A send the server refuses (SMTP 550 at
# RCPT, HTTP 500: the fakes refuse every address starting "bounce") gets
# exactly the answer a delivered one gets (no address existence leak), and
# lmzd logs the failure. Prints "N passed, M failed".
. "$(dirname "$0")/../lib/it_lib.sh"
command -v curl >/dev/null || { echo "curl not installed: skipped"; exit 77; }
command -v node >/dev/null || { echo "node not found: skipped"; exit 77; }
LIB=${LMZ_LIB_DIR:?LMZ_LIB_DIR not set}

# fake SMTP: one line per delivered message: "RCPT<TAB>decoded text part"
cat >"$T/smtp.mjs" <<'JS'
import net from 'node:net';
import fs from 'node:fs';
const [portFile, logFile] = process.argv.slice(2);
const srv = net.createServer((s) => {
  let buf = '', data = null, rcpt = '';
  s.write('220 fake ESMTP\r\n');
  s.on('data', (c) => {
    buf += c.toString('latin1');
    let i;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 2);
      if (data !== null) {
        if (line !== '.') { data.push(line); continue; }
        let text = '', run = '';
        for (const l of data.concat([''])) { /* runs of base64 lines: the parts */
          if (/^[A-Za-z0-9+/=]+$/.test(l)) { run += l; continue; }
          if (run) text += Buffer.from(run, 'base64').toString() + ' ';
          run = '';
        }
        fs.appendFileSync(logFile, `${rcpt}\t${text.replace(/\s+/g, ' ')}\n`);
        data = null; s.write('250 queued\r\n'); continue;
      }
      const v = line.slice(0, 4).toUpperCase();
      if (v === 'EHLO') s.write('250-fake\r\n250 8BITMIME\r\n');
      else if (v === 'HELO' || v === 'MAIL' || v === 'RSET' || v === 'NOOP') s.write('250 ok\r\n');
      else if (v === 'RCPT') {
        rcpt = line.slice(8);
        s.write(/^<bounce/.test(rcpt) ? '550 no such user\r\n' : '250 ok\r\n');
      } else if (v === 'DATA') { data = []; s.write('354 go\r\n'); }
      else if (v === 'QUIT') { s.end('221 bye\r\n'); }
      else s.write('502 no\r\n');
    }
  });
  s.on('error', () => {});
});
srv.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(srv.address().port)));
JS
# fake Resend-compatible API: one line per request: "AUTH<TAB>JSON body"
cat >"$T/api.mjs" <<'JS'
import http from 'node:http';
import fs from 'node:fs';
const [portFile, logFile] = process.argv.slice(2);
const srv = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    fs.appendFileSync(logFile, `${req.method} ${req.url} ${req.headers.authorization}\t${body}\n`);
    const j = JSON.parse(body);
    const to = [].concat(j.to)[0] || '';
    res.writeHead(to.startsWith('bounce') ? 500 : 200, {'Content-Type': 'application/json'});
    res.end(to.startsWith('bounce') ? '{"message":"internal"}' : '{"id":"m1"}');
  });
});
srv.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(srv.address().port)));
JS
for f in smtp api; do
  node "$T/$f.mjs" "$T/$f.port" "$T/$f.log" & PIDS+=("$!")
  wait_until 20 test -s "$T/$f.port" || { bad "the fake $f server starts"; finish; exit 1; }
done
touch "$T/smtp.log" "$T/api.log"

req() { # req METHOD URL [curl args...]: body $T/b, headers $T/h, status $S
  local m=$1 u=$2; shift 2
  S=$(curl -s -o "$T/b" -D "$T/h" -w '%{http_code}' -X "$m" "$@" "$u")
}
hdr() { grep -i "^$1:" "$T/h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

# run KIND EMAIL_JSON LOG: one lmzd with that sender, the whole round trip
run() {
  local kind=$1 email=$2 log=$3 d=$T/$1
  mkdir -p "$d"
  cat >"$T/$kind.jsonc" <<JSON
{
  "modules": ["$LIB/libcounter.so"],
  "services": [{"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"}],
  "auth": {"email": $email}
}
JSON
  start_lmzd "$d" --config "$T/$kind.jsonc" || { bad "$kind: lmzd starts"; return; }
  local h="http://127.0.0.1:$(cat "$d/http.port")"
  req POST "$h/auth/email-magic-link" -d '{"email":"Dana@Example.com"}'
  local ok_answer="$S $(cat "$T/b")"
  wait_until 10 grep -q 'one_time_token=' "$log"
  local link; link=$(grep -o 'http://[^ "\\]*one_time_token=[A-Za-z0-9_-]*' "$log" | tail -1)
  check "$kind: the message carries the link" test -n "$link"
  check "$kind: the message went to the address" grep -qi 'dana@example.com' "$log"
  req GET "$link"
  local c; c=$(hdr Set-Cookie | sed -E 's/^refresh-token=([^;]*);.*/\1/')
  check "$kind: following the link logs in (302 + cookie)" test "$S" = 302 -a -n "$c"
  req POST "$h/auth/refresh-token" -H "Cookie: refresh-token=$c"
  check "$kind: the cookie refreshes (200 + access_token)" \
    bash -c "[ $S = 200 ] && grep -q '\"access_token\":\"ey' '$T/b'"
  req POST "$h/auth/email-magic-link" -d '{"email":"bounce@example.com"}'
  check "$kind: a refused send answers exactly as a delivered one" \
    test "$S $(cat "$T/b")" = "$ok_answer"
  wait_until 10 grep -q 'WARN .*mail not sent' "$d.log"
  check "$kind: lmzd logs the failed send" grep -qE 'WARN .*mail not sent.*(550|500)' "$d.log"
  check "$kind: no dev outbox was written" test ! -d "$d/outbox"
}

run smtp "{\"kind\": \"smtp\", \"from\": \"Lumenize <no-reply@lmz.test>\",
           \"smtp_url\": \"smtp://127.0.0.1:$(cat "$T/smtp.port")\", \"timeout_ms\": 5000}" \
    "$T/smtp.log"
run http "{\"kind\": \"http\", \"from\": \"Lumenize <no-reply@lmz.test>\",
           \"http_url\": \"http://127.0.0.1:$(cat "$T/api.port")/emails\",
           \"http_api_key\": \"re_test_key\", \"timeout_ms\": 5000}" \
    "$T/api.log"
check "http: the API key is sent as a bearer token" grep -q '^POST /emails Bearer re_test_key' "$T/api.log"
finish
