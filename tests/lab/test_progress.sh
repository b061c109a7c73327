#!/usr/bin/env bash
# Lab: what a run moved and how to watch it. A 20 MiB full send slowed to 2 MiB/s records the bytes
# pv counted (within 10 % of the dataset's referenced size) and syncoid's estimate; while it runs
# the progress file appears and advances (at most every 2 s) and `hozo status` shows it instead of
# an outcome; afterwards the file is gone; `hozo logs -f` ends when the run ends; `status --check`
# exits 0 (ok), 1 (last run failed), 2 (overdue) and 3 (state unreadable).
set -uo pipefail
LAB_ID=${LAB_ID:-prg$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap 'set +e; [[ -n ${run_pid:-} ]] && kill "$run_pid" 2>/dev/null; [[ -n ${logs_pid:-} ]] && kill "$logs_pid" 2>/dev/null; lab_down' EXIT
lab_up || exit 1

runs_dir() { echo "$LAB_DIR/state/runs/$1"; }
# run_get JOB EXPR: EXPR over the newest run file of JOB (the run is `r`).
run_get() {
  "$LAB_PY" -c 'import glob,json,sys; f=sorted(glob.glob(sys.argv[1]+"/*.json"))[-1]; r=json.load(open(f)); print(eval(sys.argv[2]))' \
    "$(runs_dir "$1")" "$2"
}
hozo_bg() { # OUTFILE ARGS...: hozo in the orchestrator namespace, in the background; sets BG_PID
  local out=$1
  shift
  ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
    "$HOZO_BIN" -c "$T_CONFIG" --state "$T_STATE" "$@" >"$out" 2>"$out.err" </dev/null &
  BG_PID=$!
}

t_log "1. a 20 MiB full send at 2 MiB/s: bytes, progress while it runs, status, logs -f"
zfs create "$LAB_SRC_POOL/big"
head -c 20M /dev/urandom >"$LAB_SRC_MNT/big/blob"
lab_send_estimate on  # syncoid gets a size estimate as from OpenZFS (zfs-fuse has no send -nvP)
write_config big "source: $LAB_SRC_POOL/big" "target_dataset: $LAB_TGT_ROOT/big" "recursive: false" "retries: 0" \
  "schedule: daily" "syncoid:" "  source_bwlimit: 2M" "  extra_args: [\"--mbuffer-size=1M\"]"
hozo_bg "$LAB_DIR/run.out" jobs run big
run_pid=$BG_PID
# The progress poller: every change of the progress file, as one line, until the run ends.
"$LAB_PY" - "$(runs_dir big)" "$run_pid" >"$LAB_DIR/samples.txt" <<'EOF' &
import glob, json, os, sys, time
d, pid = sys.argv[1], int(sys.argv[2])
def alive():
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
last = None
while alive():
    for p in glob.glob(d + "/*.progress"):
        try:
            j = json.load(open(p))
        except (OSError, ValueError):
            continue
        line = (j["stage"], j["dataset"] or "-", j["bytes_done"], j["bytes_total"], int(j["bytes_per_second"]),
                round(j["eta_seconds"], 1), j["updated"], round(time.monotonic(), 2))
        if last is None or last[:7] != line[:7]:
            print(*line, flush=True)
            last = line
    time.sleep(0.2)
EOF
poller_pid=$!
# Once bytes are moving: status (table and --json) of the running job, and logs -f.
for _ in $(seq 1 150); do
  awk '$1 == "sync" && $3 > 0 { found = 1 } END { exit !found }' "$LAB_DIR/samples.txt" 2>/dev/null && break
  sleep 0.2
done
hozo_bg "$LAB_DIR/logs.out" logs big -f
logs_pid=$BG_PID
hozo_run status big
cp "$T_OUT" "$LAB_DIR/status-running.txt"
sed 's/^/    status: /' "$T_OUT"
t_check "status shows the live progress" grep -q "progress   sync $LAB_SRC_POOL/big: .* of .*, .*/s, ETA" "$T_OUT"
t_check "status shows the run as running with its pid" grep -q "outcome    running (pid " "$T_OUT"
t_check "no 'outcome running (exit 0)' while running" bash -c "! grep -q 'running (exit 0)' '$T_OUT'"
t_check "no 'shutdown not_requested' while running" bash -c "! grep -q 'shutdown   not_requested' '$T_OUT'"
hozo_run status big --json
t_eq "--json: last.outcome" running "$(json_get "$T_OUT" 'd["last"]["outcome"]')"
t_eq "--json: progress.stage" sync "$(json_get "$T_OUT" 'd["progress"]["stage"]')"
t_check "--json: progress.bytes_done > 0" test "$(json_get "$T_OUT" 'd["progress"]["bytes_done"]')" -gt 0
wait "$run_pid"
rc=$?
run_pid=
wait "$poller_pid"
t_eq "the run exits 0" 0 "$rc"
sed 's/^/    progress: /' "$LAB_DIR/samples.txt"
n_sync=$(awk '$1 == "sync" && $3 > 0' "$LAB_DIR/samples.txt" | wc -l)
t_check "the progress file advanced during the send ($n_sync updates with bytes)" test "$n_sync" -ge 2
t_check "bytes done only grow" awk '$1 == "sync" && $3 > 0 { if ($3 < prev) exit 1; prev = $3 }' "$LAB_DIR/samples.txt"
t_check "the total is syncoid's estimate (> 19 MiB)" awk '$1 == "sync" && $3 > 0 { if ($4 < 19 * 1048576) exit 1 }' "$LAB_DIR/samples.txt"
t_check "a rate and an ETA" awk '$1 == "sync" && $3 > 0 { if ($5 > 0 && $6 >= 0) ok = 1 } END { exit !ok }' "$LAB_DIR/samples.txt"
t_check "updates at most every 2 s" awk '$1 == "sync" && $3 > 0 { if (n++ && $8 - prev < 1.8) exit 1; prev = $8 }' "$LAB_DIR/samples.txt"
t_check "stages before and after the send were shown too" bash -c "grep -q '^wake\|^wait\|^connect' '$LAB_DIR/samples.txt' && grep -q '^shutdown' '$LAB_DIR/samples.txt'"
t_check "the progress file is gone after the run" bash -c "! ls '$(runs_dir big)'/*.progress 2>/dev/null"
referenced=$(zfs get -H -p -o value referenced "$LAB_SRC_POOL/big")
bytes=$(run_get big 'r["transfers"][0]["bytes"]')
echo "    referenced $referenced, recorded $bytes ($(run_get big 'r["transfers"][0]["bytes_from"]')), estimated $(run_get big 'r["transfers"][0]["estimated_bytes"]'), $(run_get big 'round(r["transfers"][0]["seconds"], 1)') s, $(run_get big 'int(r["transfers"][0]["bytes_per_second"])') B/s"
t_check "bytes recorded within 10 % of the referenced size" "$LAB_PY" -c "import sys; sys.exit(abs($bytes - $referenced) > 0.1 * $referenced)"
t_eq "counted by pv" pv "$(run_get big 'r["transfers"][0]["bytes_from"]')"
t_eq "bytes_sent is the sum" "$bytes" "$(run_get big 'r["bytes_sent"]')"
t_check "the estimate within 10 % too" "$LAB_PY" -c "import sys; e = $(run_get big 'r["transfers"][0]["estimated_bytes"]'); sys.exit(abs(e - $referenced) > 0.1 * $referenced)"
t_check "the average rate reflects the 2 MiB/s limit" "$LAB_PY" -c "import sys; r = $(run_get big 'r["transfers"][0]["bytes_per_second"]'); sys.exit(not 0.5 * 1048576 < r < 3 * 1048576)"
hozo_run status big
t_check "status shows the bytes sent" grep -q "sent       $LAB_SRC_POOL/big → $LAB_TGT_ROOT/big: 20.[0-9] MiB in" "$T_OUT"
grep "sent " "$T_OUT" | sed 's/^/    /'
for _ in $(seq 1 50); do kill -0 "$logs_pid" 2>/dev/null || break; sleep 0.1; done
t_check "logs -f ended when the run ended" bash -c "! kill -0 $logs_pid 2>/dev/null"
wait "$logs_pid" 2>/dev/null
t_eq "logs -f exits 0" 0 "$?"
logs_pid=
t_check "logs -f printed the run to its end" grep -q "\[big\] shutdown: done" "$LAB_DIR/logs.out"
grep -E "sent|shutdown" "$LAB_DIR/logs.out" | sed "s/^/    logs -f: /"

t_log "2. status --check: 0 ok, 2 overdue, 1 failed, 3 state unreadable"
hozo_run status --check big
t_eq "ok: exit 0" 0 "$HOZO_RC"
sed 's/^/    /' "$T_OUT"
t_check "one plugin line with the bytes" grep -q "^HOZO OK - big: last run .* ok; last success .* | age=[0-9]*s;;[0-9]* bytes=[0-9]*B" "$T_OUT"
write_config big "source: $LAB_SRC_POOL/big" "target_dataset: $LAB_TGT_ROOT/big" "schedule: daily" "overdue_after: 1"
sleep 1.5
hozo_run status --check big
t_eq "overdue: exit 2" 2 "$HOZO_RC"
sed 's/^/    /' "$T_OUT"
write_config dead "mac_address: \"02:00:5e:10:00:99\"" "ssh_timeout: 2" "retries: 0"
hozo_run jobs run dead
t_check "a box that never answers fails the run" test "$HOZO_RC" -ne 0
hozo_run status --check dead
t_eq "last run failed: exit 1" 1 "$HOZO_RC"
sed 's/^/    /' "$T_OUT"
mkdir -p "$LAB_DIR/broken/state.json.lock"
T_STATE_SAVED=$T_STATE
T_STATE=$LAB_DIR/broken/state.json
hozo_run status --check dead
t_eq "state unreadable: exit 3" 3 "$HOZO_RC"
sed 's/^/    /' "$T_OUT"
T_STATE=$T_STATE_SAVED

t_done
