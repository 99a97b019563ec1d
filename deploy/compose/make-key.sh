#!/bin/sh
# Writes deploy/compose/cluster.key (32 random bytes as hex, mode 0600) once.
set -eu
f="$(dirname "$0")/cluster.key"
[ -f "$f" ] && { echo "$f exists"; exit 0; }
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f"
echo >>"$f"
echo "wrote $f"
