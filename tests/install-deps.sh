#!/usr/bin/env bash
# Installs everything Hōzō needs to build, test and run the lab demo (Debian bookworm, as root).
# Idempotent: runs `apt-get update` and `apt-get install` only when a package is missing.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  libcli11-dev libyaml-cpp-dev libssh-dev libfmt-dev libspdlog-dev libcurl4-openssl-dev
  nlohmann-json3-dev libmicrohttpd-dev libgtest-dev googletest
  # lab: namespaces, user-space ZFS, real sshd, syncoid and its helpers, receivers
  iproute2 util-linux procps psmisc zfs-fuse sanoid openssh-server openssh-client pv mbuffer lzop
  python3 python3-aiosmtpd socat netcat-openbsd
  # docs lint; time zones for the schedule tests
  mandoc tzdata
  # hozo serve: password hashes (mkpasswd), the browser test (chromium), promtool (prometheus)
  libcrypt-dev whois chromium prometheus
)

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
echo "install-deps: all build and lab dependencies present" >&2
