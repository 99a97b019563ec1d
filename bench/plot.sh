#!/usr/bin/env bash
# bench/plot.sh ROWS.tsv OUTDIR [TIMELINE.tsv] - draws the benchmark plots
# with gnuplot (Debian gnuplot-nox; scripts/install-bench-deps.sh), PNG and
# SVG, from bench/run's rows (scenario<TAB>metric<TAB>value<TAB>unit<TAB>
# target<TAB>pass):
#   throughput.{png,svg}  calls/s vs WebSocket clients per system (scenario
#                         peers: lmz/workerd, own and shared actors; Redis
#                         INCR at 64 clients as points)
#   latency.{png,svg}     p50 and p99 per system and load (peers, hot_actor)
#   failover.{png,svg}    calls/s per 100 ms across a leader kill and an
#                         owner kill (TIMELINE.tsv: "ms<TAB>calls_s<TAB>event")
# A plot whose data is absent is not drawn (said on stderr). Exit 0 even
# then; 1 only when gnuplot itself fails.
set -euo pipefail
export LC_ALL=C
rows=$1 out=$2 timeline=${3:-}
if ! command -v gnuplot >/dev/null; then
  echo "bench/plot: gnuplot not installed (scripts/install-bench-deps.sh): no plots" >&2
  exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lmz-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# ---- throughput vs clients: one block per series, header line first ------
awk -F'\t' '
  $1 == "peers" && $2 ~ /^(lmz|workerd)\.c[0-9]+\.(own|shared)\.rate$/ {
    split($2, m, "."); c = substr(m[2], 2) + 0
    s = m[1] " (" m[3] " actors)"; if (m[3] == "shared") s = m[1] " (one shared actor)"
    v[s, c] = $3; if (!(s in seen)) { seen[s] = 1; order[++ns] = s }; xs[s] = xs[s] " " c
  }
  $1 == "peers" && $2 ~ /^redis\.c64\.p(1|16)\.rate$/ {
    s = ($2 ~ /p16/) ? "Redis INCR, pipeline 16" : "Redis INCR, no pipelining"
    v[s, 64] = $3; if (!(s in seen)) { seen[s] = 1; order[++ns] = s }; xs[s] = " 64"
  }
  END {
    for (i = 1; i <= ns; i++) {
      s = order[i]; printf "\"%s\" \"\"\n", s
      n = split(xs[s], a, " "); for (j = 1; j <= n; j++) printf "%d %s\n", a[j], v[s, a[j]]
      printf "\n\n"
    }
    print ns + 0 > "/dev/stderr"
  }' "$rows" >"$tmp/tput.dat" 2>"$tmp/tput.n"
ns=$(cat "$tmp/tput.n")

# ---- latency: label p50 p99 --------------------------------------------
awk -F'\t' '
  ($1 == "peers" || $1 == "hot_actor") && $2 ~ /\.p(50|99)_ms$/ {
    k = $2; sub(/\.p(50|99)_ms$/, "", k); lab = ($1 == "hot_actor" ? "hot " : "") k
    if ($2 ~ /p50/) p50[lab] = $3; else p99[lab] = $3
    if (!(lab in seen)) { seen[lab] = 1; order[++n] = lab }
  }
  END { for (i = 1; i <= n; i++) printf "\"%s\" %s %s\n", order[i], p50[order[i]], p99[order[i]] }
' "$rows" >"$tmp/lat.dat"

plot() { # name, gnuplot body (after the terminal lines)
  local name=$1 body=$2
  for t in png svg; do
    if [ $t = png ]; then term="pngcairo size 1000,600 noenhanced"; else term="svg size 1000,600 noenhanced"; fi
    { echo "set terminal $term"; echo "set output '$out/$name.$t'"; echo "$body"; } >"$tmp/$name.gp"
    if ! gnuplot "$tmp/$name.gp" 2>"$tmp/gp.err"; then
      cat "$tmp/gp.err" >&2
      { echo "set terminal ${term/pngcairo/png}"; echo "set output '$out/$name.$t'"; echo "$body"; } >"$tmp/$name.gp"
      gnuplot "$tmp/$name.gp" || exit 1
    fi
  done
  echo "bench/plot: $out/$name.png, $out/$name.svg" >&2
}

if [ "$ns" -gt 0 ]; then
  plot throughput "
set title 'Durable increments/s vs WebSocket clients (one call in flight per client)'
set logscale xy; set xlabel 'clients'; set ylabel 'calls/s'; set grid
set key outside right; set xrange [0.7:1500]
plot for [i=0:$((ns - 1))] '$tmp/tput.dat' index i using 1:2 with linespoints lw 2 pt 7 ps 1.5 title columnheader(1)"
else
  echo "bench/plot: no peers results: no throughput plot" >&2
fi
if [ -s "$tmp/lat.dat" ]; then
  plot latency "
set title 'Latency of a durable increment: p50 and p99 (ms, log scale)'
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8
set logscale y; set ylabel 'ms'; set grid ytics; set xtics rotate by -45 scale 0
set key top left; set bmargin 9
plot '$tmp/lat.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p99'"
else
  echo "bench/plot: no latency results: no latency plot" >&2
fi
if [ -n "$timeline" ] && [ -s "$timeline" ]; then
  awk -F'\t' '$3 != "" { n++; printf "set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 lw 2\nset label \"%s\" at %s, graph %.2f offset 0.5,0\n", $1, $1, $3, $1, (n % 2) ? 0.95 : 0.88 }' \
    "$timeline" >"$tmp/events.gp"
  plot failover "
set title 'Failover: completed calls per 100 ms (reported as calls/s)'
set xlabel 'ms'; set ylabel 'calls/s'; set grid; set key bottom right
load '$tmp/events.gp'
plot '$timeline' using 1:2 with steps lw 2 title 'calls/s'"
else
  echo "bench/plot: no failover timeline: no failover plot" >&2
fi
