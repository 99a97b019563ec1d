#!/usr/bin/env bash
# The main job `make run` starts in the foreground.
set -eu
build=${1:-build}
bin="$build/bin"
if "$bin/lmzd" --help 2>/dev/null | grep -q -- '--dev'; then
  exec "$bin/lmzd" --dev
fi
"$bin/lmzd" --version
echo "lmz: the node runtime (lmzd --dev) is coming in the next milestone;"
echo "     until then, try the codec: echo '{\"json\":[1,{\"\$type\":\"bigint\",\"value\":\"7\"}],\"meta\":{}}' | $bin/lmz codec roundtrip"
