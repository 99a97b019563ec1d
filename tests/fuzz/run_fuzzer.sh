#!/usr/bin/env bash
# run_fuzzer.sh FUZZER SEED_DIR SECONDS
# Runs a libFuzzer target for a few seconds on a scratch copy of its seed
# corpus (the committed corpus is never written). A crash fails the test and
# leaves the reproducer in the scratch dir, whose path is printed.
set -eu
fuzzer=$1 seeds=$2 secs=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/lmz-fuzz.XXXXXX")
trap 'rm -rf "$work/corpus"' EXIT
mkdir -p "$work/corpus"
[ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true
cd "$work"
if ! ASAN_OPTIONS=detect_leaks=1 "$fuzzer" -max_total_time="$secs" -timeout=10 \
     -rss_limit_mb=2048 -print_final_stats=1 corpus 2>"$work/log"; then
  tail -n 60 "$work/log"
  echo "fuzzer failed; reproducer in $work"
  trap - EXIT
  exit 1
fi
grep -E 'stat::number_of_executed_units' "$work/log" || true
rm -rf "$work"
echo "1 passed, 0 failed"
