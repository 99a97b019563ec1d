#!/usr/bin/env bash
# Test-only dependencies beyond scripts/install-deps.sh (npm packages for the
# Node and browser tests, chromium). Idempotent; nothing to do yet.
set -eu
exit 0
