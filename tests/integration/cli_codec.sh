#!/usr/bin/env bash
# tests/integration/cli_codec.sh - the `lmz` CLI skeleton and `lmz codec`.
#
# Runs the built binary ($LMZ_BIN_DIR/lmz) on:
#   - --version / --help / help codec / unknown commands and options;
#   - canonical SC-JSON inputs (hand-written, the bench payloads, and every
#     vector of tests/vectors/scjson.json when that file exists): `roundtrip`
#     must reproduce the text exactly, `encode | decode` too, `check` says ok;
#   - malformed SC-JSON, over-limit input, truncated or garbage binary, empty
#     input: exit status 2, exactly one line on stderr (with "byte" for
#     malformed input), nothing on stdout.
# Prints "N passed, M failed"; exits 1 if anything failed.
set -u
export LC_ALL=C

BIN=${LMZ_BIN_DIR:?LMZ_BIN_DIR not set}/lmz
SRC=${LMZ_SOURCE_DIR:?LMZ_SOURCE_DIR not set}
[ -x "$BIN" ] || { echo "cli_codec.sh: $BIN not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lmz-cli-codec.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() {
  failed=$((failed + 1))
  echo "FAIL: $*"
  if [ -s "$tmp/err" ]; then sed 's/^/  stderr: /' "$tmp/err" | head -5; fi
}

# lmz_run INPUT_FILE ARGS...: runs lmz with stdin from INPUT_FILE; sets $rc,
# stdout in $tmp/out, stderr in $tmp/err.
lmz_run() {
  local in=$1; shift
  "$BIN" "$@" <"$in" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
lines() { awk 'END { print NR }' "$1"; }

# expect_fail NAME WANT_IN_STDERR INPUT_FILE ARGS...: status 2, one stderr
# line containing WANT_IN_STDERR, empty stdout.
expect_fail() {
  local name=$1 want=$2; shift 2
  lmz_run "$@"
  if [ $rc -ne 2 ]; then bad "$name: exit $rc, want 2"; return; fi
  if [ "$(lines "$tmp/err")" != 1 ]; then bad "$name: want one stderr line"; return; fi
  if ! grep -qF -- "$want" "$tmp/err"; then bad "$name: stderr lacks '$want'"; return; fi
  if [ -s "$tmp/out" ]; then bad "$name: stdout not empty"; return; fi
  ok
}

# expect_roundtrip NAME FILE [EXPECT_FILE]: FILE holds SC-JSON (no newline);
# roundtrip and encode|decode must print EXPECT_FILE (default: FILE itself,
# i.e. canonical input) plus a newline.
expect_roundtrip() {
  local name=$1 f=$2 exp=${3:-$2}
  printf '\n' >"$tmp/nl"
  cat "$exp" "$tmp/nl" >"$tmp/want"
  lmz_run "$f" codec roundtrip
  if [ $rc -ne 0 ]; then bad "$name: roundtrip exit $rc"
  elif ! cmp -s "$tmp/out" "$tmp/want"; then
    bad "$name: roundtrip differs"
    echo "  want: $(head -c 300 "$tmp/want")"
    echo "  got:  $(head -c 300 "$tmp/out")"
  else ok; fi

  lmz_run "$f" codec encode
  if [ $rc -ne 0 ] || [ ! -s "$tmp/out" ]; then bad "$name: encode exit $rc"; return; fi
  mv "$tmp/out" "$tmp/bin"
  if cmp -s "$tmp/bin" "$f"; then bad "$name: encode output equals its input"; fi
  lmz_run "$tmp/bin" codec decode
  if [ $rc -ne 0 ]; then bad "$name: decode exit $rc"
  elif ! cmp -s "$tmp/out" "$tmp/want"; then bad "$name: encode|decode differs"
  else ok; fi

  lmz_run "$f" codec check
  if [ $rc -ne 0 ] || ! grep -q '^ok: ' "$tmp/out"; then bad "$name: check exit $rc"
  else ok; fi
}

# ---- the CLI skeleton -----------------------------------------------------------
: >"$tmp/empty"
lmz_run "$tmp/empty" --version
if [ $rc -eq 0 ] && grep -qE '^lmz [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/out"; then ok; else bad "--version"; fi
lmz_run "$tmp/empty" --help
if [ $rc -eq 0 ] && grep -q '^  codec ' "$tmp/out"; then ok; else bad "--help lists codec"; fi
lmz_run "$tmp/empty" help codec
if [ $rc -eq 0 ] && grep -q 'roundtrip' "$tmp/out" && grep -q -- '--max-depth' "$tmp/out"; then ok
else bad "help codec"; fi
lmz_run "$tmp/empty" codec --help
if [ $rc -eq 0 ] && grep -q 'encode' "$tmp/out"; then ok; else bad "codec --help"; fi
expect_fail "unknown command" "'frobnicate'" "$tmp/empty" frobnicate
expect_fail "help unknown command" "'frobnicate'" "$tmp/empty" help frobnicate
expect_fail "unknown action" "'squash'" "$tmp/empty" codec squash
expect_fail "unknown option" "'--fast'" "$tmp/empty" codec encode --fast
expect_fail "bad --max-depth" "'x'" "$tmp/empty" codec encode --max-depth x
expect_fail "missing --max-bytes value" "--max-bytes" "$tmp/empty" codec encode --max-bytes
lmz_run "$tmp/empty" codec
if [ $rc -eq 2 ] && [ ! -s "$tmp/out" ] && grep -q usage "$tmp/err"; then ok; else bad "codec without action"; fi
lmz_run "$tmp/empty"
if [ $rc -eq 2 ] && grep -q usage "$tmp/err"; then ok; else bad "no command"; fi

# ---- round trips of canonical inputs ---------------------------------------------
n=0
add_case() { n=$((n + 1)); printf '%s' "$1" >"$tmp/case$n.json"; }
add_case '{"json":null,"meta":{}}'
add_case '{"json":[1,{"$type":"bigint","value":"7"}],"meta":{}}'
add_case '{"json":{"a":{"$ref":0},"b":{"$ref":0}},"meta":{"aliases":{"0":{"n":1}}}}'
add_case '{"json":{"$ref":0},"meta":{"aliases":{"0":{"name":"c","self":{"$ref":0}}}}}'
add_case '{"json":{"$$ref":1,"s":"café \"q\" \\ \n \u0001"},"meta":{}}'
add_case '{"json":{"$type":"map","entries":[["k",{"$type":"date","iso":"1970-01-01T00:00:00.000Z"}]]},"meta":{}}'
add_case '{"json":[{"$type":"undefined"},{"$type":"number-special","value":"NaN"},-1.5,1e+21,true,false,""],"meta":{}}'
for ((i = 1; i <= n; i++)); do expect_roundtrip "case $i" "$tmp/case$i.json"; done

for f in "$SRC"/bench/payloads/*.json; do
  [ -e "$f" ] || continue
  head -c -1 "$f" >"$tmp/payload.json" # the files end with a newline
  expect_roundtrip "payload ${f##*/}" "$tmp/payload.json"
  # also as a FILE argument instead of stdin
  "$BIN" codec roundtrip "$f" >"$tmp/out" 2>"$tmp/err"
  if [ $? -eq 0 ] && cmp -s "$tmp/out" "$f"; then ok; else bad "payload ${f##*/} as FILE"; fi
done

# ---- golden vectors (tests/vectors/scjson.json) ----------------------------------
vectors=$SRC/tests/vectors/scjson.json
if [ -f "$vectors" ] && command -v node >/dev/null; then
  # Every object with a string "scjson" member is a vector: its text must
  # round-trip exactly, or give its "expect" text when it has one (the
  # decode_only vectors: inputs the decoder normalizes). Files per vector in
  # $tmp/vec: ID.json (input), ID.expect (if any), ID.name.
  mkdir -p "$tmp/vec"
  if node -e '
    const fs = require("fs"), path = require("path");
    const doc = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    let n = 0;
    (function walk(v, name) {
      if (Array.isArray(v)) return v.forEach((x, i) => walk(x, name + "." + i));
      if (v === null || typeof v !== "object") return;
      if (typeof v.scjson === "string") {
        const id = String(++n).padStart(4, "0");
        fs.writeFileSync(path.join(process.argv[2], id + ".json"), v.scjson);
        fs.writeFileSync(path.join(process.argv[2], id + ".name"), String(v.name || v.id || name));
        if (typeof v.expect === "string")
          fs.writeFileSync(path.join(process.argv[2], id + ".expect"), v.expect);
        return;
      }
      for (const k of Object.keys(v)) walk(v[k], name + "." + k);
    })(doc, "vectors");
    if (!n) { console.error("no vectors with a \"scjson\" string found"); process.exit(1); }
  ' "$vectors" "$tmp/vec"; then
    nv=0 k=0
    # sanitizer builds (each lmz start costs seconds there) take every 4th:
    # the codec itself meets every vector in core.test_codec_scjson there
    step=1; [ "${LMZ_TEST_TIME_SCALE:-1}" -gt 1 ] && step=4
    for f in "$tmp/vec"/*.json; do
      k=$((k + 1)); [ $(( (k - 1) % step )) = 0 ] || continue
      nv=$((nv + 1))
      exp=$f
      [ -f "${f%.json}.expect" ] && exp=${f%.json}.expect
      expect_roundtrip "vector $(cat "${f%.json}.name")" "$f" "$exp"
    done
    echo "golden vectors: $nv checked"
  else
    bad "could not read $vectors"
  fi
else
  echo "note: $vectors or node missing; golden vectors not checked"
fi

# ---- malformed SC-JSON -> exit 2, one line with "byte" ---------------------------
m=0
add_bad() { m=$((m + 1)); printf '%s' "$1" >"$tmp/bad$m.json"; }
add_bad '{"json":'
add_bad '{"json":{"a" 1},"meta":{}}'
add_bad 'not json at all'
add_bad '{"json":[1,2,],"meta":{}}'
add_bad '{"json":"unterminated,"meta":{}}'
add_bad '{"json":{"$ref":5},"meta":{}}'
add_bad '{"json":{"$type":"map","entries":[["k"]]},"meta":{}}'
add_bad '{"json":{"$type":"bigint","value":"x1"},"meta":{}}'
add_bad '{"json":1,"meta":{}} trailing'
for ((i = 1; i <= m; i++)); do
  for action in encode roundtrip check; do
    expect_fail "malformed $i ($action): $(cat "$tmp/bad$i.json")" "byte" "$tmp/bad$i.json" codec $action
  done
done
# the message names the action and the input
lmz_run "$tmp/bad2.json" codec encode
if grep -q '^lmz codec encode: stdin: byte [0-9][0-9]*: ' "$tmp/err"; then ok; else bad "error line format"; fi
"$BIN" codec encode "$tmp/bad2.json" >"$tmp/out" 2>"$tmp/err"
if grep -qF "lmz codec encode: $tmp/bad2.json: byte " "$tmp/err"; then ok; else bad "error line names the FILE"; fi

# limits
printf '{"json":[[[[[[[[1]]]]]]]],"meta":{}}' >"$tmp/deep.json"
expect_fail "--max-depth 4" "byte" "$tmp/deep.json" codec encode --max-depth 4
lmz_run "$tmp/deep.json" codec roundtrip --max-depth 64
if [ $rc -eq 0 ]; then ok; else bad "--max-depth 64 accepts depth 9"; fi
expect_fail "--max-bytes 16" "input too large" "$tmp/deep.json" codec encode --max-bytes 16
expect_fail "--max-bytes=16" "input too large" "$tmp/deep.json" codec roundtrip --max-bytes=16
expect_fail "missing file" "no-such-file" "$tmp/empty" codec encode "$tmp/no-such-file"

# ---- empty input ------------------------------------------------------------------
for action in encode decode roundtrip check; do
  expect_fail "empty input ($action)" "empty input" "$tmp/empty" codec $action
done

# ---- truncated and garbage binary --------------------------------------------------
"$BIN" codec encode <"$SRC/bench/payloads/document_10k.json" >"$tmp/doc.bin" 2>"$tmp/err"
size=$(wc -c <"$tmp/doc.bin")
if [ "$size" -gt 100 ]; then
  for cut in 1 2 7 $((size / 3)) $((size / 2)) $((size - 1)); do
    head -c "$cut" "$tmp/doc.bin" >"$tmp/trunc.bin"
    expect_fail "binary truncated to $cut of $size bytes" "byte" "$tmp/trunc.bin" codec decode
  done
else
  bad "encode of document_10k.json gave $size bytes"
fi
printf 'hello, world: not lmz binary' >"$tmp/garbage.bin"
expect_fail "garbage binary" "byte" "$tmp/garbage.bin" codec decode
# fixed-seed pseudo-random bytes (deterministic)
awk 'BEGIN { srand(42); for (i = 0; i < 4096; i++) printf "%c", int(rand() * 256) }' >"$tmp/random.bin"
lmz_run "$tmp/random.bin" codec decode
if [ $rc -eq 2 ] && [ "$(lines "$tmp/err")" = 1 ] && [ ! -s "$tmp/out" ]; then ok
else bad "random binary: exit $rc"; fi
# SC-JSON fed to decode is not binary
expect_fail "SC-JSON given to decode" "byte" "$tmp/case1.json" codec decode

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
