#!/usr/bin/env bash
# Lab: `hozo jobs run` end to end with real sshd, real syncoid and real zfs-fuse (issue: the job
# pipeline). Each scenario asserts exit code, state file, power events and data.
set -uo pipefail
LAB_ID=${LAB_ID:-pipe$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

same_data() { # SOURCE_DIR TARGET_DIR: same files with the same sha256, and not empty
  remount_tree "$(zfs list -H -o name "$2")"
  lab_tree_sums "$1" >"$LAB_DIR/sums.src"
  lab_tree_sums "$2" >"$LAB_DIR/sums.tgt"
  [[ -s $LAB_DIR/sums.src ]] && diff "$LAB_DIR/sums.src" "$LAB_DIR/sums.tgt" >&2
}
# "[s]" keeps pgrep -f from matching a shell whose own command line holds the pattern.
syncoid_running() { pgrep -f "[s]yncoid.*$LAB_SRC_POOL" >/dev/null; }

# ------------------------------------------------------------------------------------------
t_log "1. box off -> full run -> data equal, verified, box powered off; second run incremental"
write_config nightly "recursive: true"
lab_mark_events
hozo_run jobs run nightly
t_eq "full run exits 0" 0 "$HOZO_RC"
t_eq "outcome success" success "$(state_get nightly 'r["outcome"]')"
t_eq "hozo woke the box" True "$(state_get nightly 'r["woke_host"]')"
t_eq "shutdown done" done "$(state_get nightly 'r["shutdown"]["outcome"]')"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
t_eq "box is off again" off "$(lab_box_state)"
t_eq "two datasets verified (data, data/child)" "2 True" \
  "$(state_get nightly 'str(len(r["datasets"])) + " " + str(all(d["guid_match"] for d in r["datasets"]))')"
t_check "target data equals source (sha256 of every file)" same_data "$LAB_SRC_MNT/data" "$LAB_TGT_MNT/backup/data"
t_check "child dataset equal too" same_data "$LAB_SRC_MNT/data/child" "$LAB_TGT_MNT/backup/data/child"
t_check "stages recorded in order" test "$(state_get nightly '",".join(s["name"] for s in r["stages"])')" = \
  "preflight,lock,wake,wait,connect,pool,sync,verify,shutdown"
log1=$(state_get nightly 'r["log_file"]')
t_check "run log has syncoid's output" grep -q "syncoid" "$log1"
t_eq "preflight ran the matrix's syncoid" "syncoid ${LAB_SYNCOID:-2.1.0} at" \
  "$(state_get nightly '[s["message"] for s in r["stages"] if s["name"] == "preflight"][0]' | grep -o 'syncoid [0-9.]* at')"
echo "new data $(date)" >"$LAB_SRC_MNT/data/second-run.txt"
zfs snapshot -r "$LAB_SRC_POOL/data@second"
lab_mark_events
hozo_run jobs run nightly
t_eq "second run exits 0" 0 "$HOZO_RC"
log2=$(state_get nightly 'r["log_file"]')
t_check "second run is incremental" grep -qi "incremental" "$log2"
t_check "new file arrived" same_data "$LAB_SRC_MNT/data" "$LAB_TGT_MNT/backup/data"
t_eq "one power-off for the second run" 1 "$(lab_count_events poweroff)"

# ------------------------------------------------------------------------------------------
t_log "2. box already on -> backup done, box left on"
box_on
lab_mark_events
hozo_run jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_eq "recorded as already up" True "$(state_get nightly 'r["was_up_before"]')"
t_eq "shutdown skipped (not woken by hozo)" skipped_not_woken "$(state_get nightly 'r["shutdown"]["outcome"]')"
t_eq "no power-off" 0 "$(lab_count_events poweroff)"
t_eq "box still on" on "$(lab_box_state)"

t_log "2b. a source dataset that does not exist -> the sync fails with every syncoid (2.1.0 itself exits 0)"
write_config gone "source: $LAB_SRC_POOL/no-such-dataset" "target_dataset: $LAB_TGT_ROOT/gone" "recursive: false"
hozo_run jobs run gone
t_check "run fails (exit $HOZO_RC)" test "$HOZO_RC" -ne 0
t_eq "failed stage" sync "$(state_get gone 'r["failed_stage"]')"
gone_error=$(state_get gone 'r["error"]')
t_check "the error says the source does not exist" grep -q "does not exist" <<<"$gone_error" || echo "    error: $gone_error"

# ------------------------------------------------------------------------------------------
t_log "5. target busy once (a zfs receive in progress) -> retried -> success with attempts=2"
# A process that looks like `zfs receive ... TARGET` on the box for 4 s: syncoid exits 1 ("already
# target of a zfs receive process"), a transient failure.
box_on
# (perl's $0 sets the whole process title, as `ps -Ao args=` shows it to syncoid)
lab_ssh "nohup perl -e '\$0 = \"zfs receive -F $LAB_TGT_ROOT/data\"; sleep 4' >/dev/null 2>&1 &"
write_config nightly "recursive: true" "retry_delay: 5"
hozo_run jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_eq "attempts=2" 2 "$(state_get nightly 'r["attempts"]')"
t_check "first attempt failed because the target was busy" grep -q "already target of a zfs receive" \
  "$(state_get nightly 'r["log_file"]')"
box_off

# ------------------------------------------------------------------------------------------
t_log "3. box never wakes -> exit 69, failed stage wait"
lab_powersim_restart --never-boot
write_config nightly "recursive: true" "ssh_timeout: 3"
hozo_run jobs run nightly
t_eq "exit 69" 69 "$HOZO_RC"
t_eq "failed stage wait" wait "$(state_get nightly 'r["failed_stage"]')"
t_eq "outcome failed" failed "$(state_get nightly 'r["outcome"]')"
lab_powersim_restart

t_log "3b. a box that boots slower than ssh_timeout: exit 69, and the next run powers it off (hozo woke it)"
lab_powersim_restart --boot-delay 5
write_config nightly "recursive: true" "ssh_timeout: 2"
lab_mark_events
hozo_run jobs run nightly
t_eq "the slow box: exit 69" 69 "$HOZO_RC"
lab_wait_event ssh_up 20 >/dev/null && t_pass "it came up afterwards" || t_fail "it never came up"
write_config nightly "recursive: true"
hozo_run jobs run nightly
t_eq "next run exits 0" 0 "$HOZO_RC"
t_eq "it found the box up" True "$(state_get nightly 'r["was_up_before"]')"
t_check "it knew the box was hozo's" grep -q "woken late by an earlier run" <<<"$(state_get nightly 'r["stages"][2]["message"]')"
t_eq "and powered it off" done "$(state_get nightly 'r["shutdown"]["outcome"]')"
t_eq "box is off" off "$(lab_box_state)"
lab_powersim_restart

# ------------------------------------------------------------------------------------------
t_log "4. host keys: strict + unknown fails before any transfer; accept-new pins; changed is refused"
kh=$LAB_DIR/kh-test
: >"$kh"
zfs destroy -r "$LAB_TGT_ROOT/other" 2>/dev/null
write_config other "source: $LAB_SRC_POOL/other" "target_dataset: $LAB_TGT_ROOT/other" "known_hosts: $kh"
hozo_run jobs run other
t_eq "strict + unknown key fails" 1 "$HOZO_RC"
t_eq "failed at connect" connect "$(state_get other 'r["failed_stage"]')"
t_check "error shows the fingerprint" grep -q "SHA256:" "$T_ERR"
t_check "nothing was transferred" bash -c "! zfs list $LAB_TGT_ROOT/other >/dev/null 2>&1"
# hozo never sends a command (not even the shutdown) to a host whose key it does not trust.
t_eq "no shutdown sent to an untrusted host" failed "$(state_get other 'r["shutdown"]["outcome"]')"
t_eq "so that box is still on" on "$(lab_box_state)"
box_off
write_config other "source: $LAB_SRC_POOL/other" "target_dataset: $LAB_TGT_ROOT/other" "known_hosts: $kh" \
  "host_key_policy: accept-new"
hozo_run jobs run other
t_eq "accept-new run exits 0" 0 "$HOZO_RC"
t_check "key pinned" grep -q "$LAB_BOX_IP" "$kh"
t_eq "box powered off by the pinned run" off "$(lab_box_state)"
ssh-keygen -q -t ed25519 -N '' -f "$LAB_DIR/impostor" <<<y >/dev/null 2>&1
echo "$LAB_BOX_IP $(cut -d' ' -f1,2 "$LAB_DIR/impostor.pub")" >"$kh"
hozo_run jobs run other
t_eq "changed key refused even with accept-new" 1 "$HOZO_RC"
t_check "error says the key changed" grep -qi "changed" "$T_ERR"

# ------------------------------------------------------------------------------------------
t_log "9. dataset names with shell metacharacters are rejected; nothing is executed"
for bad in 'pool/a;reboot' 'pool/$(touch /tmp/pwned)' 'pool/a b' "pool/'q'" '-rf'; do
  write_config nightly
  /usr/bin/python3 - "$T_CONFIG" "$bad" <<'PY'
import sys, re
p, bad = sys.argv[1], sys.argv[2]
s = open(p).read()
s = re.sub(r"(source: ).*", lambda m: m.group(1) + '"' + bad.replace('"', '\\"') + '"', s, count=1)
open(p, "w").write(s)
PY
  lab_mark_events
  hozo_run jobs run nightly
  t_eq "source '$bad' rejected with 78" 78 "$HOZO_RC"
  t_eq "no packet sent for '$bad'" 0 "$(lab_count_events wol_received)"
done
t_check "no injected file" test ! -e /tmp/pwned

# ------------------------------------------------------------------------------------------
# A slow transfer for scenarios 6 and 7: 4 MiB at 256 KiB/s.
zfs create "$LAB_SRC_POOL/big"
head -c 4194304 /dev/urandom >"$LAB_SRC_MNT/big/blob.bin"
zfs snapshot "$LAB_SRC_POOL/big@one"
slow_job() { # NAME
  write_config "$1" "source: $LAB_SRC_POOL/big" "target_dataset: $LAB_TGT_ROOT/big" "recursive: false" \
    "retries: 0" "ssh_connect_timeout: 3" "syncoid:" "  source_bwlimit: 256k"
}

t_log "7. SIGTERM during the transfer -> exit 130, interrupted, no syncoid left, box off"
box_off
slow_job big
lab_mark_events
ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
  "$HOZO_BIN" -c "$T_CONFIG" --state "$T_STATE" jobs run big >"$LAB_DIR/sig.out" 2>"$LAB_DIR/sig.err" &
hozo_pid=$!
for _ in $(seq 1 100); do syncoid_running && break; sleep 0.2; done
sleep 2
kill -TERM "$hozo_pid"
wait "$hozo_pid"
rc=$?
t_eq "exit 130" 130 "$rc"
t_eq "recorded as interrupted" interrupted "$(state_get big 'r["outcome"]')"
t_check "no syncoid left running" bash -c "! pgrep -f '[s]yncoid.*$LAB_SRC_POOL/big'"
t_check "no zfs send left running" bash -c "! pgrep -f '[z]fs send.*$LAB_SRC_POOL/big'"
t_eq "box powered off" 1 "$(lab_count_events poweroff)"
t_eq "shutdown recorded" done "$(state_get big 'r["shutdown"]["outcome"]')"

t_log "6. link cut mid-transfer -> bounded failure, box powered off, state says why"
zfs destroy -r "$LAB_TGT_ROOT/big" 2>/dev/null
box_off
lab_mark_events
start=$(date +%s)
ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
  "$HOZO_BIN" -c "$T_CONFIG" --state "$T_STATE" jobs run big >"$LAB_DIR/cut.out" 2>"$LAB_DIR/cut.err" &
hozo_pid=$!
for _ in $(seq 1 100); do syncoid_running && break; sleep 0.2; done
sleep 2
# Cut on the box's side (its bridge port for the orchestrator): packets vanish, the orchestrator's
# routes stay. (netem is not available on every kernel; a downed port works everywhere.)
ip -n "$LAB_NS_BOX" link set p-orch down
for _ in $(seq 1 300); do syncoid_running || break; sleep 0.2; done
ip -n "$LAB_NS_BOX" link set p-orch up
wait "$hozo_pid"
rc=$?
elapsed=$(($(date +%s) - start))
echo "measured: link-cut run ended after ${elapsed} s"
t_eq "exit 1" 1 "$rc"
t_eq "failed stage sync" sync "$(state_get big 'r["failed_stage"]')"
t_check "state says why" test -n "$(state_get big 'r["error"]')"
t_check "bounded (< 120 s)" test "$elapsed" -lt 120
t_eq "box powered off after the link came back" 1 "$(lab_count_events poweroff)"

# ------------------------------------------------------------------------------------------
t_log "8. two jobs to the same box at once -> both succeed, exactly one power-off, after the last"
box_off
T_CONFIG=$LAB_DIR/two.yaml
cat >"$T_CONFIG" <<YAML
settings:
  ssh_key: $LAB_SSH_KEY
  known_hosts: $LAB_KNOWN_HOSTS
  ssh_timeout: 30
jobs:
  - name: first
    source: $LAB_SRC_POOL/data
    target_host: $LAB_BOX_IP
    target_dataset: $LAB_TGT_ROOT/data
    mac_address: "$LAB_BOX_MAC"
  - name: second
    source: $LAB_SRC_POOL/other
    target_host: $LAB_BOX_IP
    target_dataset: $LAB_TGT_ROOT/other2
    mac_address: "$LAB_BOX_MAC"
YAML
lab_mark_events
for j in first second; do
  ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
    "$HOZO_BIN" -c "$T_CONFIG" --state "$T_STATE" jobs run "$j" >"$LAB_DIR/$j.out" 2>"$LAB_DIR/$j.err" &
  eval "pid_$j=\$!"
done
wait "$pid_first"; rc1=$?
wait "$pid_second"; rc2=$?
((rc1 == 0 && rc2 == 0)) || tail -n 5 "$LAB_DIR/first.err" "$LAB_DIR/second.err"
t_eq "first exits 0" 0 "$rc1"
t_eq "second exits 0" 0 "$rc2"
t_eq "exactly one power-off" 1 "$(lab_count_events poweroff)"
outcomes=$(for j in first second; do state_get "$j" 'r["shutdown"]["outcome"]'; done | sort | tr '\n' ' ')
t_eq "one job powered off, the other saw the box in use" "done skipped_in_use " "$outcomes"
last_done=$("$LAB_PY" - "$T_STATE" "$LAB_SRC_DIR" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import hozo_state
runs = {j: hozo_state.newest(sys.argv[1], j) for j in ("first", "second")}
done = [j for j, r in runs.items() if r["shutdown"]["outcome"] == "done"][0]
other = [j for j in runs if j != done][0]
print(runs[done]["finished"] >= runs[other]["finished"])
PY
)
t_eq "the power-off came from the job that finished last" True "$last_done"

t_done
