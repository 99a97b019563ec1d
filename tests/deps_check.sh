#!/usr/bin/env bash
# Fails when a module includes a header of a module later in the dependency
# order (DESIGN.md section 1), or another module's private *_int.h header.
set -u
root=${1:-.}
order=(core proto storage cluster net actor gateway auth server)
rank() { local i; for i in "${!order[@]}"; do [ "${order[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
bad=0
for mod in "${order[@]}"; do
  [ -d "$root/$mod" ] || continue
  r=$(rank "$mod")
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$line")
    dep=${inc%%/*}
    [ "$dep" = "$inc" ] && continue         # same-folder include
    dr=$(rank "$dep")
    [ "$dr" = -1 ] && continue              # lmz/ public headers, generated
    if [ "$dr" -gt "$r" ]; then
      echo "dependency direction: $file includes $inc ($mod may not depend on $dep)"; bad=1
    fi
    if [ "$dep" != "$mod" ] && [[ "$inc" == *_int.h ]]; then
      echo "private header: $file includes $inc (private to $dep)"; bad=1
    fi
  done < <(grep -HE '^\s*#\s*include "' "$root/$mod"/*.[ch] 2>/dev/null)
done
if [ $bad -eq 0 ]; then echo "1 passed, 0 failed"; fi
exit $bad
