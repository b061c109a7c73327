#!/usr/bin/env bash
# Prints the backupd security table (RSS before/peak/after and the slowest /ping per attack) for
# tests/bench/README.md. Same program as the CTest test cli.test_backupd_security; no root needed.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${HOZO_BUILD_DIR:-$src/build}
exec python3 "$src/tests/security/backupd_attacks.py" "${BACKUPD_BIN:-$build/backupd}" "$@"
