#!/usr/bin/env bash
# The system lab (tests/system/README.md): Debian root file systems built with debootstrap and
# cached under /var/tmp, booted with a real systemd in systemd-nspawn inside the lab's network
# namespaces, and chroots for the build checks. Sourced by tests/system/test_*.sh (after
# tests/lab/lab.sh + testlib.sh where a lab is used).
#
#   sys_require                       exit 77 (skipped) with the reason when nspawn/debootstrap/root is missing
#   sys_rootfs NAME SUITE PKG...      prints a cached rootfs with PKGs installed (built when missing)
#   sys_overlay ROOTFS NAME           prints a writable overlay of ROOTFS (the cache itself stays clean)
#   sys_chroot DIR CMD...             CMD in DIR with /proc, /dev, /sys, in a private mount + pid namespace
#   sys_boot NAME DIR NETNS [nspawn options...]   boots systemd in DIR in /run/netns/NETNS
#   sys_exec NAME CMD...              CMD inside the booted container (nsenter into its PID 1)
#   sys_halt NAME                     powers the container off (and kills it when it hangs)
#   sys_cleanup                       halts every container and removes every overlay of this test

SYS_SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SYS_ROOT_SRC=$(cd "$SYS_SRC_DIR/../.." && pwd)
# Cached root file systems (rebuilt when missing; the key is a hash of suite + package list).
SYS_CACHE=${HOZO_SYSTEM_CACHE:-/var/tmp/hozo-system}
# Debian archive for debootstrap (the same registry apt uses).
SYS_MIRROR=${HOZO_SYSTEM_MIRROR:-http://deb.debian.org/debian}
# Per-test work directory: overlays, container logs.
SYS_WORK=${SYS_WORK:-/var/tmp/hozo-system-run.$$}
# Packages every booted rootfs has (systemd as PID 1, D-Bus for systemctl, ip).
SYS_BASE_PACKAGES=(systemd systemd-sysv dbus iproute2)
declare -A SYS_PID=() # container name -> pid of systemd-nspawn

sys_log() { printf 'system: %s\n' "$*" >&2; }
sys_skip() {
  echo "SKIP: system lab unavailable: $*"
  exit 77
}

# Skips (exit 77) with the reason when the system lab cannot run here.
sys_require() {
  [[ $(id -u) -eq 0 ]] || sys_skip "needs root (debootstrap, systemd-nspawn, mounts)"
  command -v systemd-nspawn >/dev/null || sys_skip "systemd-nspawn not installed (apt-get install systemd-container)"
  command -v debootstrap >/dev/null || sys_skip "debootstrap not installed (apt-get install debootstrap)"
  command -v nsenter >/dev/null || sys_skip "nsenter (util-linux) missing"
  unshare --mount --pid --fork true 2>/dev/null || sys_skip "cannot create mount/pid namespaces"
  mkdir -p "$SYS_CACHE" "$SYS_WORK" || sys_skip "cannot create $SYS_CACHE"
  local probe=$SYS_WORK/overlay-probe
  mkdir -p "$probe/l" "$probe/u" "$probe/w" "$probe/m"
  if ! mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
    rm -rf "$probe"
    sys_skip "overlayfs not available under $SYS_WORK"
  fi
  umount "$probe/m"
  rm -rf "$probe"
}

# CMD inside DIR as root, with /proc, /sys and the host's /dev, in a private mount and pid namespace
# (the mounts vanish with it). The network is the host's, for apt and the Debian registry only;
# SYS_CHROOT_NONET=1 gives CMD a network namespace of its own with nothing but loopback.
# SYS_CHROOT_BIND=DIR binds the host's DIR at the same path; SYS_CCACHE_DIR=DIR at /var/cache/ccache.
sys_chroot() { # DIR CMD...
  local dir=$1
  shift
  local -a net=()
  [[ ${SYS_CHROOT_NONET:-0} == 1 ]] && net=(--net)
  SYS_APT_ARCHIVES=${SYS_APT_ARCHIVES:-} SYS_CHROOT_BIND=${SYS_CHROOT_BIND:-} SYS_CCACHE_DIR=${SYS_CCACHE_DIR:-} \
    SYS_CHROOT_ENV=${SYS_CHROOT_ENV:-} unshare "${net[@]}" --mount --pid --fork --propagation private -- /bin/sh -c '
    d=$1; shift
    ip link set lo up 2>/dev/null
    mount -t proc proc "$d/proc" && mount --rbind /dev "$d/dev" && mount -t sysfs sysfs "$d/sys" &&
      mount -t tmpfs tmpfs "$d/tmp" || exit 1
    [ -n "$SYS_APT_ARCHIVES" ] && mount --bind "$SYS_APT_ARCHIVES" "$d/var/cache/apt/archives"
    [ -n "$SYS_CHROOT_BIND" ] && { mkdir -p "$d$SYS_CHROOT_BIND"; mount --bind "$SYS_CHROOT_BIND" "$d$SYS_CHROOT_BIND"; }
    [ -n "$SYS_CCACHE_DIR" ] && { mkdir -p "$d/var/cache/ccache"; mount --bind "$SYS_CCACHE_DIR" "$d/var/cache/ccache"; }
    exec chroot "$d" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive CCACHE_DIR=/var/cache/ccache \
      ${SYS_CHROOT_ENV:-} "$@"' _ "$dir" "$@"
}

# Host directory of downloaded .debs shared by every rootfs build and chroot apt run (so a rebuild
# or a second run fetches nothing twice). Per suite: bookworm and trixie have different packages.
sys_apt_archives() { # SUITE
  local d=$SYS_CACHE/apt-archives-$1
  mkdir -p "$d/partial"
  echo "$d"
}

# Runs CMD holding the lock of SUITE's shared apt archives (one apt at a time uses them).
sys_with_apt_lock() { # SUITE CMD...
  local suite=$1
  shift
  mkdir -p "$SYS_CACHE"
  (
    flock 8
    "$@"
  ) 8>"$SYS_CACHE/.apt-$suite.lock"
}

# apt-get install PKG... inside the rootfs DIR (no services started, no recommends).
sys_apt_install() { # DIR SUITE PKG...
  local dir=$1 suite=$2
  shift 2
  SYS_APT_ARCHIVES=$(sys_apt_archives "$suite") sys_with_apt_lock "$suite" sys_chroot "$dir" /bin/sh -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null' _ "$@"
}

# Prints the path of a cached rootfs of SUITE with the base packages and PKGs installed; builds it
# when missing (NAME clean: debootstrap minbase; any other NAME: a copy of clean, then apt-get). The cache key is a hash of the suite, the
# package list and this recipe's version, so a changed list builds a new rootfs (older ones of the
# same NAME and suite are removed). HOZO_SYSTEM_REBUILD=1 forces a rebuild. A PKG of the form @FILE
# (e.g. @tests/install-deps.sh) runs the script FILE in the rootfs (env from SYS_CHROOT_ENV);
# the key then holds the script's hash too. The rootfs is $SYS_CACHE/rootfs-SUITE-NAME-KEY.
SYS_RECIPE=3
sys_rootfs() { # NAME SUITE PKG...
  local variant=$1 suite=$2
  shift 2
  local -a pkgs=() scripts=()
  local p
  for p in "$@"; do
    if [[ $p == @* ]]; then
      scripts+=("${p#@}")
    else
      pkgs+=("$p")
    fi
  done
  local key
  key=$( {
    printf '%s\n' "recipe=$SYS_RECIPE" "$suite" "${SYS_BASE_PACKAGES[@]}" "${pkgs[@]}" "${SYS_CHROOT_ENV:-}" | sort
    for p in "${scripts[@]}"; do sha256sum <"$p"; done
  } | sha256sum | cut -c1-16)
  local dir=$SYS_CACHE/rootfs-$suite-$variant-$key
  (
    flock 9
    [[ ${HOZO_SYSTEM_REBUILD:-0} == 1 && -d $dir ]] && rm -rf --one-file-system "$dir"
    if [[ -f $dir/.hozo-rootfs-complete ]]; then
      exit 0
    fi
    local t0=$SECONDS tmp=$dir.tmp
    rm -rf --one-file-system "$tmp"
    if [[ $variant == clean ]]; then
      sys_log "building rootfs $suite-clean ($key): debootstrap"
      local inc
      inc=$(IFS=,; echo "${SYS_BASE_PACKAGES[*]}")
      debootstrap --variant=minbase --include="$inc" --cache-dir="$(sys_apt_archives "$suite")" \
        "$suite" "$tmp" "$SYS_MIRROR" >"$SYS_CACHE/debootstrap-$suite.log" 2>&1 ||
        { sys_log "debootstrap failed:"; tail -n 20 "$SYS_CACHE/debootstrap-$suite.log" >&2; exit 1; }
    else
      # every other variant starts from a copy of the clean one (one debootstrap per suite)
      local base
      base=$(sys_rootfs clean "$suite") || exit 1
      sys_log "building rootfs $suite-$variant ($key): $suite-clean + ${pkgs[*]} ${scripts[*]}"
      cp -a "$base" "$tmp" && rm -f "$tmp/.hozo-rootfs-complete" || exit 1
    fi
    # No service starts in the chroot; no recommends; policy-rc.d removed again below.
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 755 "$tmp/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$tmp/etc/apt/apt.conf.d/90hozo-system"
    if ((${#pkgs[@]})); then
      sys_apt_install "$tmp" "$suite" "${pkgs[@]}" || { sys_log "apt-get install ${pkgs[*]} failed"; exit 1; }
    fi
    for p in "${scripts[@]}"; do
      install -m 755 "$p" "$tmp/root/setup-${p##*/}"
      SYS_APT_ARCHIVES=$(sys_apt_archives "$suite") sys_with_apt_lock "$suite" sys_chroot "$tmp" "/root/setup-${p##*/}" ||
        { sys_log "$p failed in the $suite rootfs"; exit 1; }
      rm -f "$tmp/root/setup-${p##*/}"
    done
    rm -f "$tmp/usr/sbin/policy-rc.d"
    # A container has no consoles to log in on and no host key of its own yet: keep the boot quiet.
    chroot "$tmp" systemctl mask -q console-getty.service getty@tty1.service systemd-networkd-wait-online.service \
      2>/dev/null || true
    [[ -x $tmp/usr/sbin/zfs-fuse ]] && chroot "$tmp" systemctl mask -q zfs-fuse.service
    rm -f "$tmp/etc/machine-id" && : >"$tmp/etc/machine-id"
    local s
    for s in "$SYS_CACHE"/rootfs-"$suite"-"$variant"-*; do
      [[ $s == "$dir" || $s == "$tmp" || ! -d $s ]] && continue
      rm -rf --one-file-system "$s"
    done
    touch "$tmp/.hozo-rootfs-complete"
    mv "$tmp" "$dir"
    sys_log "rootfs $suite-$variant built in $((SECONDS - t0)) s: $dir"
  ) 9>"$SYS_CACHE/.lock-$suite-$variant" || return 1
  echo "$dir"
}

# Prints a writable overlay (lower: ROOTFS) at $SYS_WORK/NAME/root; removed by sys_cleanup.
sys_overlay() { # ROOTFS NAME
  local o=$SYS_WORK/$2
  mkdir -p "$o/upper" "$o/work" "$o/root"
  mount -t overlay overlay -o "lowerdir=$1,upperdir=$o/upper,workdir=$o/work" "$o/root" || return 1
  # An installed Debian has /etc/hosts with localhost (the installer writes it; trixie's netbase
  # ships it); bookworm's debootstrap leaves none, and names like "localhost" would not resolve.
  [[ -e $o/root/etc/hosts ]] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' \
    >"$o/root/etc/hosts"
  echo "$o/root"
}

# Boots systemd in DIR as container NAME inside the network namespace NETNS (never the host's
# network) with the host's zfs-fuse socket; extra nspawn options follow. Waits until the boot is
# finished (systemctl is-system-running --wait).
sys_boot() { # NAME DIR NETNS [OPTIONS...]
  local name=$1 dir=$2 ns=$3
  shift 3
  [[ -e /run/netns/$ns ]] || { sys_log "no network namespace $ns"; return 1; }
  local log=$SYS_WORK/$name.console.log
  systemd-nspawn --quiet --keep-unit --register=no -M "$name" -D "$dir" -b --console=pipe \
    --network-namespace-path="/run/netns/$ns" --bind=/run/zfs --resolv-conf=off --timezone=off \
    "$@" </dev/null >"$log" 2>&1 &
  SYS_PID[$name]=$!
  local i
  for ((i = 0; i < 600; i++)); do
    if ! kill -0 "${SYS_PID[$name]}" 2>/dev/null; then
      sys_log "container $name exited during boot:"
      tail -n 30 "$log" >&2
      return 1
    fi
    if [[ -n $(sys_init_pid "$name") ]] && sys_exec "$name" systemctl is-system-running --wait >/dev/null 2>&1; then
      return 0
    fi
    # degraded is a finished boot too (a unit of the minimal rootfs may fail)
    [[ $(sys_exec "$name" systemctl is-system-running 2>/dev/null) == degraded ]] && return 0
    sleep 0.2
  done
  sys_log "container $name did not finish booting:"
  tail -n 30 "$log" >&2
  return 1
}

# PID (host view) of the container's systemd.
sys_init_pid() { # NAME
  local p=${SYS_PID[$1]:-}
  [[ -n $p ]] || return 0
  local kids
  kids=$(cat "/proc/$p/task/$p/children" 2>/dev/null) || return 0
  echo "${kids%% *}"
}

# CMD inside container NAME (all its namespaces), with a clean environment.
sys_exec() { # NAME CMD...
  local name=$1
  shift
  local pid
  pid=$(sys_init_pid "$name")
  [[ -n $pid ]] || { sys_log "container $name is not running"; return 1; }
  nsenter -t "$pid" -a -- /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 HOME=/root "$@"
}

# Powers container NAME off (systemctl poweroff), kills it after 30 s.
sys_halt() { # NAME
  local name=$1 p=${SYS_PID[$1]:-} i
  [[ -n $p ]] || return 0
  if kill -0 "$p" 2>/dev/null; then
    sys_exec "$name" systemctl poweroff --no-block >/dev/null 2>&1 || kill -TERM "$p" 2>/dev/null
    for ((i = 0; i < 300; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && { sys_log "container $name hangs on poweroff: killed"; kill -KILL "$p" 2>/dev/null; }
  fi
  wait "$p" 2>/dev/null
  unset "SYS_PID[$name]"
  return 0
}

sys_cleanup() {
  local n o
  for n in "${!SYS_PID[@]}"; do sys_halt "$n"; done
  # every mount under the work directory (overlays are made in command substitutions: no list)
  while read -r o; do
    umount "$o" 2>/dev/null || umount -l "$o" 2>/dev/null
  done < <(awk -v p="$SYS_WORK/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r)
  [[ ${SYS_KEEP:-0} == 1 ]] || rm -rf --one-file-system "$SYS_WORK"
}

# The project's .deb (cpack -G DEB from the build directory) into OUTDIR; prints its path.
sys_build_deb() { # BUILD_DIR OUTDIR
  mkdir -p "$2"
  (cd "$2" && cpack -G DEB --config "$1/CPackConfig.cmake" -B "$2") >"$2/cpack.log" 2>&1 ||
    { sys_log "cpack failed:"; tail -n 20 "$2/cpack.log" >&2; return 1; }
  ls "$2"/hozo_*.deb | head -n 1
}

# `apt install ./hozo_*.deb` in the rootfs DIR (chroot; apt fetches the Depends from the Debian
# registry): proves the package's Depends on a clean Debian. Log in $SYS_WORK/apt-NAME.log.
sys_install_deb() { # DIR DEB SUITE
  cp "$2" "$1/root/" || return 1
  SYS_APT_ARCHIVES=$(sys_apt_archives "$3") sys_with_apt_lock "$3" sys_chroot "$1" /bin/sh -c \
    "cd /root && apt-get update -qq && apt-get install -y -qq ./$(basename "$2")" \
    >"$SYS_WORK/apt-$(basename "$1").log" 2>&1 ||
    { tail -n 20 "$SYS_WORK/apt-$(basename "$1").log"; return 1; }
}

# Destroys this lab's pools, retrying for up to 30 s: right after a container that used them
# stopped, zfs-fuse may still call them busy for a moment (lab_down retries for 5 s only).
sys_destroy_lab_pools() {
  local pool i
  for pool in "$LAB_SRC_POOL" "$LAB_TGT_POOL"; do
    for ((i = 0; i < 60; i++)); do
      /usr/sbin/zpool list -H -o name "$pool" >/dev/null 2>&1 || break
      /usr/sbin/zpool destroy -f "$pool" 2>/dev/null && break
      sleep 0.5
    done
  done
}

# The start of a system test that boots a container next to the lab (needs lab.sh and testlib.sh
# sourced first): checks what it needs (skipping with the reason), brings up the lab, the cached
# `system` rootfs and the project's .deb, and an overlay for the container PREFIX<lab id>.
# Sets build, rootfs, deb, C (the container name) and root (its overlay); tears all down at exit.
sys_lab_container() { # PREFIX
  build=${HOZO_BUILD_DIR:-$SYS_ROOT_SRC/build}
  sys_require
  lab_require
  [[ -f $build/CPackConfig.cmake ]] || sys_skip "no $build/CPackConfig.cmake (configure the build first)"
  command -v cpack >/dev/null || sys_skip "cpack not found"
  trap 'set +e; sys_cleanup; sys_destroy_lab_pools; lab_down' EXIT
  rootfs=$(sys_rootfs system bookworm zfs-fuse cron) || { echo "FAIL rootfs"; exit 1; }
  deb=$(sys_build_deb "$build" "$SYS_WORK/deb") || { echo "FAIL cpack -G DEB"; exit 1; }
  lab_up || exit 1
  C=$1$LAB_ID
  root=$(sys_overlay "$rootfs" "$C") || { echo "FAIL overlay"; exit 1; }
}
