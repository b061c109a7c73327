#!/usr/bin/env bash
# Lab: `hozo jobs run` with backupd on the box and a backup disk (issue: backupd, disk spin-up and
# pool import). backupd starts at every simulated boot; the backup disk is a real loop device
# whose power state the box's hdparm simulates (standby until a read reaches it).
#  1. agent + disk in standby: disk stage spins it up through backupd (a real O_DIRECT read), pool
#     health from backupd, shutdown through POST /shutdown: the pool is exported, the box is off
#  2. the next run finds the pool exported and imports it (target_pool_import_dirs), incremental
#  3. a disk that never spins up: the disk stage fails after disk_spinup_timeout, nothing is sent,
#     the box is still powered off (and the pool exported)
#  4. no agent: the disk is spun up with hdparm/dd over SSH, shutdown over SSH
#  5. a wrong agent token: hozo falls back to SSH for pool, disk and shutdown; the run succeeds
set -uo pipefail
LAB_ID=${LAB_ID:-bdp$$}
export LAB_BACKUPD=1 LAB_DISK=1
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

DISK=$(lab_disk_dev)
tgt_imported() { zpool list -H -o name "$LAB_TGT_POOL" >/dev/null 2>&1; }
# Compares source and target files (imports the exported target pool for it, exports it again).
same_data_exported() {
  zpool import -d "$LAB_POOL_DIR" "$LAB_TGT_POOL" || return 1
  remount_tree "$LAB_TGT_ROOT/data"
  lab_tree_sums "$LAB_SRC_MNT/data" >"$LAB_DIR/sums.src"
  lab_tree_sums "$LAB_TGT_MNT/backup/data" >"$LAB_DIR/sums.tgt"
  local rc=0
  [[ -s $LAB_DIR/sums.src ]] && diff "$LAB_DIR/sums.src" "$LAB_DIR/sums.tgt" >&2 || rc=1
  zpool export "$LAB_TGT_POOL" || rc=1
  return $rc
}
stage_msg() { state_get nightly "next((s['message'] for s in r['stages'] if s['name']=='$1'), 'no $1 stage')"; }
agent_lines=(
  "agent:"
  "  url: $LAB_BACKUPD_URL"
  "  token_file: $LAB_BACKUPD_TOKEN_FILE"
)
job_lines=(
  "backup_device: $DISK"
  "disk_spinup_timeout: 15"
  "target_pool_import_dirs: [$LAB_POOL_DIR]"
)

# ------------------------------------------------------------------------------------------
t_log "1. agent, disk in standby: spin-up through backupd, pool health from backupd, shutdown via backupd"
write_config nightly "${job_lines[@]}" "${agent_lines[@]}"
lab_disk_standby
reads_before=$(lab_disk_reads)
lab_mark_events
hozo_run jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_eq "outcome success" success "$(state_get nightly 'r["outcome"]')"
t_eq "stages in order" "preflight,lock,wake,wait,connect,disk,pool,sync,verify,shutdown" \
  "$(state_get nightly '",".join(s["name"] for s in r["stages"])')"
msg=$(stage_msg disk)
t_check "disk stage: standby -> active through backupd ($msg)" grep -q "standby → active via backupd" <<<"$msg"
t_check "the spin-up read reached the device" test "$(lab_disk_reads)" -gt "$reads_before"
t_eq "the disk is active now" active/idle "$(lab_disk_state)"
t_check "backupd served the disk requests" grep -q "POST /disk/${DISK##*/}/spinup 200" "$LAB_BACKUPD_LOG"
msg=$(stage_msg pool)
t_check "pool health from backupd ($msg)" grep -q "$LAB_TGT_POOL ONLINE, health from backupd" <<<"$msg"
t_check "backupd answered GET /status" grep -q "GET /status 200" "$LAB_BACKUPD_LOG"
t_eq "shutdown done" done "$(state_get nightly 'r["shutdown"]["outcome"]')"
t_check "shutdown went through backupd" grep -q "backupd POST /shutdown" <<<"$(state_get nightly 'r["shutdown"]["message"]')"
t_check "backupd exported the pool before powering off" grep -q "exported pool $LAB_TGT_POOL" "$LAB_BACKUPD_LOG"
t_check "the target pool is exported" bash -c "! zpool list -H -o name '$LAB_TGT_POOL' >/dev/null 2>&1"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
t_eq "box is off again" off "$(lab_box_state)"
t_check "the token is in no log or state" bash -c "! grep -rqF '$(cat "$LAB_BACKUPD_TOKEN_FILE")' '$LAB_DIR/state' '$T_OUT' '$T_ERR' '$LAB_BACKUPD_LOG'"
t_check "target data equals source" same_data_exported
first_newest=$(state_get nightly 'r["datasets"][0]["newest_source_snapshot"]')

# ------------------------------------------------------------------------------------------
t_log "2. next run: the pool is exported and gets imported (target_pool_import_dirs); incremental"
echo "second run $(date)" >"$LAB_SRC_MNT/data/second-run.txt"
zfs snapshot -r "$LAB_SRC_POOL/data@second"
lab_disk_standby
lab_mark_events
hozo_run jobs run nightly
t_eq "second run exits 0" 0 "$HOZO_RC"
msg=$(stage_msg pool)
t_check "pool stage imported the exported pool ($msg)" grep -q "^$LAB_TGT_POOL imported, $LAB_TGT_POOL ONLINE$" <<<"$msg"
t_eq "a newer snapshot arrived and was verified" "True" \
  "$(state_get nightly 'r["datasets"][0]["guid_match"] and r["datasets"][0]["newest_source_snapshot"] != "'"$first_newest"'"')"
t_check "exported again at shutdown" bash -c "! zpool list -H -o name '$LAB_TGT_POOL' >/dev/null 2>&1"
t_eq "box is off again" off "$(lab_box_state)"
t_check "target data equals source after the incremental run" same_data_exported

# ------------------------------------------------------------------------------------------
t_log "3. a disk that never spins up: disk stage fails after disk_spinup_timeout, box powered off"
write_config nightly "backup_device: $DISK" "disk_spinup_timeout: 3" "target_pool_import_dirs: [$LAB_POOL_DIR]" \
  "${agent_lines[@]}"
lab_disk_stuck on
lab_mark_events
t0=$SECONDS
hozo_run jobs run nightly
t_eq "run exits 1" 1 "$HOZO_RC"
t_eq "failed stage disk" disk "$(state_get nightly 'r["failed_stage"]')"
t_check "error names the timeout" grep -q "did not spin up within 3s (disk_spinup_timeout): standby" \
  <<<"$(state_get nightly 'r["error"]')"
t_eq "syncoid never ran" 0 "$(state_get nightly 'r["attempts"]')"
t_check "gave up in bounded time ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -lt 60
t_eq "box powered off anyway" off "$(lab_box_state)"
t_eq "shutdown done" done "$(state_get nightly 'r["shutdown"]["outcome"]')"
lab_disk_stuck off

# ------------------------------------------------------------------------------------------
t_log "4. no agent: hdparm -C and a dd read over SSH, shutdown over SSH"
zpool import -d "$LAB_POOL_DIR" "$LAB_TGT_POOL" # backupd is not asked to export this time
write_config nightly "backup_device: $DISK" "disk_spinup_timeout: 15"
lab_disk_standby
reads_before=$(lab_disk_reads)
lab_mark_events
hozo_run jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
msg=$(stage_msg disk)
t_check "disk stage over SSH ($msg)" grep -q "standby → active via hdparm over SSH" <<<"$msg"
t_check "the dd read reached the device" test "$(lab_disk_reads)" -gt "$reads_before"
t_check "shutdown over SSH" grep -q '"shutdown -h now" sent; SSH port closed' <<<"$(state_get nightly 'r["shutdown"]["message"]')"
t_eq "box is off again" off "$(lab_box_state)"
t_check "pool left imported (no backupd export)" tgt_imported

# ------------------------------------------------------------------------------------------
t_log "5. a wrong agent token: everything falls back to SSH, the run succeeds"
(umask 077 && echo "wrong-token-0123456789" >"$LAB_DIR/wrong.token")
write_config nightly "${job_lines[@]}" "agent:" "  url: $LAB_BACKUPD_URL" "  token_file: $LAB_DIR/wrong.token"
lab_disk_standby
lab_mark_events
hozo_run jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_check "warned about the rejected token" grep -q "token rejected (401)" "$T_ERR"
t_check "disk fell back to SSH" grep -q "via hdparm over SSH" <<<"$(stage_msg disk)"
t_check "pool health over SSH" bash -c "! grep -q 'health from backupd' <<<\"\$1\"" _ "$(stage_msg pool)"
t_check "shutdown fell back to SSH" grep -q "over SSH (backupd refused or did not answer)" \
  <<<"$(state_get nightly 'r["shutdown"]["message"]')"
t_eq "box is off again" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "6. hozo shutdown and --dry-run with an agent"
write_config nightly "${job_lines[@]}" "${agent_lines[@]}"
hozo_run jobs run nightly --dry-run
t_eq "dry run exits 0" 0 "$HOZO_RC"
t_check "plan: disk through backupd" grep -q "disk     wait for $DISK and spin it up (through backupd" "$T_OUT"
t_check "plan: pool import with the search dir" grep -q "zpool import -d $LAB_POOL_DIR if not imported" "$T_OUT"
t_check "plan: shutdown through backupd" grep -q "backupd POST /shutdown" "$T_OUT"
t_eq "dry run woke nothing" off "$(lab_box_state)"
lab_mark_events
lab_wake && lab_wait_event ssh_up 20 >/dev/null && lab_wait_port "$LAB_BOX_IP" "$LAB_BACKUPD_PORT" 10
hozo_run shutdown nightly
t_eq "hozo shutdown exits 0" 0 "$HOZO_RC"
t_check "hozo shutdown went through backupd" grep -q "backupd POST /shutdown (pools exported); SSH port closed" "$T_OUT"
t_eq "box is off" off "$(lab_box_state)"
t_check "the pool was exported" bash -c "! zpool list -H -o name '$LAB_TGT_POOL' >/dev/null 2>&1"

# ------------------------------------------------------------------------------------------
t_log "7. hozo check --wake looks at backupd and the disk (no spin-up read)"
lab_disk_standby
spinups_before=$(grep -c "/spinup" "$LAB_BACKUPD_LOG")
lab_mark_events
hozo_run --json check nightly --wake
t_eq "check exits 0" 0 "$HOZO_RC"
((HOZO_RC == 0)) || json_get "$T_OUT" "'\n'.join(r['status'] + ' ' + r['name'] + ': ' + r['detail'] for r in d['jobs'][0]['rows'])" >&2
row() { json_get "$T_OUT" "next(r['status'] + ' ' + r['detail'] for r in d['jobs'][0]['rows'] if r['name'] == '$1')"; }
t_check "backupd row ok ($(row backupd))" grep -q "^ok $LAB_BACKUPD_URL answers" <<<"$(row backupd)"
t_check "backup disk row: standby via backupd ($(row 'backup disk'))" grep -q "^ok $DISK: standby via backupd" <<<"$(row 'backup disk')"
t_eq "check asked backupd for no spin-up" "$spinups_before" "$(grep -c "/spinup" "$LAB_BACKUPD_LOG")"
t_eq "box is off again" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "8. hozo restore with the pool exported and the disk asleep: spin-up, import, pull, power-off via backupd"
t_check "the pool is exported before the restore" bash -c "! zpool list -H -o name '$LAB_TGT_POOL' >/dev/null 2>&1"
lab_disk_standby
spinups_before=$(grep -c "/spinup" "$LAB_BACKUPD_LOG")
lab_mark_events
hozo_run restore nightly --to "$LAB_SRC_POOL/restored"
t_eq "restore exits 0" 0 "$HOZO_RC"
t_eq "restore recorded as success" success \
  "$("$LAB_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"]["nightly"]["last_restore"]["outcome"])' "$T_STATE")"
t_check "the restore spun the disk up through backupd" test "$(grep -c "/spinup" "$LAB_BACKUPD_LOG")" -gt "$spinups_before"
remount_tree "$LAB_SRC_POOL/restored"
lab_tree_sums "$LAB_SRC_MNT/data" >"$LAB_DIR/sums.src"
lab_tree_sums "$(zfs get -H -o value mountpoint "$LAB_SRC_POOL/restored")" >"$LAB_DIR/sums.restored"
t_check "restored files equal the source (sha256 of every file)" diff "$LAB_DIR/sums.src" "$LAB_DIR/sums.restored"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
t_check "backupd exported the pool again" bash -c "! zpool list -H -o name '$LAB_TGT_POOL' >/dev/null 2>&1"

t_done
