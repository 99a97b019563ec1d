#!/bin/sh
# Container entrypoint: put the shared cluster key into this node's data
# directory (mode 0600), then run lmzd with the mounted configuration.
set -eu
CONFIG=${LMZ_CONFIG:-/etc/lmz/node.jsonc}
DATA=${LMZ_DATA:-/var/lib/lmz}
mkdir -p "$DATA" && chmod 700 "$DATA"
if [ ! -f "$DATA/cluster.key" ]; then
  [ -f /run/secrets/lmz_cluster_key ] || { echo "no cluster key secret" >&2; exit 2; }
  install -m 600 /run/secrets/lmz_cluster_key "$DATA/cluster.key"
fi
exec lmzd --config "$CONFIG" --data "$DATA" "$@"
