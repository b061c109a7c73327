#!/usr/bin/env bash
# The security suite (tests/security/backupd_attacks.py) against the real backupd on 127.0.0.1:
# long header lines, 100k headers, chunked and gzip-bomb bodies, slowloris, rapid requests,
# CRLF smuggling and spoofed peer headers. Each attack must leave backupd's RSS within 8 MiB,
# /ping answering within 1 s and the shutdown command unrun; the table of figures is printed.
# Traffic: 127.0.0.1 and 127.0.0.2 only.
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
backupd=${BACKUPD_BIN:-$(dirname "${HOZO_BIN:-$src/build/hozo}")/backupd}
if [[ ! -x $backupd ]] || ! command -v python3 >/dev/null; then
  echo "SKIP: no backupd binary ($backupd) or no python3"
  exit 77
fi
timeout 240 python3 "$src/tests/security/backupd_attacks.py" "$backupd" 2>&1
rc=$?
((rc == 124)) && echo "FAIL: the suite took longer than 240 s"
exit "$rc"
