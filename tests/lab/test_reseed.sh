#!/usr/bin/env bash
# Lab: repairing a broken chain on request. The chain is broken while the box is off (the source's
# snapshots pruned); `hozo jobs reseed` refuses without a terminal and without --yes, prints its plan
# with -n, sends in full into a new dataset and verifies it (data compared by sha256), leaves the old
# target alone; --replace renames the old one aside and the new one into place, after which the next
# normal run is incremental and succeeds. Nothing is destroyed without --force.
set -uo pipefail
LAB_ID=${LAB_ID:-rsd$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

SRC=$LAB_SRC_POOL/other
# zfs-fuse quirk: the host holds the mounts of the box's datasets, so a mounted dataset cannot be
# renamed from the box ("dataset is busy"). The targets live under a parent with mountpoint=none
# (as on a box made with `zpool create -O mountpoint=none`); the data is compared through a
# temporary mountpoint set from the host.
zfs create -o mountpoint=none "$LAB_TGT_ROOT/rs"
TGT=$LAB_TGT_ROOT/rs/other
sums_of() { # DATASET: sha256 of every file (a target is mounted for the comparison only)
  if [[ $1 == "$SRC" ]]; then lab_tree_sums "$LAB_SRC_MNT/other"; return; fi
  local m=$LAB_DIR/check-mnt
  zfs set mountpoint="$m" "$1" && lab_tree_sums "$m"
  zfs inherit mountpoint "$1"
}
datasets_like() { zfs list -H -o name -r "$LAB_TGT_ROOT" | grep -c -- "$1"; }

t_log "1. a good run, then the chain breaks while the box is off"
write_config rs "source: $SRC" "target_dataset: $TGT" "recursive: false" "retries: 0"
hozo_run jobs run rs
t_eq "first run exits 0" 0 "$HOZO_RC"
old_snaps=$(zfs list -H -o name -t snapshot -r "$TGT" | wc -l)
for s in $(zfs list -H -o name -t snapshot -r "$SRC"); do
  zfs release "hozo:rs" "$s" 2>/dev/null
  zfs destroy "$s"
done
echo "written after the prune" >"$LAB_SRC_MNT/other/after.txt"
zfs snapshot "$SRC@after_prune"
hozo_run jobs run rs
t_eq "the next run fails" 1 "$HOZO_RC"
t_check "its error names jobs reseed" grep -q "hozo jobs reseed rs" <(state_get rs 'r["error"]')

t_log "2. without a terminal and without --yes it refuses (64) and says what it would do; -n prints the plan"
lab_mark_events
hozo_run jobs reseed rs
t_eq "refused with exit 64" 64 "$HOZO_RC"
t_check "the refusal shows the plan" grep -q "send   full, into the NEW dataset $TGT.reseed-" "$T_ERR"
t_check "the refusal names --yes" grep -q -- "--yes" "$T_ERR"
t_eq "nothing woken" 0 "$(lab_count_events wol_received)"
hozo_run jobs reseed rs -n --replace
t_eq "dry run exits 0" 0 "$HOZO_RC"
t_check "the plan names the broken chain" grep -q "BROKEN" "$T_OUT"
t_check "the plan names the rename aside" grep -q "zfs rename $TGT $TGT.old-" "$T_OUT"
t_check "the plan has the syncoid command" grep -q "syncoid.* $SRC .*:$TGT.reseed-" "$T_OUT"
hozo_run jobs reseed rs --force
t_eq "--force without --replace is a usage error" 2 "$HOZO_RC"
t_eq "still nothing woken" 0 "$(lab_count_events wol_received)"

t_log "3. reseed --yes: a full send into a new dataset, verified; the old target untouched; the box off again"
lab_mark_events
hozo_run jobs reseed rs --yes
t_eq "reseed exits 0" 0 "$HOZO_RC"
cat "$T_OUT" | sed 's/^/    out: /'
new1=$(zfs list -H -o name -r "$LAB_TGT_ROOT" | grep -- "^$TGT.reseed-" | head -1)
t_check "the new dataset exists" test -n "$new1"
t_eq "recorded as a re-seed" sent "$(state_get rs 'r["reseed"]')"
t_eq "verified" True "$(state_get rs 'r["datasets"][0]["guid_match"]')"
t_check "the full send went into the new dataset" grep -q "$new1" <(state_get rs 'r["datasets"][0]["target"]')
t_eq "data on the new dataset equals the source (sha256)" "$(sums_of "$SRC")" "$(sums_of "$new1")"
t_eq "the old target kept its snapshots" "$old_snaps" "$(zfs list -H -o name -t snapshot -r "$TGT" | wc -l)"
t_eq "box powered off" 1 "$(lab_count_events poweroff)"
hozo_run jobs run rs
t_eq "a normal run still fails in preflight (the new copy is not swapped in)" preflight "$(state_get rs 'r["failed_stage"]')"

t_log "4. reseed --replace: the old target moved aside, the new one in place; the next run is incremental"
sleep 1.1  # a new UTC second, so the names differ from the first re-seed's
hozo_run jobs reseed rs --yes --replace
t_eq "reseed --replace exits 0" 0 "$HOZO_RC"
t_eq "recorded as replaced" replaced "$(state_get rs 'r["reseed"]')"
t_eq "the target holds the source's data" "$(sums_of "$SRC")" "$(sums_of "$TGT")"
t_eq "the old target was moved aside, not destroyed" 1 "$(datasets_like "^$TGT.old-")"
t_eq "the first re-seed's copy is still there" 1 "$(zfs list -H -o name "$new1" | wc -l)"
held=$(state_get rs '[d["held_snapshot"] for d in r["datasets"]][0]')
t_eq "the new target's verified snapshot is held" 1 "$(zfs get -H -p -o value userrefs "$TGT@$held")"
sleep 1.1
echo "after the repair" >"$LAB_SRC_MNT/other/later.txt"
zfs snapshot "$SRC@later"
hozo_run jobs run rs
t_eq "the next normal run exits 0" 0 "$HOZO_RC"
t_check "and was incremental" grep -q "incremental" "$(state_get rs 'r["log_file"]')"
t_eq "target equals the source again" "$(sums_of "$SRC")" "$(sums_of "$TGT")"

t_log "5. an intact chain is left alone; --dataset --replace --force re-seeds it anyway and destroys the old copy"
hozo_run jobs reseed rs --yes
t_eq "intact chain: exits 0" 0 "$HOZO_RC"
t_eq "recorded as nothing re-seeded" none "$(state_get rs 'r["reseed"]')"
t_eq "no new dataset" 1 "$(datasets_like "^$TGT.reseed-")"
sleep 1.1
hozo_run jobs reseed rs --yes --dataset "$SRC" --replace --force
t_eq "--force exits 0" 0 "$HOZO_RC"
t_eq "one old copy destroyed, the earlier one kept" 1 "$(datasets_like "^$TGT.old-")"
t_eq "target equals the source" "$(sums_of "$SRC")" "$(sums_of "$TGT")"
hozo_run jobs run rs
t_eq "and the next run still succeeds" 0 "$HOZO_RC"

t_done
