#!/usr/bin/env bash
# Lab: `hozo restore` end to end (issue 7, break-glass): a backup made with `hozo jobs run` is pulled
# back with real syncoid over the box's real sshd into zfs-fuse. Asserts exit codes, files (sha256 of
# every file), the state file's restore entries and the box's power events.
set -uo pipefail
LAB_ID=${LAB_ID:-rest$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

mnt_of() { zfs get -H -o value mountpoint "$1"; }
# sums_of DATASET: `path sha256` of every file of the mounted tree (children included).
sums_of() {
  remount_tree "$1"
  lab_tree_sums "$(mnt_of "$1")"
}
same_sums() { # FILE DATASET: the tree of DATASET has exactly the sums in FILE (and FILE is not empty)
  sums_of "$2" >"$LAB_DIR/sums.now"
  [[ -s $1 ]] && diff "$1" "$LAB_DIR/sums.now" >&2
}
# The newest restore of JOB in the state file: restore_get JOB EXPR (the restore is `r`).
# (runs/<job>/restores.json next to state.json: {"restores": [... oldest first]})
restore_get() {
  "$LAB_PY" "$LAB_SRC_DIR/hozo_state.py" --restores "$T_STATE" "$1" "(lambda r: $2)(rs[-1])"
}
restore_count() {
  "$LAB_PY" "$LAB_SRC_DIR/hozo_state.py" --restores "$T_STATE" "$1" 'len(rs)'
}
differs() { ! same_sums "$@" 2>/dev/null; }
# zfs commands that change the box's datasets (snapshot, destroy, rollback, ...) in the box's zfs log.
box_zfs_writes() { awk '$2 ~ /^(snapshot|destroy|rollback|rename|set|receive|recv)$/' "$LAB_BOX_DIR/zfs-calls.log" 2>/dev/null | wc -l; }
no_wake_since_mark() { [[ $(lab_count_events wol_received) == 0 && $(lab_box_state) == off ]]; }

SRC=$LAB_SRC_POOL/data
write_config nightly "recursive: true"
sums_of "$SRC" >"$LAB_DIR/sums.v1"
zfs snapshot -r "$SRC@v1"

# ------------------------------------------------------------------------------------------
t_log "1. backup (box off -> on -> off), then restore NAME -> new dataset with identical files, box off again"
lab_mark_events
hozo_run jobs run nightly
t_eq "backup exits 0" 0 "$HOZO_RC"
t_eq "backup powered the box off" off "$(lab_box_state)"
lab_mark_events
hozo_run restore nightly --dry-run
t_eq "--dry-run exits 0" 0 "$HOZO_RC"
t_check "--dry-run prints the syncoid pull command" grep -q "root@$LAB_BOX_IP:$LAB_TGT_ROOT/data $SRC-restore-" "$T_OUT"
t_check "--dry-run woke nothing" no_wake_since_mark
box_writes=$(box_zfs_writes)
hozo_run restore nightly
t_eq "restore exits 0" 0 "$HOZO_RC"
restored=$(restore_get nightly 'r["target"]')
t_check "default target is <source>-restore-<UTC stamp> ($restored)" \
  bash -c "[[ '$restored' =~ ^$SRC-restore-[0-9]{8}-[0-9]{6}\$ ]]"
t_check "restored files are byte-identical to the source (sha256 of every file, child included)" \
  same_sums "$LAB_DIR/sums.v1" "$restored"
t_check "the child dataset was restored as a dataset" zfs list -H "$restored/child"
t_check "the live source is untouched" same_sums "$LAB_DIR/sums.v1" "$SRC"
t_eq "state: outcome success" success "$(restore_get nightly 'r["outcome"]')"
t_eq "state: exit code 0" 0 "$(restore_get nightly 'r["exit_code"]')"
t_eq "state: source" "$SRC" "$(restore_get nightly 'r["source"]')"
t_eq "state: restored from the box's dataset" "$LAB_BOX_IP:$LAB_TGT_ROOT/data" "$(restore_get nightly 'r["backup"]')"
t_eq "state: woke the box" True "$(restore_get nightly 'r["woke_host"]')"
t_eq "state: shutdown done" done "$(restore_get nightly 'r["shutdown"]["outcome"]')"
t_check "state: finished time recorded" test -n "$(restore_get nightly 'r["finished"]')"
t_eq "the backup run is still the job's last run" success "$(state_get nightly 'r["outcome"]')"
hozo_run status nightly
t_check "hozo status shows the restore" grep -q "restore .* success $LAB_BOX_IP:$LAB_TGT_ROOT/data → $restored" "$T_OUT"
hozo_run --json status nightly
t_eq "hozo status --json has last_restore" "$restored" "$(json_get "$T_OUT" 'd["last_restore"]["target"]')"
t_eq "one wake" 1 "$(lab_count_events ssh_up)"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
t_eq "box is off again" off "$(lab_box_state)"
t_check "the box's zfs log has calls from the restore" test -s "$LAB_BOX_DIR/zfs-calls.log"
t_eq "nothing on the backup was changed (no zfs snapshot/destroy/... on the box)" "$box_writes" "$(box_zfs_writes)"

# ------------------------------------------------------------------------------------------
t_log "2. --snapshot of an older snapshot restores that version"
echo "version 2 $(date +%s%N)" >"$LAB_SRC_MNT/data/hello.txt"
echo "new in v2" >"$LAB_SRC_MNT/data/child/new.txt"
rm -f "$LAB_SRC_MNT/data/dir/sub/numbers.txt"
sync
zfs snapshot -r "$SRC@v2"
sums_of "$SRC" >"$LAB_DIR/sums.v2"
sleep 1.1
hozo_run jobs run nightly
t_eq "second backup exits 0" 0 "$HOZO_RC"
lab_mark_events
hozo_run restore nightly --snapshot v1 --to "$LAB_SRC_POOL/old"
t_eq "restore --snapshot v1 exits 0" 0 "$HOZO_RC"
t_check "the restored copy has v1's files" same_sums "$LAB_DIR/sums.v1" "$LAB_SRC_POOL/old"
t_check "v1 differs from the current source" bash -c "! cmp -s '$LAB_DIR/sums.v1' '$LAB_DIR/sums.v2'"
t_eq "state: requested snapshot" v1 "$(restore_get nightly 'r["snapshot"]')"
t_eq "state: restored snapshot" "$LAB_SRC_POOL/old@v1" "$(restore_get nightly 'r["restored_snapshot"]')"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
sleep 1.1
hozo_run restore nightly --to "$LAB_SRC_POOL/new"
t_eq "restore of the newest exits 0" 0 "$HOZO_RC"
t_check "the newest restore has v2's files" same_sums "$LAB_DIR/sums.v2" "$LAB_SRC_POOL/new"
lab_mark_events
hozo_run restore nightly --snapshot nosuchsnap --to "$LAB_SRC_POOL/nosuch"
t_eq "a snapshot the box lacks: exit 1 (the box was woken to find out)" 1 "$HOZO_RC"
t_eq "  failed at check" check "$(restore_get nightly 'r["failed_stage"]')"
t_check "  nothing was created" bash -c "! zfs list -H $LAB_SRC_POOL/nosuch 2>/dev/null"
t_eq "  box off again" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "3./4. --in-place without --force-delete, without confirmation, with a wrong name: refused, nothing woken"
n_before=$(restore_count nightly)
lab_mark_events
hozo_run restore nightly --in-place
t_eq "--in-place alone: exit 2" 2 "$HOZO_RC"
t_check "  says --force-delete is needed" grep -q -- "--force-delete" "$T_ERR"
hozo_run restore nightly --in-place --force-delete
t_eq "--in-place --force-delete, no TTY, no --confirm: exit 2" 2 "$HOZO_RC"
t_check "  says why" grep -q "no terminal" "$T_ERR"
hozo_run restore nightly --in-place --force-delete --confirm WRONGNAME
t_eq "--confirm WRONGNAME: exit 2" 2 "$HOZO_RC"
t_check "  says it does not match" grep -q "does not match" "$T_ERR"
if command -v script >/dev/null; then
  # On a terminal (script(1) gives hozo a pty) it asks for the job name; a wrong answer refuses.
  printf 'WRONGNAME\n' | ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
    script -qec "$HOZO_BIN -c $T_CONFIG --state $T_STATE restore nightly --in-place --force-delete" /dev/null \
    >"$LAB_DIR/tty.out" 2>&1
  t_eq "typed a wrong job name at the prompt: exit 2" 2 "$?"
  t_check "  the prompt asked for the job name" grep -q "Type the job name (nightly)" "$LAB_DIR/tty.out"
fi
hozo_run restore nightly --to "$LAB_SRC_POOL/old"
t_eq "--to an existing dataset: exit 2" 2 "$HOZO_RC"
hozo_run restore nightly --to "$SRC"
t_eq "--to the live source without --in-place: exit 2" 2 "$HOZO_RC"
t_check "no magic packet since the refusals began, box off" no_wake_since_mark
t_eq "no restore recorded for the refusals" "$n_before" "$(restore_count nightly)"
t_check "source unchanged" same_sums "$LAB_DIR/sums.v2" "$SRC"

# ------------------------------------------------------------------------------------------
t_log "6. shell metacharacters in --to / --snapshot are rejected before anything runs"
rm -f /tmp/pwned
lab_mark_events
hozo_run restore nightly --to 'x;touch /tmp/pwned'
t_eq "--to 'x;touch /tmp/pwned': exit 2" 2 "$HOZO_RC"
hozo_run restore nightly --snapshot 'x;touch /tmp/pwned'
t_eq "--snapshot 'x;touch /tmp/pwned': exit 2" 2 "$HOZO_RC"
hozo_run restore nightly --dataset "$SRC/\$(touch /tmp/pwned)"
t_eq "--dataset with \$(...): exit 2" 2 "$HOZO_RC"
t_check "/tmp/pwned was not created" test ! -e /tmp/pwned
t_check "nothing woken" no_wake_since_mark
t_eq "nothing recorded" "$n_before" "$(restore_count nightly)"

# ------------------------------------------------------------------------------------------
t_log "5. --in-place --force-delete --confirm NAME after a local change brings back the backed-up content"
echo "local damage" >"$LAB_SRC_MNT/data/hello.txt"
rm -f "$LAB_SRC_MNT/data/child/new.txt"
echo "stray" >"$LAB_SRC_MNT/data/stray.txt"
sync
t_check "the source differs from the backup now" differs "$LAB_DIR/sums.v2" "$SRC"
sleep 1.1
lab_mark_events
hozo_run restore nightly --in-place --force-delete --confirm nightly
t_eq "in-place restore exits 0" 0 "$HOZO_RC"
t_check "the source has the backed-up (v2) files again" same_sums "$LAB_DIR/sums.v2" "$SRC"
t_eq "state: in_place" True "$(restore_get nightly 'r["in_place"]')"
t_eq "state: target is the source" "$SRC" "$(restore_get nightly 'r["target"]')"
t_eq "state: outcome success" success "$(restore_get nightly 'r["outcome"]')"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
t_eq "box is off again" off "$(lab_box_state)"
sleep 1.1
hozo_run jobs run nightly
t_eq "a backup after the in-place restore still works" 0 "$HOZO_RC"

# ------------------------------------------------------------------------------------------
t_log "7. box never wakes -> exit 69, recorded, nothing created"
lab_powersim_restart --never-boot
write_config nightly "recursive: true" "ssh_timeout: 3"
hozo_run restore nightly --to "$LAB_SRC_POOL/never"
t_eq "exit 69" 69 "$HOZO_RC"
t_eq "  recorded: failed at wake" "failed wake 69" \
  "$(restore_get nightly 'r["outcome"] + " " + r["failed_stage"] + " " + str(r["exit_code"])')"
t_check "  nothing was created" bash -c "! zfs list -H $LAB_SRC_POOL/never 2>/dev/null"

t_done
