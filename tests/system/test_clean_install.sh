#!/usr/bin/env bash
# System lab: the missing-install-step check. On a clean Debian 12 rootfs (debootstrap minbase,
# nothing else; cached) a copy of this source tree runs the README's test command,
# tests/run-all.sh, with HOZO_TEST_LABELS=unit: its own dependency installation (apt), the build
# with warnings as errors and the unit tests must pass with nothing installed by hand. The lab
# tests stay on the host. Downloaded .debs are kept in $HOZO_SYSTEM_CACHE/apt-archives-bookworm,
# and the compiler cache is the host's (same compiler, paths relative to the checkout).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/systemlib.sh"
sys_require
trap 'set +e; sys_cleanup' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }

rootfs=$(sys_rootfs clean bookworm) || { echo "FAIL clean bookworm rootfs"; echo "0 passed, 1 failed"; exit 1; }
root=$(sys_overlay "$rootfs" clean) || { echo "FAIL overlay"; exit 1; }
chroot "$root" dpkg-query -W cmake >/dev/null 2>&1 && bad "the clean rootfs has cmake already" ||
  ok "clean rootfs: no cmake, no compiler ($(chroot "$root" dpkg-query -W -f='.' | wc -c) packages)"
mkdir -p "$root/src"
tar -C "$SYS_ROOT_SRC" --exclude=./.git --exclude='./build*' -cf - . | tar -C "$root/src" -xf -
ccache_dir=
if command -v ccache >/dev/null; then
  ccache_dir=$(ccache -k cache_dir 2>/dev/null)
  [[ -n $ccache_dir ]] && mkdir -p "$ccache_dir"
fi
t0=$SECONDS
SYS_APT_ARCHIVES=$(sys_apt_archives bookworm) SYS_CCACHE_DIR=$ccache_dir \
  SYS_CHROOT_ENV="HOZO_TEST_LABELS=unit HOZO_FUZZ_SECONDS=0" \
  sys_with_apt_lock bookworm sys_chroot "$root" /bin/bash /src/tests/run-all.sh >"$SYS_WORK/run-all.log" 2>&1
rc=$?
grep -E '^install-deps:|tests passed|tests failed' "$SYS_WORK/run-all.log" | cut -c1-300 | sed 's/^/    /'
if ((rc == 0)); then
  ok "tests/run-all.sh (HOZO_TEST_LABELS=unit) on a clean Debian 12: install, build, unit tests ($((SECONDS - t0)) s)"
else
  bad "tests/run-all.sh exited $rc; the end of its output:"
  grep -B2 -A12 -E '\[  FAILED  \]|error:' "$SYS_WORK/run-all.log" | head -n 80 | sed 's/^/    /'
  tail -n 20 "$SYS_WORK/run-all.log" | sed 's/^/    /'
fi
grep -q 'install-deps: installing' "$SYS_WORK/run-all.log" && ok "run-all.sh installed the dependencies itself" ||
  bad "install-deps installed nothing on a clean rootfs"
echo "$pass passed, $fail failed"
((fail == 0))
