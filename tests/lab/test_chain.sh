#!/usr/bin/env bash
# Lab: the incremental chain and why a sync failed. Holds keep the last verified snapshot from
# pruning; a chain broken while the box was off fails in preflight without waking it; a target
# modified since the last sync and a target out of space fail with the cause on the first line of
# the error, the box powered off and nothing lost; the next run after the fix succeeds.
set -uo pipefail
LAB_ID=${LAB_ID:-chn$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

first_line() { state_get "$1" 'r["error"].splitlines()[0] if r["error"] else ""'; }
held() { state_get "$1" '[d["held_snapshot"] for d in r["datasets"]][0]'; }
userrefs() { zfs get -H -p -o value userrefs "$1" 2>/dev/null; }
released_or_gone() { local refs; refs=$(userrefs "$1"); [[ -z $refs || $refs == 0 ]]; }

t_log "1. a verified run holds its snapshot on both sides; pruning it fails; the next run stays incremental and releases the hold before"
write_config chain "source: $LAB_SRC_POOL/other" "target_dataset: $LAB_TGT_ROOT/other" "recursive: false" "retries: 0"
hozo_run jobs run chain
t_eq "first run exits 0" 0 "$HOZO_RC"
snap1=$(held chain)
t_check "a snapshot is held" test -n "$snap1"
t_eq "source snapshot held once" 1 "$(userrefs "$LAB_SRC_POOL/other@$snap1")"
t_eq "target snapshot held once" 1 "$(userrefs "$LAB_TGT_ROOT/other@$snap1")"
t_check "sanoid-style pruning of the held snapshot fails" bash -c "! zfs destroy $LAB_SRC_POOL/other@$snap1 2>$LAB_DIR/destroy.err"
sed 's/^/    zfs: /' "$LAB_DIR/destroy.err"
sleep 1.1
echo more >"$LAB_SRC_MNT/other/more.txt"
zfs snapshot "$LAB_SRC_POOL/other@later"
hozo_run jobs run chain
t_eq "second run exits 0" 0 "$HOZO_RC"
snap2=$(held chain)
t_check "the newer snapshot is held now" test "$snap2" != "$snap1"
t_eq "the newer snapshot is held on the target" 1 "$(userrefs "$LAB_TGT_ROOT/other@$snap2")"
t_eq "the old hold is left for the next run" "$snap1" "$(state_get chain '[d["release_pending"] for d in r["datasets"]][0]')"
t_eq "the old snapshot stays held on the source until then" 1 "$(userrefs "$LAB_SRC_POOL/other@$snap1")"
t_check "second run was incremental" grep -q "incremental\|Sending incremental" "$(state_get chain 'r["log_file"]')"
sleep 1.1
zfs snapshot "$LAB_SRC_POOL/other@latest"
hozo_run jobs run chain
t_eq "third run exits 0" 0 "$HOZO_RC"
# Released while syncoid ran: syncoid's own pruning may have destroyed it since.
t_check "the old hold is released on the source" released_or_gone "$LAB_SRC_POOL/other@$snap1"
t_check "the old hold is released on the target" released_or_gone "$LAB_TGT_ROOT/other@$snap1"
t_eq "the second run's hold is left for the next run" "$snap2" "$(state_get chain '[d["release_pending"] for d in r["datasets"]][0]')"
t_eq "the sync stage says so" 1 "$(state_get chain '[s["message"] for s in r["stages"] if s["name"] == "sync"][0]' | grep -c "previous hold(s) released")"
hozo_run check chain
grep -i "hold" "$T_OUT" | sed 's/^/    /'

t_log "2. the chain broken while the box was off: preflight fails before waking, with the cause"
for s in $(zfs list -H -o name -t snapshot -r "$LAB_SRC_POOL/other"); do
  zfs release "hozo:chain" "$s" 2>/dev/null
  zfs destroy "$s"
done
zfs snapshot "$LAB_SRC_POOL/other@after_prune"
lab_mark_events
hozo_run jobs run chain
t_eq "exit 1" 1 "$HOZO_RC"
t_eq "failed in preflight" preflight "$(state_get chain 'r["failed_stage"]')"
t_eq "cause recorded" no_common_snapshot "$(state_get chain 'r["error_cause"]')"
t_check "first line names the cause" bash -c "[[ '$(first_line chain)' == 'no common snapshot:'* ]]"
t_eq "the box was not woken" 0 "$(lab_count_events wol_received)"
first_line chain | sed 's/^/    error: /'
hozo_run status chain
t_check "status shows the cause" grep -q "no common snapshot" "$T_OUT"

t_log "3. a target modified since the last sync (--no-rollback): cause, box off, nothing lost; --force-rollback fixes it"
write_config mod "source: $LAB_SRC_POOL/data" "target_dataset: $LAB_TGT_ROOT/mod" "recursive: false" "retries: 0" \
  "syncoid:" "  extra_args: [\"--no-rollback\"]"
hozo_run jobs run mod
t_eq "first run exits 0" 0 "$HOZO_RC"
remount_tree "$LAB_TGT_ROOT/mod"
echo "written on the box" >"$(zfs get -H -o value mountpoint "$LAB_TGT_ROOT/mod")/local-change.txt"
sleep 1.1
zfs snapshot "$LAB_SRC_POOL/data@newer"
lab_mark_events
hozo_run jobs run mod
t_eq "exit 1" 1 "$HOZO_RC"
t_eq "cause recorded" target_modified "$(state_get mod 'r["error_cause"]')"
t_check "first line names the cause" bash -c "[[ '$(first_line mod)' == 'the target '*'was modified since the last sync'* ]]"
state_get mod 'r["error"]' | sed 's/^/    error: /'
t_eq "box powered off" 1 "$(lab_count_events poweroff)"
remount_tree "$LAB_TGT_ROOT/mod"
t_check "the change on the target is still there" test -f "$(zfs get -H -o value mountpoint "$LAB_TGT_ROOT/mod")/local-change.txt"
hozo_run jobs run mod --force-rollback
t_eq "--force-rollback run exits 0" 0 "$HOZO_RC"

t_log "4. the target fills up mid-transfer: cause, box off, other backups intact; the next run after the fix succeeds"
zfs create "$LAB_SRC_POOL/fill"
head -c 6291456 /dev/urandom >"$LAB_SRC_MNT/fill/blob.bin"
zfs snapshot "$LAB_SRC_POOL/fill@one"
zfs create -o quota=2M "$LAB_TGT_ROOT/quota"
before=$(zfs list -H -o name -t snapshot -r "$LAB_TGT_ROOT/other" | wc -l)
write_config fill "source: $LAB_SRC_POOL/fill" "target_dataset: $LAB_TGT_ROOT/quota/fill" "recursive: false" "retries: 0"
lab_mark_events
hozo_run jobs run fill
t_eq "exit 1" 1 "$HOZO_RC"
t_eq "cause recorded" out_of_space "$(state_get fill 'r["error_cause"]')"
t_check "first line names the cause" bash -c "[[ '$(first_line fill)' == 'out of space'* ]]"
state_get fill 'r["error"]' | sed 's/^/    error: /'
t_eq "box powered off" 1 "$(lab_count_events poweroff)"
t_eq "other backups intact" "$before" "$(zfs list -H -o name -t snapshot -r "$LAB_TGT_ROOT/other" | wc -l)"
zfs set quota=none "$LAB_TGT_ROOT/quota"
zfs destroy -r "$LAB_TGT_ROOT/quota/fill" 2>/dev/null  # zfs-fuse keeps no resume token (no resume support)
hozo_run jobs run fill
t_eq "after the fix the run exits 0" 0 "$HOZO_RC"

t_done
