#!/usr/bin/env bash
# Fetches the syncoid versions the lab matrix runs, from the Debian registry through apt only:
#   2.2.0 = sanoid/trixie (Debian 13), 2.3.0 = sanoid/sid (Debian unstable).
# 2.1.0 is Debian 12's installed /usr/sbin/syncoid (tests/install-deps.sh installs it).
# Each .deb is unpacked with dpkg-deb -x into $HOZO_SYNCOID_CACHE/syncoid-VERSION/ (default
# /var/cache/hozo-test), so the program is .../syncoid-VERSION/usr/sbin/syncoid.
# Idempotent and cached: an already unpacked version is not fetched again; apt's lists live in a
# private directory under the cache and are refreshed only when a version is missing.
# A release that cannot be fetched (no network, or the suite moved on to another version) is a
# warning, not an error: the lab tests that need it are skipped with the reason.
#
#   tests/syncoid-versions.sh            fetch the missing versions, print VERSION PATH lines
#   tests/syncoid-versions.sh --path V   print the program for version V (2.1.0, 2.2.0, 2.3.0)
set -euo pipefail

cache=${HOZO_SYNCOID_CACHE:-/var/cache/hozo-test}
declare -A suite=([2.2.0]=trixie [2.3.0]=sid)
versions=(2.1.0 2.2.0 2.3.0)

program_for() {
  case $1 in
    2.1.0) echo /usr/sbin/syncoid ;;
    *) echo "$cache/syncoid-$1/usr/sbin/syncoid" ;;
  esac
}

if [[ ${1:-} == --path ]]; then
  v=${2:?usage: $0 --path VERSION}
  p=$(program_for "$v")
  [[ -x $p ]] || { echo "syncoid-versions: syncoid $v is not installed at $p (run $0)" >&2; exit 1; }
  echo "$p"
  exit 0
fi

missing=()
for v in "${versions[@]}"; do
  [[ $v == 2.1.0 ]] && continue
  [[ -x $(program_for "$v") ]] || missing+=("$v")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "syncoid-versions: need root to fetch syncoid ${missing[*]}" >&2
    exit 1
  fi
  apt_dir=$cache/apt
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/download"
  chown _apt "$apt_dir/download" 2>/dev/null || true  # apt downloads as _apt (no unsandboxed warning)
  cat > "$apt_dir/sources.list" <<LIST
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
LIST
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
            -o "Dir::State::status=/var/lib/dpkg/status" -o APT::Get::List-Cleanup=0
            -o Acquire::Languages=none -o APT::Default-Release=)
  echo "syncoid-versions: fetching syncoid ${missing[*]} (apt, private lists in $apt_dir)" >&2
  if ! apt-get "${apt_opts[@]}" -qq update; then
    echo "syncoid-versions: WARNING: apt-get update for trixie/sid failed; syncoid ${missing[*]} not fetched" >&2
    missing=()
  fi
  for v in "${missing[@]}"; do
    s=${suite[$v]}
    rm -f "$apt_dir"/download/sanoid_*.deb
    if ! (cd "$apt_dir/download" && apt-get "${apt_opts[@]}" -qq download "sanoid/$s"); then
      echo "syncoid-versions: WARNING: apt-get download sanoid/$s failed; syncoid $v not fetched" >&2
      continue
    fi
    deb=$(ls "$apt_dir"/download/sanoid_*.deb)
    got=$(dpkg-deb -f "$deb" Version)
    if [[ $got != "$v"* ]]; then
      echo "syncoid-versions: WARNING: sanoid/$s is $got, not $v; update tests/syncoid-versions.sh" >&2
      rm -f "$deb"
      continue
    fi
    rm -rf "$cache/syncoid-$v.tmp"
    dpkg-deb -x "$deb" "$cache/syncoid-$v.tmp"
    cp "$deb" "$cache/syncoid-$v.tmp/"
    rm -rf "$cache/syncoid-$v"
    mv "$cache/syncoid-$v.tmp" "$cache/syncoid-$v"
    rm -f "$deb"
  done
fi

for v in "${versions[@]}"; do
  [[ -x $(program_for "$v") ]] && echo "$v $(program_for "$v")"
done
exit 0
