# tests/lib/skeleton_page.sh - the `lmz init` skeleton's page in headless
# Chromium, for the install tests (tests/integration/install.sh from a temp
# prefix, tests/install/root.sh from the installed package). Source it after
# tests/lib/it_lib.sh (ok/bad/skip, $T, $SRC).
#   browser_check WHAT URL   the page (tests/integration/install_page.cjs,
#                            driven by playwright-core from tests/e2e) shows
#                            the answers of both actors, and its button
#                            increments the counter
#   kill_browsers            ends this run's browser processes (after each
#                            check; call it from the EXIT trap too)
CHROMIUM=${LMZ_CHROMIUM:-/usr/bin/chromium}
PLAYWRIGHT=$SRC/tests/e2e/node_modules/playwright-core

# Browser processes of this run have $T/tmp/ in their command line (their
# profile lives there).
kill_browsers() {
  [ -n "${T:-}" ] && [ -d "$T/tmp" ] || return 0
  local p cmd
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    [[ $cmd == *"$T/tmp/"* ]] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  return 0
}

browser_check() {
  if [ ! -x "$CHROMIUM" ] || [ ! -d "$PLAYWRIGHT" ] || ! command -v node >/dev/null; then
    skip "$1: Chromium ($CHROMIUM), node or playwright-core (tests/e2e) missing"
    return
  fi
  mkdir -p "$T/tmp"
  local out before after
  out=$(TMPDIR="$T/tmp" HOME="$T/tmp" PLAYWRIGHT=$PLAYWRIGHT CHROMIUM=$CHROMIUM \
        timeout -k 5 120 node "$SRC/tests/integration/install_page.cjs" "$2" 2>&1)
  kill_browsers
  before=$(sed -nE 's/^\{"before":"([0-9]+)".*/\1/p' <<<"$out")
  after=$(sed -nE 's/.*"after":"([0-9]+)".*/\1/p' <<<"$out")
  if [ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ] &&
     grep -qF '"hello":"Hello, browser!","errors":[]}' <<<"$out"; then
    ok "$1 (total $before -> $after after a click)"
  else
    bad "$1 (got: ${out:0:400})"
  fi
}
