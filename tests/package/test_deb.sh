#!/usr/bin/env bash
# `cpack -G DEB` builds an installable .deb: dpkg-deb shows the Depends (shared libraries,
# sanoid, zfsutils-linux | zfs-fuse) and every file under /usr, with ExecStart=/usr/bin/hozo.
# As root, when no package named hozo is installed and its dependencies already are (nothing
# is fetched), it is installed with dpkg -i, /usr/bin/hozo --version runs, and it is purged
# again (also on failure), leaving the machine as before. Exit 77 (skipped) without cpack/dpkg.
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${HOZO_BUILD_DIR:-$src/build}
for tool in cpack dpkg-deb dpkg; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done
[[ -f $build/CPackConfig.cmake ]] || { echo "SKIP: no $build/CPackConfig.cmake"; exit 77; }
work=$(mktemp -d /tmp/hozo-deb-test.XXXXXX)
installed=0
cleanup() {
  if ((installed)); then dpkg -P hozo >/dev/null 2>&1 || echo "WARNING: dpkg -P hozo failed"; fi
  rm -rf "$work"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }

if (cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out") >"$work/cpack.log" 2>&1; then
  ok "cpack -G DEB"
else
  bad "cpack failed: $(cat "$work/cpack.log")"
fi
deb=$(ls "$work"/out/hozo_*.deb 2>/dev/null | head -1)
[[ -n $deb ]] && ok "built $(basename "$deb")" || { bad "no .deb in $work/out"; echo "$pass passed, $fail failed"; exit 1; }

info=$(dpkg-deb --info "$deb")
field() { dpkg-deb --field "$deb" "$1"; }
[[ $(field Package) == hozo ]] && ok "Package: hozo" || bad "Package: $(field Package)"
[[ $(field Section) == admin ]] && ok "Section: admin" || bad "Section: $(field Section)"
[[ -n $(field Maintainer) ]] && ok "Maintainer: $(field Maintainer)" || bad "no Maintainer"
[[ -n $(field Description) ]] && ok "has a Description" || bad "no Description"
depends=$(field Depends)
# spdlog is compiled in (header-only); libcurl and libmicrohttpd are dlopen'ed, so they are named
# explicitly (dpkg-shlibdeps cannot see them), with Debian 13's package names as alternatives.
for dep in sanoid "zfsutils-linux | zfs-fuse" openssh-client libssh libyaml-cpp libfmt libcrypt1 \
  "libcurl4 | libcurl4t64" "libmicrohttpd12 | libmicrohttpd12t64"; do
  [[ $depends == *"$dep"* ]] && ok "Depends has $dep" || bad "Depends lacks $dep: $depends"
done
[[ $depends != *httplib* ]] && ok "Depends has no cpp-httplib" || bad "Depends still has cpp-httplib: $depends"
contents=$(dpkg-deb --contents "$deb" | awk '{ print $6 }')
for f in ./usr/bin/hozo ./usr/bin/backupd ./usr/share/man/man1/hozo.1 ./usr/share/man/man5/hozo.yaml.5 \
  ./usr/share/man/man8/backupd.8 ./usr/lib/systemd/system/hozo@.service ./usr/lib/systemd/system/hozo@.timer \
  ./usr/lib/systemd/system/backupd.service ./usr/lib/systemd/system/backupd.socket ./usr/lib/systemd/system/hozo-serve.service \
  ./usr/share/doc/hozo/examples/hozo.yaml \
  ./usr/share/doc/hozo/examples/backupd.yaml ./usr/share/bash-completion/completions/hozo; do
  grep -qxF "$f" <<<"$contents" && ok "contains $f" || bad "missing $f"
done
grep -q '^./usr/local/' <<<"$contents" && bad "files under /usr/local" || ok "nothing under /usr/local"
exec_start=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/hozo@.service | grep '^ExecStart=')
[[ $exec_start == "ExecStart=/usr/bin/hozo jobs run %i" ]] && ok "$exec_start" || bad "hozo@.service: $exec_start"
exec_start=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/backupd.service | grep '^ExecStart=')
[[ $exec_start == "ExecStart=/usr/bin/backupd --config /etc/hozo/backupd.yaml" ]] && ok "$exec_start" ||
  bad "backupd.service: $exec_start"

# --- dpkg -i / --version / dpkg -P, only where that leaves the machine as it was -------------------
if [[ $(id -u) -ne 0 ]]; then
  echo "not root: dpkg -i skipped"
elif dpkg-query -W -f='${Status}' hozo 2>/dev/null | grep -q 'installed\|unpacked\|half'; then
  echo "a package named hozo is installed already: dpkg -i skipped"
elif [[ -e /usr/bin/hozo || -e /usr/bin/backupd ]]; then
  echo "/usr/bin/hozo or /usr/bin/backupd exists (not from a package): dpkg -i skipped"
elif ! dpkg --no-act -i "$deb" >"$work/noact.log" 2>&1 || grep -qi 'depend' "$work/noact.log"; then
  echo "dependencies not installed, dpkg -i skipped (nothing is fetched): $(cat "$work/noact.log")"
else
  installed=1
  if dpkg -i "$deb" >"$work/dpkg.log" 2>&1; then ok "dpkg -i"; else bad "dpkg -i: $(cat "$work/dpkg.log")"; fi
  version=$(/usr/bin/hozo --version 2>&1)
  [[ $version == "hozo "* ]] && ok "/usr/bin/hozo --version: $version" || bad "/usr/bin/hozo --version: $version"
  [[ $(dpkg-query -W -f='${Status}' hozo) == "install ok installed" ]] && ok "dpkg says installed" ||
    bad "status: $(dpkg-query -W -f='${Status}' hozo)"
  if dpkg -P hozo >"$work/purge.log" 2>&1; then ok "dpkg -P hozo"; else bad "dpkg -P: $(cat "$work/purge.log")"; fi
  installed=0
  [[ ! -e /usr/bin/hozo && ! -e /usr/lib/systemd/system/hozo@.service ]] && ok "purged: files gone" ||
    bad "files left after purge"
  dpkg-query -W -f='${Status}' hozo 2>/dev/null | grep -q 'installed' && bad "still installed" || ok "no hozo package left"
fi

echo "$pass passed, $fail failed"
((fail == 0))
