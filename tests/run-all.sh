#!/usr/bin/env bash
# The test command (README): installs dependencies, configures with warnings as errors,
# builds, and runs every test with CTest — unit tests (label unit), CLI tests (cli), lab
# end-to-end tests (lab; skipped with the reason when not root / no netns / no zfs-fuse) and a
# bounded fuzz run of the config loader (fuzz), and the system lab (system: real systemd in
# systemd-nspawn containers, the .deb on a clean Debian 12, the Debian 13 build; skipped with the
# reason where nspawn/debootstrap are missing).
#   sudo tests/run-all.sh
#   HOZO_FUZZ_SECONDS=0 tests/run-all.sh      # without the fuzz run
#   HOZO_TEST_LABELS=unit tests/run-all.sh    # install, build, and only the tests with that label
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${HOZO_BUILD_DIR:-$root/build}
jobs=$(nproc)

# Only the unit tests: only the build dependencies (no lab, browser or system-lab packages).
if [[ ${HOZO_TEST_LABELS:-} == unit ]]; then export HOZO_DEPS=${HOZO_DEPS:-build}; fi
"$root/tests/install-deps.sh"

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Paths relative to the checkout: a fresh clone elsewhere (CI) hits the cache of earlier builds.
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
fi
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOZO_WERROR=ON \
  -DHOZO_FUZZ_SECONDS="${HOZO_FUZZ_SECONDS:-60}" "${launcher[@]}"
cmake --build "$build" -j "$jobs"

labels=()
[[ -n ${HOZO_TEST_LABELS:-} ]] && labels=(-L "$HOZO_TEST_LABELS")
exec ctest --test-dir "$build" --output-on-failure -j "$jobs" "${labels[@]}"
