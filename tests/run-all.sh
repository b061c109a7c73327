#!/usr/bin/env bash
# The test command (README): installs dependencies, configures with warnings as errors,
# builds, and runs every test — unit tests, lab end-to-end tests and a bounded fuzz run.
#   sudo tests/run-all.sh            # everything
#   HOZO_SKIP_FUZZ=1 tests/run-all.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${HOZO_BUILD_DIR:-$root/build}
jobs=$(nproc)

"$root/tests/install-deps.sh"

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOZO_WERROR=ON "${launcher[@]}"
cmake --build "$build" -j "$jobs"

status=0
ctest --test-dir "$build" --output-on-failure -j "$jobs" || status=$?

if [[ -z ${HOZO_SKIP_FUZZ:-} && -x $root/tests/fuzz/run_fuzz.sh ]]; then
  echo "== fuzzing the config loader (bounded) =="
  "$root/tests/fuzz/run_fuzz.sh" "${HOZO_FUZZ_SECONDS:-60}" || status=$?
fi
exit "$status"
