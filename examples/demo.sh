#!/usr/bin/env bash
# The Hōzō demo (README command 1): installs what it needs, builds, starts the embedded lab
# (a simulated backup box that is off, with a real sshd and backupd, in its own network namespace;
# a backup disk in standby on a loop device; user-space ZFS from zfs-fuse), runs a real
# `hozo jobs run demo` against it twice (full, then incremental: the box's backupd exported the
# pool at the first power-off, so the second run imports it), prints the result and
# `hozo status`, and tears everything down again.
#   sudo examples/demo.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${HOZO_BUILD_DIR:-$root/build}

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (network namespaces, zfs-fuse); run: sudo $0" >&2
  exit 1
fi
"$root/tests/install-deps.sh"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
cmake --build "$build" --target hozo backupd
hozo_bin=$build/hozo

LAB_ID=demo$$
export LAB_BACKUPD=1 LAB_DISK=1 BACKUPD_BIN=$build/backupd
source "$root/tests/lab/lab.sh"
lab_require
trap 'status=$?; set +e; lab_down; exit $status' EXIT
lab_up

cfg=$LAB_DIR/hozo.yaml
state=$LAB_DIR/state/state.json
cat >"$cfg" <<YAML
# The demo job: replicate the lab's source dataset (and its children) to the sleeping box.
settings:
  ssh_user: root
jobs:
  - name: demo
    description: "Demo: $LAB_SRC_POOL/data -> box $LAB_BOX_IP"
    source: $LAB_SRC_POOL/data
    target_host: $LAB_BOX_IP
    target_dataset: $LAB_TGT_ROOT/data
    mac_address: "$LAB_BOX_MAC"
    ssh_key: $LAB_SSH_KEY
    known_hosts: $LAB_KNOWN_HOSTS
    recursive: true
    ssh_timeout: 60
    schedule: "daily 02:00"
    backup_device: $(lab_disk_dev)     # spun up before the sync
    disk_spinup_timeout: 30
    target_pool_import_dirs: [$LAB_POOL_DIR]
    agent:                             # backupd on the box
      url: $LAB_BACKUPD_URL
      token_file: $LAB_BACKUPD_TOKEN_FILE
YAML

hozo() { # runs hozo in the lab's orchestrator namespace (its only route is the lab's veth)
  ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" "$hozo_bin" -c "$cfg" --state "$state" "$@"
}

echo
echo "== the box is $(lab_box_state), its backup disk is $(lab_disk_standby; lab_disk_state); hozo jobs run demo (full send)"
hozo jobs run demo
echo
echo "== new data and a new snapshot on the source; hozo jobs run demo (incremental)"
date >"$LAB_SRC_MNT/data/demo-$(date +%s).txt"
zfs snapshot -r "$LAB_SRC_POOL/data@demo-$(date +%s)"
lab_disk_standby
hozo jobs run demo
echo
echo "== hozo status demo"
hozo status demo
echo
echo "== hozo jobs list"
hozo jobs list
echo
echo "== what the simulated box saw"
lab_events | "$LAB_PY" -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["event"] in ("wol_received", "boot_started", "ssh_up", "poweroff", "off"):
        print("  {:>10.3f}  {}".format(e["wall"] % 100000, e["event"]))'
echo
echo "== what backupd on the box logged"
sed 's/^/  /' "$LAB_BACKUPD_LOG"
echo
echo "demo finished: the box is $(lab_box_state); the lab is torn down now."
