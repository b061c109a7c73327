#!/usr/bin/env bash
# System lab: backupd under a real systemd on the box (issue: system lab). A Debian 12 container
# (cached rootfs, the .deb installed with apt) in the lab's box network namespace runs the
# shipped backupd.service unchanged, token through LoadCredential= (no token_file in its config),
# next to the lab's simulated box: powersim.py still plays the power button and runs the box's
# sshd while the box is "on"; backupd's shutdown_command presses that button (and restarts
# backupd.service, as the box's next boot would). hozo (on the host,
# in the orchestrator namespace) then goes through backupd for the disk, pool and shutdown stages.
# backupd.socket: when the package ships it, the socket unit is enabled instead (socket activation).
#  1. backupd.service active, started by systemd with its credential; --check passed (ExecStartPre)
#  2. hozo jobs run: disk spun up through backupd (a real O_DIRECT read of the loop device), pool
#     health from backupd, POST /shutdown exported the pool and powered the box off
#  3. the next run imports the exported pool and is incremental
#  4. the journal of backupd.service has the requests, never the token
set -uo pipefail
LAB_ID=${LAB_ID:-sbx$$}
LAB_ID=${LAB_ID:0:10}
export LAB_BACKUPD=0 LAB_DISK=1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lab/lab.sh"
source "$here/../lab/testlib.sh"
source "$here/systemlib.sh"
sys_lab_container box
DISK=$(lab_disk_dev)
PORT=9999
URL=http://$LAB_BOX_IP:$PORT

t0=$SECONDS
if out=$(sys_install_deb "$root" "$deb" bookworm); then
  t_pass "apt install ./$(basename "$deb") in the box rootfs ($((SECONDS - t0)) s)"
else
  t_fail "apt install: $out"
  t_done
  exit 1
fi

# The box's configuration, as an admin writes it: token in /etc/hozo/backupd.token (0600),
# read by systemd (LoadCredential=backupd-token:...), the config names no token_file.
install -d -m 755 "$root/etc/hozo"
(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$root/etc/hozo/backupd.token")
cp "$root/etc/hozo/backupd.token" "$LAB_DIR/client.token"
cat >"$root/etc/hozo/backupd.yaml" <<EOF
# system lab box $LAB_ID
listen: $LAB_BOX_IP:$PORT
export_pools: [$LAB_TGT_POOL]
shutdown_command: ["/usr/local/sbin/lab-power-button"]
shutdown_delay: 1s
spinup_timeout: 20s
EOF
# Lab fixtures (the lab's box directory is bound at /srv/lab/box; backupd.service has PrivateTmp=;
# never the whole lab directory: its zfs-fuse mounts would make the pool "busy" for zpool export):
#  - the power button: tells powersim to switch the simulated box off (its sshd dies), then
#    restarts backupd.service, as a box that boots again starts a fresh backupd (backupd answers
#    a second shutdown request with "already scheduled": on a real box it is off by then);
#  - hdparm: the lab's simulated drive power state of the loop device (tests/lab/README.md).
cat >"$root/usr/local/sbin/lab-power-button" <<EOF
#!/bin/sh
# system lab: backupd's shutdown_command presses the simulated box's power button
timeout 5 sh -c 'printf "poweroff backupd-shutdown-command\n" >/srv/lab${LAB_POWER_FIFO#"$LAB_DIR"}' || exit 1
exec systemctl restart --no-block backupd.service
EOF
mkdir -p "$root/srv/lab/box"
cp "$LAB_DIR/disk.dev" "$root/srv/lab/disk.dev"
sed "s|$LAB_DIR|/srv/lab|g" "$LAB_BOX_DIR/usr-local/sbin/hdparm" >"$root/usr/local/sbin/hdparm"
#  - zpool: zfs-fuse's `zpool export` unmounts the pool's file systems in the caller's mount
#    namespace, and the container does not have them mounted (the host does): the export stays
#    "busy". The lab's fixture for that (tests/lab/README.md, "backupd and the backup disk"): a
#    `zpool` shim hands `zpool export <this lab's target pool>` to a helper loop on the host;
#    every other zpool command runs unchanged. Set up by lab.sh's _lab_up_backupd, whose helper
#    lab_down stops. (The simulated box's own backupd is not started: LAB_BACKUPD=0.)
LAB_BACKUPD_BIN=${LAB_BACKUPD_BIN:-${BACKUPD_BIN:-$build/backupd}} _lab_up_backupd 2>/dev/null ||
  { echo "FAIL the lab's zpool export helper"; exit 1; }
sed "s|$LAB_DIR|/srv/lab|g" "$LAB_BOX_DIR/usr-local/sbin/zpool" >"$root/usr/local/sbin/zpool"
chmod 755 "$root/usr/local/sbin/zpool"
chmod 755 "$root/usr/local/sbin/lab-power-button" "$root/usr/local/sbin/hdparm"
# The lab's backup disk is a loop device; the shipped unit allows SCSI/virtio/NVMe disks only.
install -d "$root/etc/systemd/system/backupd.service.d"
printf '# system lab: the backup disk is a loop device; the lab fixtures write under /srv/lab/box\n[Service]\nDeviceAllow=block-loop r\nReadWritePaths=/srv/lab/box\n' \
  >"$root/etc/systemd/system/backupd.service.d/zz-system-lab.conf"
unit=backupd.service
if [[ -e $root/usr/lib/systemd/system/backupd.socket ]]; then
  unit=backupd.socket
  # As backupd.socket's comment tells the admin: listen on the box's LAN address.
  install -d "$root/etc/systemd/system/backupd.socket.d"
  printf '# system lab: the box LAN address\n[Socket]\nListenStream=\nListenStream=%s:%s\n' "$LAB_BOX_IP" "$PORT" \
    >"$root/etc/systemd/system/backupd.socket.d/zz-system-lab.conf"
fi
chroot "$root" systemctl enable -q "$unit"

sys_boot "$C" "$root" "$LAB_NS_BOX" --bind="$LAB_BOX_DIR:/srv/lab/box" --bind="$DISK" ||
  { echo "FAIL boot"; t_done; exit 1; }
in_c() { sys_exec "$C" "$@"; }
t_pass "box container booted in $LAB_NS_BOX"

# ------------------------------------------------------------------------------------------
t_log "1. $unit under systemd with LoadCredential="
for _ in $(seq 1 50); do lab_port_open "$LAB_BOX_IP" "$PORT" && break; sleep 0.2; done
t_eq "$unit active" active "$(in_c systemctl is-active "$unit")"
t_check "backupd answers $URL/ping from the orchestrator namespace" lab_port_open "$LAB_BOX_IP" "$PORT"
t_check "the unit loads the token as a credential" grep -q "backupd-token:/etc/hozo/backupd.token" \
  <<<"$(in_c systemctl cat backupd.service)"
t_check "the credential is in the service's credentials directory" \
  in_c test -s "/run/credentials/backupd.service/backupd-token"
t_eq "the box itself (sshd, simulated) is off" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "2. hozo jobs run through backupd: disk spin-up, pool health, shutdown"
write_config nightly "recursive: true" "backup_device: $DISK" "disk_spinup_timeout: 15" \
  "target_pool_import_dirs: [$LAB_POOL_DIR]" "agent:" "  url: $URL" "  token_file: $LAB_DIR/client.token"
stage_msg() { state_get nightly "next((s['message'] for s in r['stages'] if s['name']=='$1'), 'no $1 stage')"; }
lab_disk_standby
reads_before=$(lab_disk_reads)
lab_mark_events
hozo_run jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_check "disk stage: standby -> active through backupd ($(stage_msg disk))" grep -q "standby → active via backupd" <<<"$(stage_msg disk)"
t_check "the spin-up read reached the loop device" test "$(lab_disk_reads)" -gt "$reads_before"
t_check "pool health from backupd ($(stage_msg pool))" grep -q "health from backupd" <<<"$(stage_msg pool)"
t_check "shutdown through backupd ($(state_get nightly 'r["shutdown"]["message"]'))" \
  grep -q "backupd POST /shutdown" <<<"$(state_get nightly 'r["shutdown"]["message"]')"
t_check "backupd exported the target pool" bash -c "! zpool list -H -o name '$LAB_TGT_POOL' >/dev/null 2>&1"
t_eq "one power-off, by backupd's shutdown_command" 1 "$(grep -c 'backupd-shutdown-command' <<<"$(tail -n "+$((LAB_EVENTS_MARK + 1))" "$LAB_EVENTS")")"
t_eq "box is off" off "$(lab_box_state)"
for _ in $(seq 1 50); do [[ $(in_c systemctl is-active backupd.service) == active ]] && break; sleep 0.2; done
t_eq "backupd.service restarted (the box's next boot)" active "$(in_c systemctl is-active backupd.service)"
t_check "backupd answers again" lab_port_open "$LAB_BOX_IP" "$PORT"

# ------------------------------------------------------------------------------------------
t_log "3. the next run imports the exported pool, incremental"
echo "second $(date)" >"$LAB_SRC_MNT/data/second.txt"
zfs snapshot -r "$LAB_SRC_POOL/data@second"
sleep 1.1
lab_disk_standby
lab_mark_events
hozo_run jobs run nightly
t_eq "second run exits 0" 0 "$HOZO_RC"
t_check "pool stage imported the pool ($(stage_msg pool))" grep -q "$LAB_TGT_POOL imported" <<<"$(stage_msg pool)"
t_eq "verified" True "$(state_get nightly 'all(d["guid_match"] for d in r["datasets"])')"
t_eq "box is off" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "4. backupd's journal"
in_c journalctl -u backupd.service -o json --no-pager >"$SYS_WORK/backupd.journal.json"
t_check "the journal has the shutdown request" grep -q "POST /shutdown" "$SYS_WORK/backupd.journal.json"
t_check "the journal has the spin-up request" grep -q "/spinup" "$SYS_WORK/backupd.journal.json"
t_check "the token is not in the journal" bash -c "! grep -qF '$(cat "$LAB_DIR/client.token")' '$SYS_WORK/backupd.journal.json'"

t_done
