#!/usr/bin/env bash
# Hōzō lab: an embedded, normally-off backup box on one machine (test fixture, not part of hozo).
#
# Library (source it) and CLI:
#   lab.sh up|down|status|env          # LAB_ID defaults to "cli" for the CLI, $$ when sourced
#
#   source tests/lab/lab.sh
#   lab_require                         # exit 77 (CTest "skipped") with a reason when unusable
#   trap lab_down EXIT
#   lab_up                              # namespaces, veths, pools, keys, power simulator
#   lab_wake; lab_wait_event ssh_up 20
#   lab_ssh zfs list
#
# Layout, addresses and variables: tests/lab/README.md. Every address used here lives in network
# namespaces this file creates (a private 10.231.N.0/24 on veths) or on their loopbacks; nothing is
# ever sent from the machine's root namespace to a non-loopback address.

LAB_SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_PY=/usr/bin/python3 # Debian's python (has python3-aiosmtpd); never `python3` from PATH
LAB_SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

_lab_log() { printf '[lab %s] %s\n' "${LAB_ID:-?}" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# variables
# ---------------------------------------------------------------------------------------------
_lab_vars() {
  LAB_ID=${LAB_ID:-$$}
  if [[ ! $LAB_ID =~ ^[a-z0-9]{1,10}$ ]]; then
    echo "lab: LAB_ID must be 1-10 characters [a-z0-9] (got '$LAB_ID')" >&2
    return 2
  fi
  LAB_DIR=${LAB_DIR:-/tmp/hozo-lab.$LAB_ID}
  local octet
  octet=${LAB_NET_OCTET:-$(($(printf '%s' "$LAB_ID" | cksum | cut -d' ' -f1) % 200 + 20))}
  LAB_NET_OCTET=$octet
  LAB_SUBNET=10.231.$octet.0/24
  LAB_BROADCAST=10.231.$octet.255
  LAB_ORCH_IP=10.231.$octet.1
  LAB_BOX_IP=10.231.$octet.2
  LAB_RELAY_IP=10.231.$octet.3
  LAB_BOX_MAC=${LAB_BOX_MAC:-02:00:5e:10:00:01}
  LAB_NS_ORCH=hzo-orch-$LAB_ID
  LAB_NS_BOX=hzo-box-$LAB_ID
  LAB_NS_RELAY=hzo-relay-$LAB_ID
  LAB_RELAY=${LAB_RELAY:-0}
  LAB_SSH_USER=root
  LAB_SSH_PORT=${LAB_SSH_PORT:-22}
  LAB_RELAY_SSH_PORT=${LAB_RELAY_SSH_PORT:-22}
  LAB_SSH_KEY=$LAB_DIR/ssh/id_ed25519
  LAB_SSH_PUBKEY=$LAB_DIR/ssh/id_ed25519.pub
  LAB_KNOWN_HOSTS=$LAB_DIR/ssh/known_hosts
  LAB_SSH_CONFIG=$LAB_DIR/ssh/config
  LAB_SSH_OPTS="-F /dev/null -i $LAB_SSH_KEY -o IdentitiesOnly=yes -o UserKnownHostsFile=$LAB_KNOWN_HOSTS -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR"
  LAB_SRC_POOL=hzsrc$LAB_ID
  LAB_TGT_POOL=hztgt$LAB_ID
  LAB_TGT_ROOT=$LAB_TGT_POOL/backup
  LAB_MNT=$LAB_DIR/mnt
  LAB_SRC_MNT=$LAB_MNT/$LAB_SRC_POOL
  LAB_TGT_MNT=$LAB_MNT/$LAB_TGT_POOL
  LAB_POOL_SIZE=${LAB_POOL_SIZE:-256M}
  LAB_BOX_DIR=$LAB_DIR/box
  LAB_RELAY_DIR=$LAB_DIR/relay
  LAB_EVENTS=$LAB_BOX_DIR/events.jsonl
  LAB_BOX_STATE_FILE=$LAB_BOX_DIR/state
  LAB_POWER_FIFO=$LAB_BOX_DIR/power.fifo
  LAB_SSHD_LOG=$LAB_BOX_DIR/sshd.log
  LAB_POWERSIM_LOG=$LAB_BOX_DIR/powersim.log
  LAB_BOOT_DELAY=${LAB_BOOT_DELAY:-1.0}
  LAB_ORCH_BIN=$LAB_DIR/orch-bin
  LAB_ORCH_PATH=$LAB_ORCH_BIN:$LAB_SYS_PATH
  LAB_WAKEONLAN=$LAB_SRC_DIR/bin/wakeonlan
  LAB_HTTP_ADDR=127.0.0.1
  LAB_HTTP_PORT=${LAB_HTTP_PORT:-8080}
  LAB_HTTP_URL=http://$LAB_HTTP_ADDR:$LAB_HTTP_PORT
  LAB_HTTP_LOG=$LAB_DIR/http/requests.jsonl
  LAB_HTTP_STATUS_FILE=$LAB_DIR/http/status
  LAB_SMTP_ADDR=127.0.0.1
  LAB_SMTP_PORT=${LAB_SMTP_PORT:-2525}
  LAB_MAILDIR=$LAB_DIR/mail
  LAB_EVENTS_MARK=${LAB_EVENTS_MARK:-0}
  LAB_POOL_DIR=$LAB_DIR/pools
  # backupd on the box (LAB_BACKUPD=1): started at every simulated boot, like a systemd unit
  LAB_BACKUPD=${LAB_BACKUPD:-0}
  LAB_BACKUPD_BIN=${LAB_BACKUPD_BIN:-${BACKUPD_BIN:-}}
  LAB_BACKUPD_PORT=${LAB_BACKUPD_PORT:-9999}
  LAB_BACKUPD_URL=http://$LAB_BOX_IP:$LAB_BACKUPD_PORT
  LAB_BACKUPD_DIR=$LAB_BOX_DIR/backupd
  LAB_BACKUPD_CONFIG=$LAB_BACKUPD_DIR/backupd.yaml
  LAB_BACKUPD_TOKEN_FILE=$LAB_BACKUPD_DIR/token
  LAB_BACKUPD_LOG=$LAB_BACKUPD_DIR/backupd.log
  # a backup disk on the box (LAB_DISK=1): a real loop device; only its power state is simulated
  LAB_DISK=${LAB_DISK:-0}
  LAB_DISK_IMG=$LAB_DIR/disk.img
  LAB_DISK_DIR=$LAB_BOX_DIR/disk
  # the syncoid release the orchestrator runs (2.1.0 = Debian 12's /usr/sbin/syncoid; 2.2.0 and
  # 2.3.0 from tests/syncoid-versions.sh, first in the orchestrator's PATH)
  LAB_SYNCOID=${LAB_SYNCOID:-2.1.0}
  export LAB_SYNCOID LAB_ID LAB_DIR LAB_NET_OCTET LAB_SUBNET LAB_BROADCAST LAB_ORCH_IP LAB_BOX_IP LAB_RELAY_IP \
    LAB_BOX_MAC LAB_NS_ORCH LAB_NS_BOX LAB_NS_RELAY LAB_RELAY LAB_SSH_USER LAB_SSH_PORT \
    LAB_RELAY_SSH_PORT LAB_SSH_KEY LAB_SSH_PUBKEY LAB_KNOWN_HOSTS LAB_SSH_CONFIG LAB_SSH_OPTS \
    LAB_SRC_POOL LAB_TGT_POOL LAB_TGT_ROOT LAB_MNT LAB_SRC_MNT LAB_TGT_MNT LAB_POOL_SIZE \
    LAB_BOX_DIR LAB_RELAY_DIR LAB_EVENTS LAB_BOX_STATE_FILE LAB_POWER_FIFO LAB_SSHD_LOG \
    LAB_POWERSIM_LOG LAB_BOOT_DELAY LAB_ORCH_BIN LAB_ORCH_PATH LAB_WAKEONLAN LAB_HTTP_ADDR \
    LAB_HTTP_PORT LAB_HTTP_URL LAB_HTTP_LOG LAB_HTTP_STATUS_FILE LAB_SMTP_ADDR LAB_SMTP_PORT \
    LAB_MAILDIR LAB_SRC_DIR LAB_POOL_DIR LAB_BACKUPD LAB_BACKUPD_BIN LAB_BACKUPD_PORT LAB_BACKUPD_URL \
    LAB_BACKUPD_DIR LAB_BACKUPD_CONFIG LAB_BACKUPD_TOKEN_FILE LAB_BACKUPD_LOG LAB_DISK LAB_DISK_IMG LAB_DISK_DIR
}

_LAB_ENV_VARS=(LAB_ID LAB_DIR LAB_SRC_DIR LAB_SUBNET LAB_BROADCAST LAB_ORCH_IP LAB_BOX_IP LAB_RELAY_IP
  LAB_BOX_MAC LAB_NS_ORCH LAB_NS_BOX LAB_NS_RELAY LAB_RELAY LAB_SSH_USER LAB_SSH_PORT LAB_RELAY_SSH_PORT
  LAB_SSH_KEY LAB_SSH_PUBKEY LAB_KNOWN_HOSTS LAB_SSH_CONFIG LAB_SSH_OPTS LAB_SRC_POOL LAB_TGT_POOL
  LAB_TGT_ROOT LAB_MNT LAB_SRC_MNT LAB_TGT_MNT LAB_BOX_DIR LAB_RELAY_DIR LAB_EVENTS LAB_BOX_STATE_FILE
  LAB_POWER_FIFO LAB_SSHD_LOG LAB_POWERSIM_LOG LAB_BOOT_DELAY LAB_ORCH_BIN LAB_ORCH_PATH LAB_WAKEONLAN
  LAB_HTTP_ADDR LAB_HTTP_PORT LAB_HTTP_URL LAB_HTTP_LOG LAB_HTTP_STATUS_FILE LAB_SMTP_ADDR
  LAB_SMTP_PORT LAB_MAILDIR LAB_POOL_DIR LAB_BACKUPD LAB_BACKUPD_BIN LAB_BACKUPD_PORT LAB_BACKUPD_URL
  LAB_BACKUPD_DIR LAB_BACKUPD_CONFIG LAB_BACKUPD_TOKEN_FILE LAB_BACKUPD_LOG LAB_DISK LAB_DISK_IMG LAB_DISK_DIR LAB_SYNCOID)

# Prints `export NAME=value` lines (shell-quoted) for every lab variable: eval "$(lab_env)".
lab_env() {
  _lab_vars || return
  local v
  for v in "${_LAB_ENV_VARS[@]}"; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

# ---------------------------------------------------------------------------------------------
# prerequisites
# ---------------------------------------------------------------------------------------------
_lab_skip() {
  echo "SKIP: lab unavailable: $*" >&2
  exit 77
}

# Exits 77 (CTest skip) with a reason when the lab cannot run here.
lab_require() {
  _lab_vars || exit 2
  [[ $(id -u) -eq 0 ]] || _lab_skip "needs root (network namespaces, mounts, zfs-fuse)"
  command -v ip >/dev/null || _lab_skip "iproute2 'ip' not installed"
  ip netns list >/dev/null 2>&1 || _lab_skip "'ip netns' not usable"
  local probe=hzo-probe-$LAB_ID
  if ! ip netns add "$probe" 2>/dev/null; then
    _lab_skip "cannot create network namespaces (ip netns add failed)"
  fi
  ip netns del "$probe" 2>/dev/null
  [[ -c /dev/fuse ]] || _lab_skip "/dev/fuse missing (zfs-fuse needs FUSE)"
  [[ -x /usr/sbin/zfs-fuse ]] || _lab_skip "zfs-fuse not installed (apt-get install zfs-fuse)"
  [[ -x /usr/sbin/zpool && -x /usr/sbin/zfs ]] || _lab_skip "zpool/zfs (zfs-fuse) not installed"
  [[ -x /usr/sbin/sshd ]] || _lab_skip "OpenSSH server not installed (openssh-server)"
  command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || _lab_skip "openssh-client missing"
  [[ -x /usr/sbin/syncoid ]] || _lab_skip "syncoid not installed (Debian package sanoid)"
  if [[ $LAB_SYNCOID != 2.1.0 ]]; then
    "$LAB_SRC_DIR/../syncoid-versions.sh" --path "$LAB_SYNCOID" >/dev/null ||
      _lab_skip "syncoid $LAB_SYNCOID not fetched (tests/syncoid-versions.sh, run by tests/install-deps.sh)"
  fi
  [[ -x $LAB_PY ]] || _lab_skip "$LAB_PY missing"
  command -v unshare >/dev/null || _lab_skip "unshare (util-linux) missing"
  if ! unshare --pid --fork --mount-proc --mount true 2>/dev/null; then
    _lab_skip "cannot create pid/mount namespaces (unshare failed)"
  fi
  if [[ $LAB_BACKUPD == 1 && ! -x $LAB_BACKUPD_BIN ]]; then
    _lab_skip "LAB_BACKUPD=1 needs the backupd binary (BACKUPD_BIN=${LAB_BACKUPD_BIN:-unset})"
  fi
  if [[ $LAB_DISK == 1 ]]; then
    command -v losetup >/dev/null || _lab_skip "LAB_DISK=1 needs losetup (util-linux)"
    losetup -f >/dev/null 2>&1 || _lab_skip "LAB_DISK=1 needs a free loop device (losetup -f failed)"
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------
# zfs-fuse daemon
# ---------------------------------------------------------------------------------------------
_lab_zfs_answers() { timeout 5 /usr/sbin/zpool list -H >/dev/null 2>&1; }

_lab_zfs_start() {
  exec 8>/run/lock/hozo-lab-zfs-fuse.lock
  flock 8
  if pgrep -x zfs-fuse >/dev/null && _lab_zfs_answers; then
    flock -u 8
    exec 8>&-
    return 0
  fi
  if ! pgrep -x zfs-fuse >/dev/null; then
    _lab_log "starting zfs-fuse"
    mkdir -p /var/run/zfs /var/lock/zfs
    # A pid file left by a daemon that was killed (a session ending, kill -9) makes zfs-fuse exit 1
    # without a word; no zfs-fuse runs, so it is stale.
    rm -f /run/hozo-lab-zfs-fuse.pid
    # pid file and log outside the lab dir: the daemon may outlive this lab (other pools in it)
    if ! setsid /usr/sbin/zfs-fuse --pidfile /run/hozo-lab-zfs-fuse.pid </dev/null >>/run/hozo-lab-zfs-fuse.log 2>&1 8>&-; then
      _lab_log "zfs-fuse did not start; the end of /run/hozo-lab-zfs-fuse.log:"
      tail -n 20 /run/hozo-lab-zfs-fuse.log >&2
      flock -u 8
      exec 8>&-
      return 1
    fi
    echo started >"$LAB_DIR/zfs-fuse.started"
  fi
  local i
  for ((i = 0; i < 150; i++)); do
    _lab_zfs_answers && break
    sleep 0.1
  done
  flock -u 8
  exec 8>&-
  _lab_zfs_answers || {
    _lab_log "zfs-fuse does not answer"
    return 1
  }
}

_lab_zfs_stop_if_ours() {
  [[ -f $LAB_DIR/zfs-fuse.started ]] || return 0
  exec 8>/run/lock/hozo-lab-zfs-fuse.lock
  flock 8
  if [[ -z $(/usr/sbin/zpool list -H -o name 2>/dev/null) ]]; then
    local pid
    pid=$(cat /run/hozo-lab-zfs-fuse.pid 2>/dev/null)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      _lab_log "stopping zfs-fuse (pid $pid, started by this lab)"
      kill "$pid" 2>/dev/null
      local i
      for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
      rm -f /run/hozo-lab-zfs-fuse.pid
    fi
  else
    _lab_log "leaving zfs-fuse running: other pools exist"
  fi
  rm -f "$LAB_DIR/zfs-fuse.started"
  flock -u 8
  exec 8>&-
}

# ---------------------------------------------------------------------------------------------
# up: the steps run in a child bash with `set -e`, so any failure stops them; lab_up then tears
# down whatever was created.
# ---------------------------------------------------------------------------------------------
_lab_up_net() {
  local o=$LAB_NS_ORCH b=$LAB_NS_BOX r=$LAB_NS_RELAY
  ip netns add "$o"
  ip netns add "$b"
  ip -n "$o" link set lo up
  ip -n "$b" link set lo up
  # The box's LAN is a bridge (br0) carrying the box's IP and its fixed MAC; the orchestrator's veth
  # (and the relay's, when enabled) are ports of it. Interfaces are created inside the namespaces:
  # nothing ever appears in the root namespace.
  ip -n "$b" link add name br0 type bridge stp_state 0 forward_delay 0
  ip -n "$b" link set br0 address "$LAB_BOX_MAC"
  ip -n "$o" link add name eth0 type veth peer name p-orch netns "$b"
  ip -n "$b" link set p-orch master br0
  ip -n "$o" addr add "$LAB_ORCH_IP/24" dev eth0
  ip -n "$b" addr add "$LAB_BOX_IP/24" dev br0
  ip -n "$o" link set eth0 up
  ip -n "$b" link set p-orch up
  ip -n "$b" link set br0 up
  # No default route anywhere. The limited broadcast (255.255.255.255) gets a host route onto the
  # veth so an unbound WOL sender works as on a real LAN; without it Linux answers ENETUNREACH.
  ip -n "$o" route add 255.255.255.255/32 dev eth0
  if [[ $LAB_RELAY == 1 ]]; then
    ip netns add "$r"
    ip -n "$r" link set lo up
    ip -n "$r" link add name eth0 type veth peer name p-relay netns "$b"
    ip -n "$b" link set p-relay master br0
    ip -n "$r" addr add "$LAB_RELAY_IP/24" dev eth0
    ip -n "$r" link set eth0 up
    ip -n "$b" link set p-relay up
    ip -n "$r" route add 255.255.255.255/32 dev eth0
  fi
}

_lab_up_keys() {
  mkdir -p "$LAB_DIR/ssh"
  chmod 700 "$LAB_DIR/ssh"
  ssh-keygen -q -t ed25519 -N '' -C "hozo-lab-client-$LAB_ID" -f "$LAB_SSH_KEY"
  ssh-keygen -q -t ed25519 -N '' -C "hozo-lab-box-$LAB_ID" -f "$LAB_BOX_DIR/ssh_host_ed25519_key"
  cp "$LAB_SSH_PUBKEY" "$LAB_BOX_DIR/authorized_keys"
  _lab_kh_entry "$LAB_BOX_IP" "$LAB_SSH_PORT" "$LAB_BOX_DIR/ssh_host_ed25519_key.pub" >"$LAB_KNOWN_HOSTS"
  if [[ $LAB_RELAY == 1 ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "hozo-lab-relay-$LAB_ID" -f "$LAB_RELAY_DIR/ssh_host_ed25519_key"
    cp "$LAB_SSH_PUBKEY" "$LAB_RELAY_DIR/authorized_keys"
    _lab_kh_entry "$LAB_RELAY_IP" "$LAB_RELAY_SSH_PORT" "$LAB_RELAY_DIR/ssh_host_ed25519_key.pub" >>"$LAB_KNOWN_HOSTS"
  fi
  cat >"$LAB_SSH_CONFIG" <<EOF
# ssh -F $LAB_SSH_CONFIG box|relay   (run inside $LAB_NS_ORCH)
Host box
  HostName $LAB_BOX_IP
  Port $LAB_SSH_PORT
Host relay
  HostName $LAB_RELAY_IP
  Port $LAB_RELAY_SSH_PORT
Host *
  User root
  IdentityFile $LAB_SSH_KEY
  IdentitiesOnly yes
  UserKnownHostsFile $LAB_KNOWN_HOSTS
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
EOF
}

_lab_kh_entry() { # IP PORT PUBKEYFILE
  local host=$1
  [[ $2 != 22 ]] && host="[$1]:$2"
  printf '%s %s\n' "$host" "$(cut -d' ' -f1-2 "$3")"
}

_lab_up_pools() {
  mkdir -p "$LAB_DIR/pools" "$LAB_MNT"
  # A shared bind mount: mounts zfs-fuse makes below it (e.g. datasets created by `zfs receive`
  # while the box is on) propagate into the box's private mount namespace too.
  mount --bind "$LAB_MNT" "$LAB_MNT"
  mount --make-shared "$LAB_MNT"
  truncate -s "$LAB_POOL_SIZE" "$LAB_DIR/pools/src.img" "$LAB_DIR/pools/tgt.img"
  zpool create -f -m "$LAB_SRC_MNT" "$LAB_SRC_POOL" "$LAB_DIR/pools/src.img" 2>&1 | grep -v '^Defaulting to' >&2 || true
  zpool create -f -m "$LAB_TGT_MNT" "$LAB_TGT_POOL" "$LAB_DIR/pools/tgt.img" 2>&1 | grep -v '^Defaulting to' >&2 || true
  zpool list -H "$LAB_SRC_POOL" "$LAB_TGT_POOL" >/dev/null
  local s=$LAB_SRC_POOL
  zfs create "$s/data"
  zfs create "$s/data/child"
  zfs create "$s/other"
  zfs create "$LAB_TGT_ROOT"
  local m=$LAB_SRC_MNT
  printf 'hello from the lab source pool %s\n' "$LAB_ID" >"$m/data/hello.txt"
  printf 'a file with spaces\n' >"$m/data/name with spaces.txt"
  mkdir -p "$m/data/dir/sub"
  seq 1 20000 >"$m/data/dir/sub/numbers.txt"
  head -c 1048576 /dev/urandom >"$m/data/random.bin"
  ln -s hello.txt "$m/data/link-to-hello"
  printf 'child dataset\n' >"$m/data/child/child.txt"
  head -c 262144 /dev/urandom >"$m/data/child/blob.bin"
  printf 'other dataset\n' >"$m/other/other.txt"
  sync
  zfs snapshot -r "$s@lab-initial"
}

_lab_up_box_fs() {
  local d=$LAB_BOX_DIR c
  mkdir -p "$d/usr-local/sbin" "$d/usr-local/bin" "$d/home" "$LAB_ORCH_BIN"
  chmod 700 "$d/home"
  # orchestrator: the zfs compat wrapper first in PATH (LAB_ORCH_PATH)
  _lab_zfs_shim "$LAB_DIR/orch-zfs-calls.log" >"$LAB_ORCH_BIN/zfs"
  if [[ $LAB_SYNCOID != 2.1.0 ]]; then
    ln -sf "$("$LAB_SRC_DIR/../syncoid-versions.sh" --path "$LAB_SYNCOID")" "$LAB_ORCH_BIN/syncoid"
  fi
  # box: /usr/local (first in sshd's default PATH) is replaced by this directory, in the box's
  # mount namespace only: the zfs wrapper and the fake power commands.
  _lab_zfs_shim "$d/zfs-calls.log" >"$d/usr-local/sbin/zfs"
  chmod 755 "$LAB_ORCH_BIN/zfs" "$d/usr-local/sbin/zfs"
  cat >"$d/power-cmd" <<EOF
#!/bin/sh
# hozo lab: fake power command of box $LAB_ID (bind-mounted in the box's mount namespace only)
HOZO_LAB_POWER_FIFO='$LAB_POWER_FIFO' HOZO_LAB_POWER_AS="\${0##*/}" exec /bin/bash '$LAB_SRC_DIR/bin/box-power' "\$@"
EOF
  chmod 755 "$d/power-cmd"
  for c in shutdown poweroff halt reboot systemctl; do ln -sf "$d/power-cmd" "$d/usr-local/sbin/$c"; done
  printf '# hozo lab box %s: root'"'"'s home on the simulated box\n' "$LAB_ID" >"$d/home/.bashrc"
  cp "$d/home/.bashrc" "$d/home/.profile"
  cat >"$d/sshd_config" <<EOF
# hozo lab box $LAB_ID (never the machine's /etc/ssh)
ListenAddress $LAB_BOX_IP:$LAB_SSH_PORT
HostKey $d/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
MaxSessions 64
MaxStartups 64:30:128
LogLevel VERBOSE
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
  mkdir -p /run/sshd # sshd's privilege-separation directory (Debian creates it at service start)
  /usr/sbin/sshd -t -f "$d/sshd_config"
  local services=""
  if [[ $LAB_BACKUPD == 1 ]]; then
    _lab_up_backupd
    services=$(printf "'%s' --config '%s' -v >>'%s' 2>&1 </dev/null &" "$LAB_BACKUPD_BIN" "$LAB_BACKUPD_CONFIG" "$LAB_BACKUPD_LOG")
  fi
  [[ $LAB_DISK == 1 ]] && _lab_up_disk
  _lab_write_boot_script "$d" "$d/sshd_config" "$services" >"$d/boot.sh"
}

# backupd on the box (LAB_BACKUPD=1): config, token, the zpool export shim and its host helper.
#
# Lab fixture: the box shares the host's single zfs-fuse daemon and its mounts are slave copies of
# the host's, so a `zpool export` run inside the box's mount namespace finds the pool "busy" (the
# host's copy of the FUSE mount stays). On a real box ZFS is local. The box's /usr/local/sbin
# therefore has a `zpool` shim: `zpool export POOL` (this lab's target pool only) is handed to a
# helper loop in the host namespace, whose unmount propagates to the box; every other zpool
# command runs unchanged.
_lab_up_backupd() {
  local b=$LAB_BACKUPD_DIR
  mkdir -p "$b"
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$LAB_BACKUPD_TOKEN_FILE")
  cat >"$LAB_BACKUPD_CONFIG" <<EOF
# hozo lab box $LAB_ID: backupd, started at every simulated boot
listen: $LAB_BOX_IP:$LAB_BACKUPD_PORT
token_file: $LAB_BACKUPD_TOKEN_FILE
export_pools: [$LAB_TGT_POOL]
shutdown_command: ["shutdown", "-h", "now"]
shutdown_delay: 1s
spinup_timeout: 20s
EOF
  "$LAB_BACKUPD_BIN" --config "$LAB_BACKUPD_CONFIG" --check >&2
  mkfifo "$b/export.fifo"
  cat >"$LAB_BOX_DIR/usr-local/sbin/zpool" <<EOF
#!/bin/sh
# hozo lab: zpool export is done by the host-side helper (see _lab_up_backupd in lab.sh)
if [ "\$1" = export ]; then
  shift
  rm -f '$b/export.rc'
  printf '%s\n' "\$*" >'$b/export.fifo'
  i=0
  while [ ! -s '$b/export.rc' ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i + 1)); done
  cat '$b/export.out' >&2 2>/dev/null
  exit "\$(cat '$b/export.rc' 2>/dev/null || echo 1)"
fi
exec /usr/sbin/zpool "\$@"
EOF
  chmod 755 "$LAB_BOX_DIR/usr-local/sbin/zpool"
  cat >"$b/export-helper.sh" <<EOF
#!/bin/bash
# hozo lab: exports this lab's target pool for the box (host namespace)
while [[ -p '$b/export.fifo' ]]; do
  read -r args <'$b/export.fifo' || continue
  if [[ \$args == '$LAB_TGT_POOL' || \$args == '-f $LAB_TGT_POOL' ]]; then
    /usr/sbin/zpool export \$args >'$b/export.out' 2>&1
    echo \$? >'$b/export.rc.tmp'
  else
    echo "lab: refused: zpool export \$args" >'$b/export.out'
    echo 2 >'$b/export.rc.tmp'
  fi
  mv '$b/export.rc.tmp' '$b/export.rc'
done
EOF
  setsid /bin/bash "$b/export-helper.sh" </dev/null >>"$b/export-helper.log" 2>&1 &
  echo $! >"$b/export-helper.pid"
}

# The backup disk (LAB_DISK=1): a real loop device (its reads are real, O_DIRECT included), and an
# `hdparm` on the box that simulates the drive's power state: "standby" after lab_disk_standby
# until a read reaches the device (the read counter in /sys/block/loopN/stat grows), or for good
# after `lab_disk_stuck on`.
_lab_up_disk() {
  mkdir -p "$LAB_DISK_DIR"
  truncate -s 64M "$LAB_DISK_IMG"
  losetup -f --show "$LAB_DISK_IMG" >"$LAB_DIR/disk.dev"
  cat >"$LAB_BOX_DIR/usr-local/sbin/hdparm" <<EOF
#!/bin/sh
# hozo lab: simulated drive power state of the lab's backup disk (see _lab_up_disk in lab.sh)
[ "\$1" = -C ] && [ -n "\$2" ] || { echo "hdparm (hozo lab): only -C DEVICE is simulated" >&2; exit 2; }
real=\$(readlink -f "\$2")
if [ ! -b "\$real" ]; then echo "\$2: No such file or directory" >&2; exit 2; fi
if [ "\$real" != "\$(cat '$LAB_DIR/disk.dev')" ]; then
  printf '\n%s:\n drive state is:  unknown\n' "\$2"; exit 0
fi
state=active/idle
if [ -f '$LAB_DISK_DIR/standby' ]; then
  reads=\$(awk '{print \$1}' "/sys/block/\${real##*/}/stat")
  if [ -f '$LAB_DISK_DIR/stuck' ] || [ "\$reads" = "\$(cat '$LAB_DISK_DIR/standby')" ]; then
    state=standby
  else
    rm -f '$LAB_DISK_DIR/standby'
  fi
fi
printf '\n%s:\n drive state is:  %s\n' "\$2" "\$state"
EOF
  chmod 755 "$LAB_BOX_DIR/usr-local/sbin/hdparm"
}

# The lab disk's device node (/dev/loopN); empty without LAB_DISK=1.
lab_disk_dev() { cat "$LAB_DIR/disk.dev" 2>/dev/null; }
# Reads completed by the lab disk since boot of the machine.
lab_disk_reads() { local d; d=$(lab_disk_dev) && awk '{print $1}' "/sys/block/${d##*/}/stat"; }
# Puts the lab disk to sleep: standby until the next read reaches it.
lab_disk_standby() { lab_disk_reads >"$LAB_DISK_DIR/standby"; }
# lab_disk_stuck on|off: a disk that never spins up (stays in standby whatever is read).
lab_disk_stuck() {
  if [[ $1 == on ]]; then
    lab_disk_standby
    : >"$LAB_DISK_DIR/stuck"
  else
    rm -f "$LAB_DISK_DIR/stuck"
  fi
}
# The lab disk's simulated state as the box's hdparm reports it: active/idle or standby.
lab_disk_state() { lab_exec_box hdparm -C "$(lab_disk_dev)" 2>&1 | sed -n 's/.*drive state is: *//p'; }

# A per-side `zfs` that logs every call (one line: time and arguments) and runs the compat wrapper.
# One bash that reads the wrapper (no sh in front of it): each zfs call of hozo and syncoid pays for
# one interpreter start, as close as a fixture gets to the real binary's cost.
_lab_zfs_shim() { # TRACEFILE
  printf '#!/bin/bash\n# hozo lab: zfs compat wrapper (tests/lab/bin/zfs), calls logged to %s\n' "$1"
  printf 'HOZO_LAB_ZFS_TRACE=%q\n. %q "$@"\n' "$1" "$LAB_SRC_DIR/bin/zfs"
}

# The script that runs inside a fresh pid+mount namespace and becomes the box's (or relay's) sshd.
# EXTRA (optional) is a line run just before sshd starts (the box's "services", backgrounded).
_lab_write_boot_script() { # DIR SSHD_CONFIG [EXTRA]
  cat <<EOF
#!/bin/sh
# hozo lab: runs inside a private pid + mount namespace (unshare); mounts here never reach the host.
set -e
mount --bind '$1/usr-local' /usr/local
mount --bind '$1/home' /root
if [ -x '$1/power-cmd' ]; then
  # /usr/sbin/{shutdown,poweroff,halt,reboot} are symlinks to systemctl on Debian: cover the
  # resolved files so even absolute paths reach the simulator, never the machine's init.
  done_list=""
  for p in /usr/sbin/shutdown /usr/sbin/poweroff /usr/sbin/halt /usr/sbin/reboot /usr/bin/systemctl /usr/sbin/telinit; do
    [ -e "\$p" ] || continue
    t=\$(readlink -f "\$p")
    case " \$done_list " in *" \$t "*) continue ;; esac
    mount --bind '$1/power-cmd' "\$t"
    done_list="\$done_list \$t"
  done
fi
cd /
${3:-}
exec /usr/sbin/sshd -D -e -f '$2'
EOF
}

_lab_up_relay() {
  local d=$LAB_RELAY_DIR
  mkdir -p "$d/usr-local/sbin" "$d/usr-local/bin" "$d/home"
  chmod 700 "$d/home"
  ln -sf "$LAB_SRC_DIR/bin/wakeonlan" "$d/usr-local/bin/wakeonlan"
  printf '# hozo lab relay %s\n' "$LAB_ID" >"$d/home/.bashrc"
  cat >"$d/sshd_config" <<EOF
# hozo lab WOL relay $LAB_ID
ListenAddress $LAB_RELAY_IP:$LAB_RELAY_SSH_PORT
HostKey $d/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
UseDNS no
LogLevel VERBOSE
EOF
  /usr/sbin/sshd -t -f "$d/sshd_config"
  _lab_write_boot_script "$d" "$d/sshd_config" >"$d/boot.sh"
  ip netns exec "$LAB_NS_RELAY" env -i PATH="$LAB_SYS_PATH" LANG=C.UTF-8 \
    setsid unshare --pid --fork --kill-child=SIGKILL --mount-proc --mount --propagation slave \
    -- /bin/sh "$d/boot.sh" </dev/null >>"$d/sshd.log" 2>&1 &
  echo $! >"$d/unshare.pid"
  lab_wait_port "$LAB_RELAY_IP" "$LAB_RELAY_SSH_PORT" 15
}

_lab_up_steps() {
  mkdir -p "$LAB_BOX_DIR" "$LAB_DIR/http" "$LAB_MAILDIR"
  [[ $LAB_RELAY == 1 ]] && mkdir -p "$LAB_RELAY_DIR"
  _lab_zfs_start
  _lab_up_net
  _lab_up_keys
  _lab_up_pools
  _lab_up_box_fs
  [[ $LAB_RELAY == 1 ]] && _lab_up_relay
  lab_env >"$LAB_DIR/env"
  lab_powersim_start ${LAB_POWERSIM_ARGS:-}
}

# Brings the lab up (after cleaning leftovers of the same LAB_ID). Returns non-zero, with
# everything torn down again, on failure.
lab_up() {
  _lab_vars || return
  if [[ -e $LAB_DIR ]] || ip netns list 2>/dev/null | grep -q -- "-$LAB_ID\b"; then
    _lab_log "cleaning leftovers of a previous lab $LAB_ID"
    lab_down
  fi
  mkdir -m 700 "$LAB_DIR" || return
  echo $$ >"$LAB_DIR/owner"
  local t0=$SECONDS
  if ! "$BASH" -c 'set -eEuo pipefail; trap '\''echo "lab: step failed: $BASH_COMMAND" >&2'\'' ERR; source "$1"; _lab_vars; _lab_up_steps' \
    _ "$LAB_SRC_DIR/lab.sh"; then
    _lab_log "lab_up failed; tearing down"
    LAB_KEEP=${LAB_KEEP_ON_FAILURE:-0} lab_down
    return 1
  fi
  _lab_log "up in $((SECONDS - t0))s: orch $LAB_ORCH_IP ($LAB_NS_ORCH), box $LAB_BOX_IP/$LAB_BOX_MAC ($LAB_NS_BOX), pools $LAB_SRC_POOL $LAB_TGT_POOL, dir $LAB_DIR"
}

# ---------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------
_lab_kill_ns_pids() { # NS SIGNAL
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null) || return 0
  [[ -n $pids ]] && kill "-$2" $pids 2>/dev/null
  return 0
}

# Tears everything down: processes, namespaces (and their veths), pools, mounts, the lab dir
# (kept when LAB_KEEP=1). Safe to call repeatedly and after partial failures.
lab_down() {
  _lab_vars || return
  local ns i
  lab_stop_receivers 2>/dev/null
  lab_powersim_stop 2>/dev/null
  if [[ -f $LAB_BACKUPD_DIR/export-helper.pid ]]; then
    rm -f "$LAB_BACKUPD_DIR/export.fifo"
    kill "$(cat "$LAB_BACKUPD_DIR/export-helper.pid")" 2>/dev/null
    rm -f "$LAB_BACKUPD_DIR/export-helper.pid"
  fi
  for ns in "$LAB_NS_ORCH" "$LAB_NS_BOX" "$LAB_NS_RELAY"; do
    ip netns list 2>/dev/null | grep -qw -- "$ns" || continue
    _lab_kill_ns_pids "$ns" TERM
  done
  for ((i = 0; i < 30; i++)); do
    local left=""
    for ns in "$LAB_NS_ORCH" "$LAB_NS_BOX" "$LAB_NS_RELAY"; do
      left+=$(ip netns pids "$ns" 2>/dev/null)
    done
    [[ -z $left ]] && break
    ((i == 10)) && for ns in "$LAB_NS_ORCH" "$LAB_NS_BOX" "$LAB_NS_RELAY"; do _lab_kill_ns_pids "$ns" KILL; done
    sleep 0.1
  done
  for ns in "$LAB_NS_ORCH" "$LAB_NS_BOX" "$LAB_NS_RELAY"; do
    ip netns list 2>/dev/null | grep -qw -- "$ns" && ip netns del "$ns" 2>/dev/null
  done
  # a target pool that backupd exported: import it again so that it is destroyed below
  if [[ -e $LAB_POOL_DIR/tgt.img ]] && ! /usr/sbin/zpool list -H -o name "$LAB_TGT_POOL" >/dev/null 2>&1; then
    /usr/sbin/zpool import -d "$LAB_POOL_DIR" "$LAB_TGT_POOL" >/dev/null 2>&1
  fi
  local pool
  for pool in "$LAB_SRC_POOL" "$LAB_TGT_POOL"; do
    /usr/sbin/zpool list -H -o name "$pool" >/dev/null 2>&1 || continue
    for ((i = 0; i < 20; i++)); do
      /usr/sbin/zpool destroy -f "$pool" 2>/dev/null && break
      sleep 0.25
    done
    /usr/sbin/zpool list -H -o name "$pool" >/dev/null 2>&1 && _lab_log "WARNING: could not destroy pool $pool"
  done
  if [[ -d $LAB_MNT ]]; then
    # leftover zfs mounts (normally gone with the pools), then the shared bind mount itself
    local mp
    while read -r mp; do umount -l "$mp" 2>/dev/null; done < <(awk -v p="$LAB_MNT" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r)
  fi
  if [[ -s $LAB_DIR/disk.dev ]]; then
    losetup -d "$(cat "$LAB_DIR/disk.dev")" 2>/dev/null
    rm -f "$LAB_DIR/disk.dev"
  fi
  [[ -d $LAB_DIR ]] && _lab_zfs_stop_if_ours
  if [[ ${LAB_KEEP:-0} == 1 ]]; then
    _lab_log "kept $LAB_DIR (LAB_KEEP=1)"
  else
    [[ -d $LAB_DIR ]] && rm -rf --one-file-system "$LAB_DIR"
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------
# running things in the namespaces
# ---------------------------------------------------------------------------------------------
# Runs CMD in the orchestrator namespace with the lab PATH (zfs compat wrapper first).
lab_exec_orch() { ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" "$@"; }
# Runs CMD in the box's network namespace (host mount namespace; box PATH with the box's fakes).
lab_exec_box() { ip netns exec "$LAB_NS_BOX" env PATH="$LAB_BOX_DIR/usr-local/sbin:$LAB_SYS_PATH" "$@"; }
lab_exec_relay() { ip netns exec "$LAB_NS_RELAY" env PATH="$LAB_RELAY_DIR/usr-local/bin:$LAB_SYS_PATH" "$@"; }

# ssh to the box (from the orchestrator namespace) with the lab key and known_hosts.
lab_ssh() {
  # shellcheck disable=SC2086
  lab_exec_orch ssh $LAB_SSH_OPTS -p "$LAB_SSH_PORT" "$LAB_SSH_USER@$LAB_BOX_IP" "$@"
}
lab_ssh_relay() {
  # shellcheck disable=SC2086
  lab_exec_orch ssh $LAB_SSH_OPTS -p "$LAB_RELAY_SSH_PORT" "$LAB_SSH_USER@$LAB_RELAY_IP" "$@"
}

# True when IP:PORT accepts TCP connections, tested from the orchestrator namespace.
lab_port_open() { # IP PORT
  ip netns exec "$LAB_NS_ORCH" timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}
lab_wait_port() { # IP PORT [TIMEOUT]
  local end=$((SECONDS + ${3:-10}))
  until lab_port_open "$1" "$2"; do
    ((SECONDS >= end)) && return 1
    sleep 0.1
  done
}
lab_wait_port_closed() { # IP PORT [TIMEOUT]
  local end=$((SECONDS + ${3:-10}))
  while lab_port_open "$1" "$2"; do
    ((SECONDS >= end)) && return 1
    sleep 0.1
  done
}

# Sends a magic packet for the box from the orchestrator namespace (default 255.255.255.255:9).
# Extra args go to bin/wakeonlan (-i IP, -p PORT, --password HEX, --count N, --raw-hex HEX).
lab_wake() { lab_exec_orch "$LAB_PY" "$LAB_WAKEONLAN" -q "$@" "$LAB_BOX_MAC"; }

# ---------------------------------------------------------------------------------------------
# power simulator
# ---------------------------------------------------------------------------------------------
# Starts the power simulator in the box namespace. ARGS go to powersim.py (--start-on,
# --ignore-first N, --never-boot, --boot-delay S, --password HEX, --poweroff-delay S).
lab_powersim_start() {
  local before
  before=$(lab_count_all_events powersim_started)
  ip netns exec "$LAB_NS_BOX" env -i PATH="$LAB_SYS_PATH" LANG=C.UTF-8 \
    setsid "$LAB_PY" "$LAB_SRC_DIR/powersim.py" \
    --mac "$LAB_BOX_MAC" --events "$LAB_EVENTS" --state-file "$LAB_BOX_STATE_FILE" \
    --control "$LAB_POWER_FIFO" --boot-script "$LAB_BOX_DIR/boot.sh" --sshd-log "$LAB_SSHD_LOG" \
    --ssh-addr "$LAB_BOX_IP" --ssh-port "$LAB_SSH_PORT" --boot-delay "$LAB_BOOT_DELAY" "$@" \
    </dev/null >>"$LAB_POWERSIM_LOG" 2>&1 &
  echo $! >"$LAB_BOX_DIR/powersim.pid"
  local i
  for ((i = 0; i < 100; i++)); do
    (($(lab_count_all_events powersim_started) > before)) && return 0
    kill -0 "$(cat "$LAB_BOX_DIR/powersim.pid")" 2>/dev/null || break
    sleep 0.05
  done
  _lab_log "power simulator did not start:"
  tail -n 20 "$LAB_POWERSIM_LOG" >&2
  return 1
}

# Stops the power simulator (SIGTERM: it kills the box's sshd namespace and exits).
lab_powersim_stop() {
  local pf=$LAB_BOX_DIR/powersim.pid pid i
  [[ -f $pf ]] || return 0
  pid=$(cat "$pf")
  if kill "$pid" 2>/dev/null; then
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pf"
}

# Restarts the simulator with new options; the box is off afterwards (unless --start-on).
lab_powersim_restart() {
  lab_powersim_stop
  lab_powersim_start "$@"
}

# Sends a control command to the simulator: poweroff | halt | reboot | poweron | crash.
lab_box_ctl() { timeout 5 bash -c 'printf "%s\n" "$1" >"$2"' _ "$*" "$LAB_POWER_FIFO"; }

# Prints the box's power state: off | booting | on.
lab_box_state() { cat "$LAB_BOX_STATE_FILE" 2>/dev/null || echo off; }

# Prints the simulator's events (JSON lines).
lab_events() { cat "$LAB_EVENTS" 2>/dev/null; }

# Remembers the current end of the events file: lab_count_events / lab_wait_event only look at
# events after the mark (until lab_mark_events is called again). LAB_EVENTS_MARK=0 = all.
lab_mark_events() { LAB_EVENTS_MARK=$(wc -l 2>/dev/null <"$LAB_EVENTS" || echo 0); }

lab_count_all_events() { # NAME (ignores the mark)
  local n
  n=$(grep -c "\"event\": \"$1\"" "$LAB_EVENTS" 2>/dev/null) || true
  echo "${n:-0}"
}
# Number of events NAME after the mark.
lab_count_events() { # NAME
  tail -n "+$((${LAB_EVENTS_MARK:-0} + 1))" "$LAB_EVENTS" 2>/dev/null | grep -c "\"event\": \"$1\"" || true
}
# Waits until at least COUNT (default 1) events NAME exist after the mark; 1 on timeout.
lab_wait_event() { # NAME [TIMEOUT=20] [COUNT=1]
  local end=$((SECONDS + ${2:-20})) want=${3:-1}
  until (($(lab_count_events "$1") >= want)); do
    if ((SECONDS >= end)); then
      _lab_log "timeout waiting for event $1"
      return 1
    fi
    sleep 0.05
  done
}
# Prints the last event NAME (JSON) after the mark.
lab_last_event() { tail -n "+$((${LAB_EVENTS_MARK:-0} + 1))" "$LAB_EVENTS" 2>/dev/null | grep "\"event\": \"$1\"" | tail -n 1; }

# ---------------------------------------------------------------------------------------------
# notification receivers (orchestrator namespace, its loopback)
# ---------------------------------------------------------------------------------------------
lab_start_receivers() {
  mkdir -p "$LAB_DIR/http" "$LAB_MAILDIR"
  : >>"$LAB_HTTP_LOG"
  ip netns exec "$LAB_NS_ORCH" env -i PATH="$LAB_SYS_PATH" LANG=C.UTF-8 \
    setsid "$LAB_PY" "$LAB_SRC_DIR/http_receiver.py" --listen "$LAB_HTTP_ADDR" --port "$LAB_HTTP_PORT" \
    --log "$LAB_HTTP_LOG" --status-file "$LAB_HTTP_STATUS_FILE" "$@" \
    </dev/null >>"$LAB_DIR/http/receiver.log" 2>&1 &
  echo $! >"$LAB_DIR/http/pid"
  ip netns exec "$LAB_NS_ORCH" env -i PATH="$LAB_SYS_PATH" LANG=C.UTF-8 PYTHONPATH="$LAB_SRC_DIR" \
    setsid "$LAB_PY" -m aiosmtpd -n -l "$LAB_SMTP_ADDR:$LAB_SMTP_PORT" -c smtp_receiver.LabHandler "$LAB_MAILDIR" \
    </dev/null >>"$LAB_DIR/smtp.log" 2>&1 &
  echo $! >"$LAB_DIR/smtp.pid"
  lab_wait_port "$LAB_HTTP_ADDR" "$LAB_HTTP_PORT" 10 || { _lab_log "http receiver did not start"; return 1; }
  lab_wait_port "$LAB_SMTP_ADDR" "$LAB_SMTP_PORT" 10 || { _lab_log "smtp receiver did not start"; cat "$LAB_DIR/smtp.log" >&2; return 1; }
}

lab_stop_receivers() {
  local pf pid i
  for pf in "$LAB_DIR/http/pid" "$LAB_DIR/smtp.pid"; do
    [[ -f $pf ]] || continue
    pid=$(cat "$pf")
    if kill "$pid" 2>/dev/null; then
      for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$pf"
  done
  return 0
}

# Sets the HTTP receiver's response: lab_http_status 500 [DELAY_SECONDS]
# lab_send_estimate on|off: the orchestrator's zfs wrapper answers `zfs send -nvP` (zfs-fuse lacks it)
# with a measured size, so syncoid prints a real estimate "(~ 20.0 MB)" instead of "(~ UNKNOWN)".
lab_send_estimate() {
  if [[ ${1:-on} == on ]]; then : >"$LAB_DIR/send-estimate"; else rm -f "$LAB_DIR/send-estimate"; fi
}
lab_http_status() { echo "$*" >"$LAB_HTTP_STATUS_FILE"; }

# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------
# Prints "relative-path sha256" for every file and symlink under DIR (sorted): compare two trees.
lab_tree_sums() { # DIR
  (cd "$1" && find . -path ./.zfs -prune -o \( -type f -o -type l \) -print0 | LC_ALL=C sort -z |
    while IFS= read -r -d '' f; do
      if [[ -L $f ]]; then printf '%s link:%s\n' "$f" "$(readlink "$f")"; else printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"; fi
    done)
}

# Prints what of this lab exists right now; returns 1 when anything is left.
lab_leftovers() {
  local out=""
  out+=$(ip netns list 2>/dev/null | grep -E -- "^hzo-(orch|box|relay)-$LAB_ID( |$)")
  out+=$(/usr/sbin/zpool list -H -o name 2>/dev/null | grep -E "^(hzsrc|hztgt)$LAB_ID$")
  out+=$(grep -F "$LAB_DIR" /proc/self/mounts)
  out+=$(pgrep -af -- "$LAB_DIR" | grep -v pgrep)
  [[ -e $LAB_DIR && ${LAB_KEEP:-0} != 1 ]] && out+="dir $LAB_DIR"
  [[ -z $out ]] && return 0
  printf '%s\n' "$out"
  return 1
}

lab_status() {
  _lab_vars || return
  echo "lab $LAB_ID  dir $LAB_DIR"
  echo "namespaces: $(ip netns list 2>/dev/null | grep -E -- "-$LAB_ID( |$)" | cut -d' ' -f1 | tr '\n' ' ')"
  echo "pools:      $(/usr/sbin/zpool list -H -o name 2>/dev/null | grep -E "^(hzsrc|hztgt)$LAB_ID$" | tr '\n' ' ')"
  echo "box:        $(lab_box_state) (orch $LAB_ORCH_IP -> box $LAB_BOX_IP:$LAB_SSH_PORT, MAC $LAB_BOX_MAC)"
  [[ $LAB_RELAY == 1 ]] && echo "relay:      $LAB_RELAY_IP:$LAB_RELAY_SSH_PORT"
  echo "processes:"
  pgrep -af -- "$LAB_DIR" | grep -v pgrep | sed 's/^/  /'
  [[ -f $LAB_EVENTS ]] && echo "last events:" && tail -n 5 "$LAB_EVENTS" | sed 's/^/  /'
  return 0
}

# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -uo pipefail
  LAB_ID=${LAB_ID:-cli}
  case ${1:-} in
    up)
      lab_require
      lab_up || exit 1
      echo "lab $LAB_ID is up; variables: LAB_ID=$LAB_ID $0 env; tear down: LAB_ID=$LAB_ID $0 down" >&2
      ;;
    down) lab_down ;;
    status) lab_status ;;
    env)
      _lab_vars
      if [[ -f $LAB_DIR/env ]]; then cat "$LAB_DIR/env"; else lab_env; fi
      ;;
    *)
      echo "usage: [LAB_ID=id] [LAB_RELAY=1] $0 up|down|status|env" >&2
      exit 2
      ;;
  esac
fi
