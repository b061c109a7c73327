#!/usr/bin/env bash
# System lab: Debian 13 (trixie). A cached trixie rootfs gets the build dependencies from trixie
# through tests/install-deps.sh (the same script as on Debian 12); then a copy of this source tree
# is configured with warnings as errors (-DHOZO_WERROR=ON), built, and its unit tests run, in a
# network namespace of their own (loopback only). The flags are CI's (RelWithDebInfo: -O2, so the
# same warnings) without -g, which only costs time here. Prints the versions of the libraries it
# builds against (libssh 0.11, yaml-cpp 0.8, fmt 10, spdlog 1.15, CLI11 2.4).
# ccache: $HOZO_SYSTEM_CACHE/ccache-trixie on the host, bound into the chroot.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/systemlib.sh"
sys_require
trap 'set +e; sys_cleanup' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }

t0=$SECONDS
rootfs=$(SYS_CHROOT_ENV=HOZO_DEPS=build sys_rootfs deps trixie "@$SYS_ROOT_SRC/tests/install-deps.sh") ||
  { echo "FAIL trixie rootfs with the build dependencies"; echo "0 passed, 1 failed"; exit 1; }
ok "trixie rootfs with tests/install-deps.sh ($((SECONDS - t0)) s)"
root=$(sys_overlay "$rootfs" trixie) || { echo "FAIL overlay"; exit 1; }
grep -q '^VERSION_CODENAME=trixie' "$root/etc/os-release" && ok "Debian $(cat "$root/etc/debian_version")" ||
  bad "not trixie: $(grep PRETTY "$root/etc/os-release")"
for p in libssh-dev libyaml-cpp-dev libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libsimdjson-dev libcurl4-openssl-dev libgtest-dev g++ cmake; do
  echo "  $p $(chroot "$root" dpkg-query -W -f='${Version}' "$p" 2>/dev/null)"
done

# The source tree as a fresh clone has it (no build directories), at /src in the chroot.
mkdir -p "$root/src"
tar -C "$SYS_ROOT_SRC" --exclude=./.git --exclude='./build*' -cf - . | tar -C "$root/src" -xf -
mkdir -p "$SYS_CACHE/ccache-trixie"
t0=$SECONDS
SYS_CHROOT_NONET=1 SYS_CCACHE_DIR=$SYS_CACHE/ccache-trixie \
  SYS_CHROOT_ENV="CCACHE_BASEDIR=/src CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=2G" sys_chroot "$root" /bin/sh -c '
  set -e
  cmake -S /src -B /src/build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG" \
    -DHOZO_WERROR=ON -DHOZO_FUZZ_SECONDS=0 -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/src/configure.log 2>&1 || { cat /src/configure.log; exit 1; }
  cmake --build /src/build -j "$(nproc)" >/src/build.log 2>&1 || { grep -B2 -A12 -E "error|warning" /src/build.log | head -n 150; exit 2; }
  ctest --test-dir /src/build -L unit -j "$(nproc)" >/src/ctest.log 2>&1 || { grep -E "Failed|\*\*\*|tests passed" /src/ctest.log | head -n 60; exit 3; }
  ' 2>&1 | sed 's/^/    /'
rc=${PIPESTATUS[0]}
case $rc in
  0) ok "configure (HOZO_WERROR=ON), build and unit tests on trixie ($((SECONDS - t0)) s)" ;;
  1) bad "configure failed on trixie" ;;
  2) bad "build failed on trixie (errors/warnings above)" ;;
  *) bad "unit tests failed on trixie" ;;
esac
[[ -f $root/src/ctest.log ]] && grep -E 'tests passed|tests failed' "$root/src/ctest.log" | sed 's/^/    ctest: /'
grep -q 'HOZO_WERROR:BOOL=ON' "$root/src/build/CMakeCache.txt" 2>/dev/null && ok "warnings were errors" ||
  bad "HOZO_WERROR not ON in the trixie build"
echo "$pass passed, $fail failed"
((fail == 0))
