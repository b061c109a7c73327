#!/usr/bin/env bash
# Lab: `hozo check` (issue 7), the online preflight, against the real box: a box that is off is
# left off without --wake; --wake wakes it, every check passes and the box is off again; unknown
# host keys, missing source datasets and a wrong target pool are ✗ with exit 1; --json parses.
# Nothing is ever created or received on the target.
set -uo pipefail
LAB_ID=${LAB_ID:-chk$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

target_tree() { zfs list -H -o name -r "$LAB_TGT_POOL" | sort | tr '\n' ' '; }
# The status symbol of the row NAME in $T_OUT ("✓", "!", "✗", "-"), first match.
row() { awk -v n="$1" '{ line = $0; sub(/^  /, "", line); sym = substr(line, 1, index(line, " ") - 1);
  rest = substr(line, index(line, " ") + 1); if (index(rest, n) == 1) { print sym; exit } }' "$T_OUT"; }
show_out() { sed 's/^/    out: /' "$T_OUT" >&2; }

# ------------------------------------------------------------------------------------------
t_log "1. box off, no --wake: local checks pass, remote rows skipped, box left off, no packet"
write_config nightly "recursive: true"
before=$(target_tree)
lab_mark_events
hozo_run check nightly
show_out
t_eq "exit 0 (a box that is off is a warning only)" 0 "$HOZO_RC"
t_eq "config ✓" "✓" "$(row config)"
t_eq "syncoid ✓" "✓" "$(row syncoid)"
t_eq "source ✓" "✓" "$(row "source $LAB_SRC_POOL/data")"
t_eq "wol settings ✓ (limited broadcast)" "✓" "$(row "wol settings")"
t_eq "host is a warning" "!" "$(row host)"
t_check "host row says to use --wake" grep -q "check nightly --wake" "$T_OUT"
t_eq "host key skipped" "-" "$(row "host key")"
t_eq "ssh login skipped" "-" "$(row "ssh login")"
t_check "skipped rows say why" grep -q "box is off; use --wake" "$T_OUT"
t_eq "box still off" off "$(lab_box_state)"
t_eq "no magic packet received" 0 "$(lab_count_events wol_received)"

# ------------------------------------------------------------------------------------------
t_log "2. --wake: box woken, every check ✓, powered off again, nothing created on the target"
lab_mark_events
: >"$LAB_BOX_DIR/zfs-calls.log" 2>/dev/null || true
hozo_run check nightly --wake
show_out
t_eq "exit 0" 0 "$HOZO_RC"
t_eq "no ✗, ! or - rows" 0 "$(grep -cE '^  [!✗-] ' "$T_OUT")"
for name in host "host key" "ssh login" "zfs (box)" "pool $LAB_TGT_POOL" "target $LAB_TGT_ROOT/data" permissions \
  "space $LAB_TGT_ROOT/data" "power off"; do
  t_eq "$name ✓" "✓" "$(row "$name")"
done
t_check "host row says it was woken" grep -q "woken, answered after" "$T_OUT"
t_check "target: first sync is a full send" grep -q "first sync is a full send into $LAB_TGT_ROOT" "$T_OUT"
t_check "space row names an estimate and the free space" grep -qE "to send, .* available on $LAB_TGT_ROOT" "$T_OUT"
t_check "the box got a magic packet" test "$(lab_count_events wol_received)" -ge 1
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
t_eq "box is off again" off "$(lab_box_state)"
t_eq "target tree unchanged" "$before" "$(target_tree)"
t_check "check ran zfs on the box (its calls are logged)" test -s "$LAB_BOX_DIR/zfs-calls.log"
t_check "no receive/create/destroy/snapshot ran on the box" \
  bash -c "! grep -qE ' (receive|recv|create|destroy|snapshot|rollback|set) ' '$LAB_BOX_DIR/zfs-calls.log' 2>/dev/null"
t_check "every local zfs send was a dry run (-n)" \
  bash -c "! grep ' send ' '$LAB_DIR/orch-zfs-calls.log' 2>/dev/null | grep -qv ' send -n '"
t_check "no woken marker left behind" bash -c "! ls '$LAB_DIR'/state/hosts/*.woken >/dev/null 2>&1"

# ------------------------------------------------------------------------------------------
t_log "3. unknown host key (strict): ✗ with the hostkey fix, exit 1"
kh=$LAB_DIR/kh-empty
: >"$kh"
box_on
write_config nightly "recursive: true" "known_hosts: $kh"
hozo_run check nightly
show_out
t_eq "exit 1" 1 "$HOZO_RC"
t_eq "host ✓ (already on)" "✓" "$(row host)"
t_eq "host key ✗" "✗" "$(row "host key")"
t_check "the fix names hozo hostkey --accept" grep -q 'fix: run `hozo hostkey nightly --accept`' "$T_OUT"
t_check "the detail shows the fingerprint" grep -q "SHA256:" "$T_OUT"
t_eq "ssh login skipped" "-" "$(row "ssh login")"
t_check "known_hosts still empty" test ! -s "$kh"
t_eq "box already on: left on" on "$(lab_box_state)"
t_check "no power off row for a box check did not wake" bash -c "! grep -q 'power off' '$T_OUT'"

# ------------------------------------------------------------------------------------------
t_log "4. a missing source dataset: ✗, exit 1"
write_config nightly "source: $LAB_SRC_POOL/nope"
hozo_run check nightly
show_out
t_eq "exit 1" 1 "$HOZO_RC"
t_eq "source ✗" "✗" "$(row "source $LAB_SRC_POOL/nope")"
t_check "says it does not exist" grep -q "$LAB_SRC_POOL/nope does not exist" "$T_OUT"

# ------------------------------------------------------------------------------------------
t_log "5. the target pool does not exist on the box: ✗, exit 1"
write_config nightly "target_dataset: nosuch$LAB_ID/data"
hozo_run check nightly
show_out
t_eq "exit 1" 1 "$HOZO_RC"
t_eq "pool ✗" "✗" "$(row "pool nosuch$LAB_ID")"
t_check "fix says to check the pool name" grep -q "check the pool part of target_dataset" "$T_OUT"
t_eq "target row skipped" "-" "$(row "target nosuch$LAB_ID/data")"
t_check "nothing imported or created" test "$before" = "$(target_tree)"

# ------------------------------------------------------------------------------------------
t_log "6. --json (box on, --wake given): parses, has rows, leaves a box it did not wake on"
write_config nightly "recursive: true"
lab_mark_events
hozo_run --json check nightly --wake
t_eq "exit 0" 0 "$HOZO_RC"
t_eq "ok true" True "$(json_get "$T_OUT" 'd["ok"]')"
t_eq "one job" 1 "$(json_get "$T_OUT" 'len(d["jobs"])')"
t_check "more than 10 rows" test "$(json_get "$T_OUT" 'len(d["jobs"][0]["rows"])')" -gt 10
t_eq "every row has name/status/detail/fix" True \
  "$(json_get "$T_OUT" 'all(set(r) == {"name","status","detail","fix"} for r in d["jobs"][0]["rows"])')"
t_eq "all rows ok" True "$(json_get "$T_OUT" 'all(r["status"] == "ok" for r in d["jobs"][0]["rows"])')"
t_eq "woke false" False "$(json_get "$T_OUT" 'd["jobs"][0]["woke"]')"
t_eq "no power off" 0 "$(lab_count_events poweroff)"
t_eq "box still on" on "$(lab_box_state)"
write_config nightly "source: $LAB_SRC_POOL/nope"
hozo_run --json check nightly
t_eq "failing check: exit 1" 1 "$HOZO_RC"
t_eq "failing check: the source row is fail in JSON" fail \
  "$(json_get "$T_OUT" '[r["status"] for r in d["jobs"][0]["rows"] if r["name"].startswith("source")][0]')"
t_check "failing check: the fix is in the JSON" test -n \
  "$(json_get "$T_OUT" '[r["fix"] for r in d["jobs"][0]["rows"] if r["name"].startswith("source")][0]')"
box_off

# ------------------------------------------------------------------------------------------
t_log "7. usage: no job, unknown job -> exit 2"
write_config nightly
hozo_run check
t_eq "no NAME and no --all: exit 2" 2 "$HOZO_RC"
hozo_run check nosuchjob
t_eq "unknown job: exit 2" 2 "$HOZO_RC"
hozo_run check --all
t_eq "--all with the box off: exit 0" 0 "$HOZO_RC"

# ------------------------------------------------------------------------------------------
t_log "8. --all --wake with two jobs on the same box: woken once, powered off once, after the last"
write_config nightly
sed -n '/^  - name: nightly/,$p' "$T_CONFIG" | sed 's/name: nightly/name: weekly/' >>"$T_CONFIG"
lab_mark_events
hozo_run --json check --all --wake
t_eq "exit 0" 0 "$HOZO_RC"
t_eq "two jobs checked" "nightly weekly" "$(json_get "$T_OUT" '" ".join(j["job"] for j in d["jobs"])')"
t_eq "one boot" 1 "$(lab_count_events boot_started)"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
t_eq "the last job's report powered it off" "False True" \
  "$(json_get "$T_OUT" '" ".join(str(j["powered_off"]) for j in d["jobs"])')"
t_eq "box is off again" off "$(lab_box_state)"
t_check "no woken marker left behind" bash -c "! ls '$LAB_DIR'/state/hosts/*.woken >/dev/null 2>&1"

t_done
