#!/usr/bin/env bash
# tests/san_run.sh COMMAND... - runs one test of a sanitizer build (ctest
# prepends it there: LMZ_TEST_LAUNCHER in cmake/sanitizers.cmake).
# Why: a test that starts lmzd or lmz sends their stderr to a log it deletes,
# kills them with SIGKILL, or only checks that they stopped, so a report from
# a child would go unseen. Here every process the test starts inherits
# log_path: reports land in files under a scratch folder, whoever wrote them.
# Exit status: the test's own, except that any report fails the test (1 if
# the test passed or skipped) after printing every report. With
# LMZ_FINDINGS set, a line naming the test is appended to that file too.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/lmz-san.XXXXXX") || exit 1
for v in ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS; do
  export "$v=${!v:+${!v}:}log_path=$dir/report"
done
"$@"
rc=$?
n=0
for f in "$dir"/report.*; do
  [ -s "$f" ] || continue
  n=$((n + 1))
  echo "=== sanitizer report from pid ${f##*.} ==="
  cat "$f"
done
rm -rf "$dir"
if [ "$n" -gt 0 ]; then
  echo "san_run.sh: $n process(es) wrote a sanitizer report: test fails (its own status: $rc)"
  # make check retries a failed test once (timing under sanitizers); a
  # report is never excused by a retry: it is also kept in LMZ_FINDINGS
  [ -n "${LMZ_FINDINGS:-}" ] &&
    echo "sanitizer report(s) from $n process(es) in: $*" >>"$LMZ_FINDINGS"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] && rc=1
fi
exit "$rc"
