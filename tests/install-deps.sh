#!/usr/bin/env bash
# Installs everything Hōzō needs to build, test and run the lab demo (Debian 12 bookworm or
# Debian 13 trixie, as root). Idempotent: runs `apt-get update` and `apt-get install` only when a
# package is missing. The system lab runs it on a clean Debian 12 and in a Debian 13 container.
#   HOZO_DEPS=build tests/install-deps.sh    # only what the build and the unit tests need
#                                            # (run-all.sh sets it for HOZO_TEST_LABELS=unit)
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-dev
  libcli11-dev libyaml-cpp-dev libssh-dev libfmt-dev libspdlog-dev libcurl4-openssl-dev
  nlohmann-json3-dev libsimdjson-dev libmicrohttpd-dev libgtest-dev googletest
  # docs lint; time zones for the schedule tests
  mandoc tzdata
  # hozo serve: password hashes (yescrypt through libcrypt)
  libcrypt-dev
)
lab_packages=(
  # lab: namespaces, user-space ZFS, real sshd, syncoid and its helpers, receivers
  iproute2 util-linux procps psmisc zfs-fuse sanoid openssh-server openssh-client pv mbuffer lzop
  python3 python3-aiosmtpd socat netcat-openbsd
  # system lab (tests/system): systemd in containers, Debian root file systems
  systemd-container debootstrap
  # hozo serve's tests: mkpasswd (whois), the browser test (chromium), promtool (prometheus)
  whois chromium prometheus
)
packages=("${build_packages[@]}")
[[ ${HOZO_DEPS:-all} == build ]] || packages+=("${lab_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps package scripts from starting services (sshd, zfs-fuse) on the host.
  had_policy=0
  [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
  if ((!had_policy)); then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if ((!had_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi
# The lab's syncoid matrix: Debian 13's syncoid 2.2.0 and unstable's 2.3.0 (apt download, cached).
# HOZO_NO_SYNCOID_MATRIX=1 or HOZO_DEPS=build leaves them out.
if [[ $(id -u) -eq 0 && -z ${HOZO_NO_SYNCOID_MATRIX:-} && ${HOZO_DEPS:-all} != build ]]; then
  "$(dirname "${BASH_SOURCE[0]}")/syncoid-versions.sh" >/dev/null
fi
if [[ ${HOZO_DEPS:-all} == build ]]; then
  echo "install-deps: all build dependencies present (HOZO_DEPS=build: no lab packages)" >&2
else
  echo "install-deps: all build and lab dependencies present" >&2
fi
