#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2119 # functions run from traps / other shells; lab_wake takes no args here
# Hōzō benchmarks: prints ONE Markdown table (metric | value | notes) on stdout; progress goes to
# stderr. This is a benchmark, not a test: nothing here asserts on time (performance goals are
# checked by reading this table, never by timed tests). See tests/bench/README.md.
#
#   sudo tests/bench/run_bench.sh
#
# Environment: HOZO_BUILD_DIR (default <repo>/build), HOZO_BIN (default $HOZO_BUILD_DIR/hozo),
# ZFS_PARSE_BENCH (a built zfs_parse_bench; default: the CMake target if configured, else compiled
# here), STATE_BENCH (a built state_bench), BENCH_ONLY=state (sections 4-6 only, no lab) or lab (sections 1-3 only), BENCH_RUNS (timed repetitions, default 5), BENCH_CLI_RUNS (section 4's timed `jobs list` and `status`, default 21), BENCH_UNSTRIPPED=1 (time the build's binary, not a stripped copy like the .deb's), BENCH_PAIRS (hozo/syncoid pairs of section 2, default 11), BENCH_KEEP=1 (keep the work dir), LAB_ID
# (default bn<pid>).
#
# Sections 1-3 bring up their own lab (tests/lab/lab.sh: network namespaces, a sleeping box with a
# real sshd, zfs-fuse pools); all their traffic stays on the lab's veths. Sections 4-5 need no
# network: section 4 runs hozo inside a fresh, empty network namespace (unshare --net) so nothing
# could leave the machine even if hozo tried; section 5 is a local program.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${HOZO_BUILD_DIR:-$ROOT/build}
HOZO_BIN=${HOZO_BIN:-$BUILD/hozo}
RUNS=${BENCH_RUNS:-5}
CLI_RUNS=${BENCH_CLI_RUNS:-21} # section 4: a `status` takes milliseconds, and this VM's speed drifts by +-30 % between runs
PAIRS=${BENCH_PAIRS:-11} # section 2: syncoid alone varies by +-100 ms between runs, the size of the goal
PY=/usr/bin/python3
TIME_BIN=/usr/bin/time

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  printf 'run_bench: ERROR: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# prerequisites
# ---------------------------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "needs root (lab network namespaces, zfs-fuse); run: sudo $0"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer (got '$RUNS')"
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "BENCH_PAIRS must be a positive integer (got '$PAIRS')"
[[ $CLI_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CLI_RUNS must be a positive integer (got '$CLI_RUNS')"
[[ -x $PY ]] || die "$PY missing (apt-get install python3)"
command -v unshare >/dev/null || die "unshare (util-linux) missing"
if [[ ! -x $TIME_BIN ]]; then
  log "GNU time missing; installing the Debian package 'time'"
  apt-get install -y -qq time >/dev/null 2>&1 || die "$TIME_BIN missing and 'apt-get install time' failed"
fi
if [[ ! -x $HOZO_BIN ]]; then
  [[ -f $BUILD/build.ninja || -f $BUILD/Makefile ]] || die "$HOZO_BIN missing and $BUILD is not a configured build dir (cmake -S $ROOT -B $BUILD -G Ninja)"
  log "building hozo ($BUILD)"
  cmake --build "$BUILD" --target hozo >&2 || die "building hozo failed"
fi
HOZO_BIN=$(cd "$(dirname "$HOZO_BIN")" && pwd)/$(basename "$HOZO_BIN")

WORK=$(mktemp -d /tmp/hozo-bench.XXXXXX) || die "mktemp failed"
chmod 700 "$WORK"
# The binary users run is the .deb's, which cpack strips (CPACK_STRIP_FILES): a RelWithDebInfo
# build is ~50 times its size, and on a machine whose page cache is cold (a nightly timer, or this
# VM, which evicts file pages within seconds) every start reads more of it back. BENCH_UNSTRIPPED=1
# times the build's binary as it is.
HOZO_BUILT=$HOZO_BIN
if [[ ${BENCH_UNSTRIPPED:-0} != 1 ]]; then
  strip -o "$WORK/hozo" "$HOZO_BIN" || die "strip $HOZO_BIN failed (binutils)"
  HOZO_BIN=$WORK/hozo
fi
LAB_ID=${LAB_ID:-bn$$}
LAB_IS_UP=0
TAIL_PID=
# shellcheck source=SCRIPTDIR/../lab/lab.sh
source "$ROOT/tests/lab/lab.sh"
# shellcheck source=SCRIPTDIR/../lab/testlib.sh
source "$ROOT/tests/lab/testlib.sh" # write_config

cleanup() {
  [[ -n $TAIL_PID ]] && kill "$TAIL_PID" 2>/dev/null
  if [[ $LAB_IS_UP == 1 ]]; then
    log "tearing the lab down"
    lab_down
  fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $WORK (BENCH_KEEP=1)"; else rm -rf --one-file-system "$WORK"; fi
}
trap 'rc=$?; set +e; trap - EXIT INT TERM; cleanup; exit $rc' EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# table and statistics
# ---------------------------------------------------------------------------------------------
ROWS=()
FAILED=0
row() { ROWS+=("| $1 | $2 | $3 |"); } # METRIC VALUE NOTES
# A section that could not be measured still gets its row, with the reason.
row_failed() { # METRIC REASON
  FAILED=1
  ROWS+=("| $1 | n/a | FAILED: ${2//|//} |")
  log "FAILED: $1: $2"
}

# stats FILE: one number per line -> "median max min n" (ms values, 1 decimal)
stats() {
  "$PY" - "$1" <<'PY'
import statistics, sys
v = [float(x) for x in open(sys.argv[1]) if x.strip()]
if not v:
    sys.exit("no samples")
print(f"{statistics.median(v):.1f} {max(v):.1f} {min(v):.1f} {len(v)}")
PY
}
now_us() { echo "${EPOCHREALTIME/./}"; }                                # wall clock, microseconds
ms_since() { "$PY" -c 'import sys; print(f"{(int(sys.argv[2]) - int(sys.argv[1])) / 1000:.3f}")' "$1" "$(now_us)"; }


# ---------------------------------------------------------------------------------------------
# hozo in the lab's orchestrator namespace, with peak-RSS accounting
# ---------------------------------------------------------------------------------------------
CFG=
STATE=
HWM_KB=0        # VmHWM of the last hozo_lab run (the hozo process itself)
TREE_KB=0       # /usr/bin/time "Maximum resident set size" of the last run (hozo and its children)
HOZO_RC=0
# hozo_lab ARGS...: runs hozo like the lab tests do; stdout/stderr to $WORK/hozo.{out,err}.
# /usr/bin/time -v wraps it (ru_maxrss of the tree); a small poller reads the hozo process's own
# VmHWM from /proc every 5 ms (the high-water mark only grows, so its last reading is the peak).
# HOZO_LAB_POLL=0 (the timed runs of section 2) runs without the poller so it cannot skew them.
hozo_lab() {
  "$TIME_BIN" -v -o "$WORK/time.out" \
    ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
    "$HOZO_BIN" -c "$CFG" --state "$STATE" "$@" >"$WORK/hozo.out" 2>"$WORK/hozo.err" </dev/null &
  local tpid=$! ppid=""
  : >"$WORK/hwm"
  if [[ ${HOZO_LAB_POLL:-1} == 1 ]]; then
    "$PY" - "$tpid" >"$WORK/hwm" 2>/dev/null <<'PY' &
import sys, time
tpid = sys.argv[1]
child = None
# /usr/bin/time forks once; `ip netns exec` and `env` exec in place, so its child IS hozo.
for _ in range(3000):
    try:
        kids = open(f"/proc/{tpid}/task/{tpid}/children").read().split()
    except OSError:
        break
    if kids:
        child = kids[0]
        break
    time.sleep(0.001)
hwm = 0
while child:
    try:
        with open(f"/proc/{child}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
                    break
    except OSError:
        break  # reaped
    time.sleep(0.005)
print(hwm)
PY
    ppid=$!
  fi
  HOZO_RC=0
  wait "$tpid" || HOZO_RC=$?
  [[ -n $ppid ]] && wait "$ppid"
  HWM_KB=$(cat "$WORK/hwm" 2>/dev/null)
  HWM_KB=${HWM_KB:-0}
  TREE_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.out" 2>/dev/null)
  TREE_KB=${TREE_KB:-0}
  return 0
}
# syncoid names its sync snapshot to the second: two runs starting in the same second collide
# ("dataset already exists"). Waits (outside any timed part) until the next second begins.
next_second() {
  local us=$((1020000 - 10#${EPOCHREALTIME#*.})) # to the next second, plus 20 ms
  sleep "$((us / 1000000)).$(printf '%06d' $((us % 1000000)))"
}
hozo_failed() { # WHAT: logs hozo's stderr tail, returns 1
  log "$1: hozo exited $HOZO_RC; last lines of its stderr:"
  tail -n 15 "$WORK/hozo.err" | sed 's/^/    /' >&2
  return 1
}
box_wait_state() { # STATE [TIMEOUT_S]
  local i
  for ((i = 0; i < ${2:-10} * 20; i++)); do
    [[ $(lab_box_state) == "$1" ]] && return 0
    sleep 0.05
  done
  return 1
}
RSS_HOZO=()  # VmHWM (kB) of every measured hozo jobs run
RSS_TREE=()  # /usr/bin/time max RSS (kB) of every measured hozo jobs run
RSS_SYNCOID=()

# =============================================================================================
# 5. snapshot-list parsing (no lab): tests/bench/zfs_parse_bench.cpp against the existing build
# =============================================================================================
bench_parse() {
  local exe="" how
  if [[ -n ${ZFS_PARSE_BENCH:-} ]]; then
    # Given (the CMake `bench` target passes $<TARGET_FILE:zfs_parse_bench>).
    [[ -x $ZFS_PARSE_BENCH ]] || { row_failed "parse 100k snapshots" "ZFS_PARSE_BENCH=$ZFS_PARSE_BENCH is not executable"; return; }
    exe=$ZFS_PARSE_BENCH
    how="$exe"
  elif [[ -f $BUILD/build.ninja ]] && grep -q '^build tests/bench/zfs_parse_bench:' "$BUILD/build.ninja"; then
    # The lead wired tests/bench/CMakeLists.txt in (add_subdirectory): use the CMake target.
    log "5. building the zfs_parse_bench target"
    cmake --build "$BUILD" --target zfs_parse_bench >&2 || { row_failed "parse 100k snapshots" "cmake --build --target zfs_parse_bench failed"; return; }
    exe=$BUILD/tests/bench/zfs_parse_bench
    how="CMake target zfs_parse_bench"
  else
    # Direct compile with exactly the flags the build used for hozo_core (compile_commands.json,
    # warnings dropped) and the link line of the hozo executable (build.ninja).
    log "5. compiling tests/bench/zfs_parse_bench.cpp against $BUILD/libhozo_core.a"
    [[ -f $BUILD/libhozo_core.a ]] || cmake --build "$BUILD" --target hozo_core >&2
    local flags libs
    flags=$("$PY" - "$BUILD/compile_commands.json" <<'PY'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if "/hozo_core.dir/" in e.get("command", "") and e["file"].endswith("/src/zfs.cpp"):
        a = shlex.split(e["command"])[1:]
        out, skip = [], False
        for x in a:
            if skip: skip = False; continue
            if x in ("-o", "-c"): skip = True; continue
            if x.startswith("-W"): continue
            out.append(x)
        print(shlex.join(out)); break
else:
    sys.exit("no hozo_core entry for src/zfs.cpp")
PY
    ) || { row_failed "parse 100k snapshots" "no compile flags in $BUILD/compile_commands.json"; return; }
    if [[ -f $BUILD/build.ninja ]]; then
      libs=$(awk '/^build hozo:/ {f=1} f && /LINK_LIBRARIES =/ {sub(/.*LINK_LIBRARIES = /, ""); print; exit}' "$BUILD/build.ninja")
    elif [[ -f $BUILD/CMakeFiles/hozo.dir/link.txt ]]; then # Makefile generator
      libs=$(sed -n 's/.* -o hozo //p' "$BUILD/CMakeFiles/hozo.dir/link.txt")
    fi
    [[ -n ${libs:-} ]] || { row_failed "parse 100k snapshots" "no link line for hozo in $BUILD (build.ninja or CMakeFiles/hozo.dir/link.txt)"; return; }
    exe=$WORK/zfs_parse_bench
    # shellcheck disable=SC2086 # word splitting of the flag lists is intended
    if ! (cd "$BUILD" && eval "c++ $flags -o $(printf %q "$exe") $(printf %q "$ROOT/tests/bench/zfs_parse_bench.cpp") $libs") >&2; then
      row_failed "parse 100k snapshots" "compiling zfs_parse_bench.cpp failed"
      return
    fi
    how="g++ with hozo_core's flags from compile_commands.json, linked like hozo (build.ninja)"
  fi
  log "5. running zfs_parse_bench 10000 100000 300000"
  if ! "$exe" 10000 100000 300000 >"$WORK/parse.out" 2>"$WORK/parse.err"; then
    row_failed "parse 100k snapshots" "zfs_parse_bench failed: $(tail -n 1 "$WORK/parse.err")"
    return
  fi
  cat "$WORK/parse.out" >&2
  local n rows mib ms rate r10 r300
  read -r n rows mib ms rate < <(awk '$1 == 100000' "$WORK/parse.out")
  r10=$(awk '$1 == 10000 {print $4}' "$WORK/parse.out")
  r300=$(awk '$1 == 300000 {print $4}' "$WORK/parse.out")
  row "parse_snapshot_listing, 100k snapshots" "${ms} ms" \
    "best of 5 rounds; ${rows} rows / ${mib} MiB of \`zfs get -H -p\` output, 10 datasets; $(printf "%'.0f" "$rate") snapshots/s; 10k: ${r10} ms, 300k: ${r300} ms; built by ${how}"
}

# =============================================================================================
# 6. one stage update against 1, 200 and 2000 jobs (no lab): tests/bench/state_bench.cpp
# =============================================================================================
bench_state_update() {
  local exe=${STATE_BENCH:-}
  if [[ -z $exe ]]; then
    log "6. building the state_bench target"
    cmake --build "$BUILD" --target state_bench >&2 || { row_failed "stage update" "cmake --build --target state_bench failed"; return; }
    exe=$BUILD/tests/bench/state_bench
  fi
  log "6. running state_bench (1, 200, 2000 jobs; the state in $WORK/sb, on the same file system as /tmp)"
  if ! "$exe" "$WORK/sb" 1 200 2000 >"$WORK/sb.out" 2>"$WORK/sb.err"; then
    row_failed "stage update" "state_bench failed: $(tail -n 1 "$WORK/sb.err")"
    return
  fi
  local jobs runs med max begin finish
  while read -r jobs runs med max begin finish; do
    row "one stage update (update_run), ${jobs} job(s), ${runs} runs" "${med} ms" \
      "median of 30 (max ${max} ms); begin_run ${begin} ms, finish_run ${finish} ms (these rewrite the summary); temp + fsync + rename + dir fsync"
  done <"$WORK/sb.out"
}

# =============================================================================================
# 4. jobs list / status with 200 jobs x 50 runs (no lab; empty network namespace)
# =============================================================================================
# timeit N OUT CMD...: one warm-up, then N timed runs (ms per line in OUT); fails on a non-zero exit.
timeit() {
  local n=$1 out=$2 i t0 t1
  shift 2
  : >"$out"
  "$@" >/dev/null 2>"$out.err" || return 1
  for ((i = 0; i < n; i++)); do
    [[ -z ${TIMEIT_REMOVE:-} ]] || rm -f -- "$TIMEIT_REMOVE" # untimed: e.g. the display cache, to time a cold start
    t0=${EPOCHREALTIME/./}
    "$@" >/dev/null 2>>"$out.err" || return 1
    t1=${EPOCHREALTIME/./}
    printf '%d.%03d\n' $(((t1 - t0) / 1000)) $(((t1 - t0) % 1000)) >>"$out" # microseconds -> ms
  done
}
bench_big_state() {
  local d=$WORK/big
  mkdir -p "$d/state"
  log "4. generating a config with 200 jobs and a state file with 200 x 50 runs"
  "$PY" - "$d/hozo.yaml" "$d/state/state.json" <<'PY' || { row_failed "jobs list / status, 200 jobs" "generator failed"; return; }
import json, random, sys
from datetime import datetime, timedelta, timezone

cfg_path, state_path = sys.argv[1], sys.argv[2]
rnd = random.Random(42)
JOBS, RUNS = 200, 50
nets = ["192.0.2", "198.51.100", "203.0.113"]  # RFC 5737 documentation ranges: never contacted
iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")

with open(cfg_path, "w") as f:
    f.write("# hozo benchmark: 200 jobs (nothing is contacted by jobs list / status)\n")
    f.write("settings:\n  ssh_user: root\n  ssh_key: /etc/hozo/id_ed25519\n  history: 50\n")
    f.write("  notifications:\n    ntfy_topic: hozo-bench\n    notify_on: [failure]\njobs:\n")
    for n in range(1, JOBS + 1):
        f.write(f"  - name: job-{n:03d}\n")
        f.write(f"    description: \"benchmark job {n}\"\n")
        f.write(f"    source: tank/d{n}\n")
        f.write(f"    target_host: {nets[n % 3]}.{10 + n % 200}\n")
        f.write(f"    target_dataset: backup/d{n}\n")
        f.write(f"    mac_address: \"02:00:5e:00:{n // 256:02x}:{n % 256:02x}\"\n")
        f.write(f"    recursive: {'true' if n % 2 else 'false'}\n")
        f.write(f"    schedule: \"{['daily 02:00', 'weekly Sun 03:30', '0 4 * * *'][n % 3]}\"\n")
    # Runs only to make hozo write the state once (migrating the old-format file): its preflight
    # fails on the missing syncoid before anything is contacted.
    f.write("  - name: migrate\n    source: tank/m\n    target_host: 192.0.2.1\n    target_dataset: backup/m\n    mac_address: \"02:00:5e:00:ff:ff\"\n")
    f.write("    syncoid:\n      path: /nonexistent/hozo-bench/syncoid\n")

base = datetime(2026, 10, 1, 2, 0, 0, tzinfo=timezone.utc)
jobs = {}
for n in range(1, JOBS + 1):
    name, host = f"job-{n:03d}", f"{nets[n % 3]}.{10 + n % 200}"
    runs = []
    for k in range(RUNS):
        start = base + timedelta(days=k, seconds=n * 7)
        pid = 1000 + (n * RUNS + k) % 60000
        run_id = start.strftime("%Y%m%dT%H%M%SZ") + f"-{pid}"
        fail = rnd.random() < 0.06
        t = start
        stages = []
        plan = [("preflight", 0.0001, "syncoid at /usr/sbin/syncoid, 1 dataset pair(s)"),
                ("lock", 0.0002, "first user of the host"),
                ("wake", 0.2, "3 magic packet(s) sent to 255.255.255.255:9"),
                ("wait", rnd.uniform(20, 60), f"{host}:22 answered after 31.0s (156 probes, 1 resends)"),
                ("connect", rnd.uniform(0.05, 0.3), f"root@{host}:22"),
                ("pool", rnd.uniform(0.05, 0.2), "backup ONLINE"),
                ("sync", rnd.uniform(5, 900), "1 dataset(s), 1 attempt(s)"),
                ("verify", rnd.uniform(0.01, 0.5), "2 dataset(s) verified"),
                ("shutdown", rnd.uniform(0.5, 5), "done: \"shutdown -h now\" sent; SSH port closed")]
        if fail:
            plan = plan[:4]
            plan[3] = ("wait", 120.0, f"host {host} did not answer with an SSH banner within 2m")
        for i, (sname, secs, msg) in enumerate(plan):
            ok = not (fail and i == len(plan) - 1)
            stages.append({"name": sname, "started": iso(t), "seconds": round(secs, 6), "ok": ok, "message": msg})
            t += timedelta(seconds=secs)
        snap = start.strftime("syncoid_orch01_%Y-%m-%d:%H:%M:%S-GMT00:00")
        datasets = [] if fail else [
            {"source": f"tank/d{n}{child}", "target": f"backup/d{n}{child}",
             "newest_source_snapshot": f"tank/d{n}{child}@{snap}",
             "newest_target_snapshot": f"backup/d{n}{child}@{snap}",
             "guid_match": True, "remote_snapshot_count": 30 + k}
            for child in (["", "/child"] if n % 2 else [""])]
        runs.append({
            "run_id": run_id, "job": name, "started": iso(start), "finished": iso(t),
            "duration_seconds": round((t - start).total_seconds(), 3),
            "outcome": "failed" if fail else "success", "exit_code": 69 if fail else 0,
            "failed_stage": "wait" if fail else "",
            "error": f"host {host} did not answer with an SSH banner within 2m; last probe: connection timed out" if fail else "",
            "stages": stages, "datasets": datasets, "attempts": 0 if fail else 1,
            "woke_host": not fail, "was_up_before": False,
            "shutdown": {"outcome": "failed" if fail else "done",
                         "message": "box never answered" if fail else "\"shutdown -h now\" sent; SSH port closed"},
            "notifications": [{"channel": "ntfy", "ok": True, "message": "HTTP 200"}] if fail else [],
            "pid": pid, "pid_start_ticks": 123456 + k, "hostname": "orch01",
            "log_file": f"/var/lib/hozo/logs/{name}/{run_id}.log",
        })
    jobs[name] = {"last": runs[-1], "runs": runs}
doc = {"format": "hozo-state", "version": 1, "updated": iso(base + timedelta(days=RUNS)), "jobs": jobs}
with open(state_path, "w") as f:
    json.dump(doc, f, separators=(",", ":"), sort_keys=True)  # compact, as hozo writes it (dump(-1))
PY
  chmod 600 "$d/state/state.json"
  local size
  size=$(stat -c %s "$d/state/state.json")
  # hozo must read the file cleanly (no warnings, not quarantined as corrupt) for the numbers to mean anything.
  local -a hz=(unshare --net -- "$HOZO_BIN" -c "$d/hozo.yaml" --state "$d/state/state.json")
  if ! "${hz[@]}" status >"$d/status.out" 2>"$d/status.err"; then
    row_failed "hozo status, 200 jobs x 50 runs" "hozo status failed: $(tail -n 1 "$d/status.err")"
    return
  fi
  if [[ -s $d/status.err ]] || compgen -G "$d/state/state.json.corrupt-*" >/dev/null; then
    row_failed "hozo status, 200 jobs x 50 runs" "hozo status warned: $(head -n 1 "$d/status.err")"
    return
  fi
  local jobs_shown
  jobs_shown=$(grep -c '^job-' "$d/status.out")
  ((jobs_shown == 200)) || { row_failed "hozo status, 200 jobs x 50 runs" "status listed $jobs_shown jobs, not 200"; return; }
  # The generated file is in the old one-document format (version 1): time status on it once, then
  # let hozo migrate it (its first write) and time the new layout.
  local t0 v1_ms mig_ms
  t0=$(now_us)
  "${hz[@]}" status >/dev/null 2>&1
  v1_ms=$(ms_since "$t0")
  t0=$(now_us)
  "${hz[@]}" jobs run migrate >"$d/migrate.out" 2>&1
  mig_ms=$(ms_since "$t0")
  [[ $("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("version"))' "$d/state/state.json" 2>/dev/null) == 2 ]] || { row_failed "state migration" "state.json not at version 2 after a write: $(tail -n 2 "$d/migrate.out")"; return; }
  local runs_files summary_size
  runs_files=$(find "$d/state/runs" -name '*.json' ! -name restores.json | wc -l)
  summary_size=$(stat -c %s "$d/state/state.json")
  row "migration of the old state file, 200 jobs x 50 runs" "${mig_ms} ms" \
    "one \`hozo jobs run\` (preflight fails) = its first write; ${runs_files} run files written (+1 new run); \`hozo status\` on the old format took ${v1_ms} ms; summary now ${summary_size} bytes"
  # The timing loop runs inside ONE fresh network namespace (created once, outside the timed part).
  log "4. timing jobs list / status ($CLI_RUNS runs each, in an empty network namespace)"
  if ! unshare --net -- "$BASH" -c "$(declare -f timeit); set -uo pipefail
      timeit $CLI_RUNS $(printf %q "$d/list.ms") $(printf %q "$HOZO_BIN") -c $(printf %q "$d/hozo.yaml") --state $(printf %q "$d/state/state.json") jobs list &&
      timeit $CLI_RUNS $(printf %q "$d/status.ms") $(printf %q "$HOZO_BIN") -c $(printf %q "$d/hozo.yaml") --state $(printf %q "$d/state/state.json") status &&
      TIMEIT_REMOVE=$(printf %q "$d/state/config-cache.json") timeit $CLI_RUNS $(printf %q "$d/status-cold.ms") $(printf %q "$HOZO_BIN") -c $(printf %q "$d/hozo.yaml") --state $(printf %q "$d/state/state.json") status"; then
    row_failed "hozo jobs list / status, 200 jobs" "a timed run failed: $(tail -n 1 "$d"/*.ms.err 2>/dev/null)"
    return
  fi
  local med max min n
  read -r med max min n < <(stats "$d/list.ms")
  local cache_size
  cache_size=$(stat -c %s "$d/state/config-cache.json" 2>/dev/null || echo 0)
  row "\`hozo jobs list\`, 200 jobs, full history" "${med} ms" "median of $n (min ${min}, max ${max} ms); reads the ${summary_size}-byte summary (migrated layout) and the config's display cache (${cache_size} bytes, written by the first run after a config change)"
  read -r med max min n < <(stats "$d/status.ms")
  row "\`hozo status\`, 200 jobs x 50 runs" "${med} ms" "median of $n (min ${min}, max ${max} ms); parsed without warnings, 200 jobs shown; display cache as above"
  read -r med max min n < <(stats "$d/status-cold.ms")
  row "\`hozo status\`, same, config changed since the last command" "${med} ms" "median of $n (min ${min}, max ${max} ms); the display cache removed before each run: the 45 KiB YAML is parsed (yaml-cpp) and the cache written again"
  row "old-format state file size, 200 jobs x 50 runs" "$(awk -v b="$size" 'BEGIN {printf "%.1f MiB", b / 1048576}')" \
    "$size bytes of compact JSON (version 1); 9 stages, 1-2 datasets per successful run, ~6 % failed runs; after migration state.json is ${summary_size} bytes"
}

# =============================================================================================
# lab set-up (sections 1-3)
# =============================================================================================
lab_start() {
  log "lab: checking prerequisites (LAB_ID=$LAB_ID)"
  local rc=0
  (lab_require) || rc=$?
  if ((rc != 0)); then
    LAB_SKIP_REASON="lab unavailable (lab_require exited $rc; see stderr)"
    return 1
  fi
  log "lab: up"
  LAB_IS_UP=1
  if ! lab_up; then
    LAB_SKIP_REASON="lab_up failed"
    return 1
  fi
  write_config bench "recursive: true" "ssh_timeout: 60"
  CFG=$T_CONFIG
  STATE=$T_STATE
  # The box's sshd writes its log without timestamps (-e): stamp each line as it arrives.
  # tail -F follows with inotify (the -s 0.01 poll only matters without it); the lag this adds is
  # the same for every line, so the differences below are exact to about a millisecond.
  : >>"$LAB_SSHD_LOG"
  tail -n 0 -s 0.01 -F "$LAB_SSHD_LOG" 2>/dev/null \
    > >(while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >"$WORK/sshd.ts") &
  TAIL_PID=$!
  sleep 0.2
  return 0
}

# =============================================================================================
# 1. sshd listening -> hozo's first probe / SSH session (box off, hozo wakes it)
# =============================================================================================
bench_wake_lag() {
  log "1. warm-up: full send with the box off"
  box_wait_state off 10 || { row_failed "sshd listening → hozo" "box is not off"; return; }
  hozo_lab jobs run bench
  ((HOZO_RC == 0)) || { hozo_failed "warm-up run"; row_failed "sshd listening → hozo" "warm-up run exited $HOZO_RC"; return; }
  local i mark probe_f=$WORK/lag_probe.ms sess_f=$WORK/lag_session.ms upev_f=$WORK/lag_event.ms
  : >"$probe_f"
  : >"$sess_f"
  : >"$upev_f"
  local delays=()
  for ((i = 1; i <= RUNS; i++)); do
    box_wait_state off 10 || { row_failed "sshd listening → hozo" "box did not power off after run $((i - 1))"; return; }
    # A random boot delay in [1.0, 1.5) s per run: with a fixed delay the box would come up at the
    # same phase of hozo's probe interval every time and all runs would show the same lag.
    local bd
    bd=$(printf '1.%03d' $((RANDOM % 500)))
    delays+=("$bd")
    lab_powersim_restart --boot-delay "$bd" || { row_failed "sshd listening → hozo" "power simulator restart failed"; return; }
    mark=$(wc -l <"$WORK/sshd.ts")
    lab_mark_events
    hozo_lab jobs run bench
    ((HOZO_RC == 0)) || { hozo_failed "run $i"; row_failed "sshd listening → hozo" "run $i exited $HOZO_RC"; return; }
    RSS_HOZO+=("$HWM_KB")
    RSS_TREE+=("$TREE_KB")
    sleep 0.1 # let the stamper catch the last lines
    local res
    res=$("$PY" - "$WORK/sshd.ts" "$mark" "$LAB_ORCH_IP" "$(lab_last_event ssh_up)" <<'PY'
import json, re, sys
path, mark, orch, ev = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = [l.rstrip("\n").split(" ", 1) for l in open(path).readlines()[mark:]]
lines = [(float(t), txt) for t, txt in (x for x in lines if len(x) == 2)]
listen = next(t for t, s in lines if s.startswith("Server listening on"))
conns = [(t, re.search(r" port (\d+) on ", s).group(1)) for t, s in lines
         if t >= listen and s.startswith(f"Connection from {orch} port ")]
probe = conns[0][0]
# hozo's libssh session (the connect stage) is the first connection from the orchestrator that
# authenticates; its TCP accept time is its "Connection from" line.
port = next(re.search(r" port (\d+) ssh2", s).group(1) for t, s in lines
            if t >= listen and s.startswith(f"Accepted publickey for root from {orch} port "))
session = next(t for t, p in conns if p == port)
up_wall = json.loads(ev)["wall"] if ev else listen
print(f"{(probe - listen) * 1000:.1f} {(session - listen) * 1000:.1f} {(up_wall - listen) * 1000:.1f}")
PY
    ) || { row_failed "sshd listening → hozo" "could not find the sshd log lines of run $i"; return; }
    local p s u
    read -r p s u <<<"$res"
    echo "$p" >>"$probe_f"
    echo "$s" >>"$sess_f"
    echo "$u" >>"$upev_f"
    log "1. run $i/$RUNS (boot delay $bd s): listening→probe ${p} ms, listening→session ${s} ms (ssh_up event at +${u} ms)"
  done
  local med max min n
  read -r med max min n < <(stats "$probe_f")
  row "sshd listening → hozo's first probe (\`wait\`)" "median ${med} ms, max ${max} ms" \
    "$n wake cycles (box off, random boot delays ${delays[*]} s); sshd log lines stamped on arrival: \"Server listening on\" → first \"Connection from $LAB_ORCH_IP\" (hozo's banner probe)"
  read -r med max min n < <(stats "$sess_f")
  row "sshd listening → hozo's SSH session (\`connect\`)" "median ${med} ms, max ${max} ms" \
    "same runs: → the \"Connection from\" of the first connection that logs \"Accepted publickey\" (hozo's libssh session); includes the probe's banner read and the connect stage's set-up"
  read -r med max min n < <(stats "$upev_f")
  row "(reference) simulator's \`ssh_up\` event after sshd listening" "median ${med} ms, max ${max} ms" \
    "why the event file is not used as the start: powersim polls the port every ~50 ms, and state-file stage times have 1 s resolution"
}

# =============================================================================================
# 2. hozo's overhead over bare syncoid (box already on, no-op incremental) + 3. peak RSS
# =============================================================================================
bench_overhead() {
  log "2. waking the box outside hozo (it stays on: hozo did not wake it)"
  box_wait_state off 10
  lab_mark_events
  if ! { lab_wake && lab_wait_event ssh_up 20; }; then
    row_failed "hozo jobs run vs bare syncoid" "the box did not come up"
    return
  fi
  local cmd
  ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" "$HOZO_BIN" -c "$CFG" --state "$STATE" \
    jobs run bench --dry-run >"$WORK/dry.out" 2>"$WORK/dry.err"
  cmd=$(sed -n 's/^  sync     //p' "$WORK/dry.out")
  [[ -n $cmd && $(grep -c '^  sync     ' "$WORK/dry.out") == 1 ]] ||
    { row_failed "hozo jobs run vs bare syncoid" "no single sync line in \`jobs run --dry-run\`"; return; }
  # The line is shell_join()ed argv (validated parts, shell-quoted): parse it back into words.
  local -a argv
  eval "argv=($cmd)" || { row_failed "hozo jobs run vs bare syncoid" "cannot parse the sync line"; return; }
  # Its own snapshot names (syncoid_bare_<host>_...): syncoid prunes only the sync snapshots of its
  # identifier, so each side prunes its own previous one, as every run of a job does, whatever
  # the other side's runs hold (hozo holds its newest two; with one shared name pattern, bare
  # syncoid would fail to destroy those and hozo's syncoid would destroy bare's and its own).
  argv=("${argv[0]}" --identifier=bare "${argv[@]:1}")
  log "2. syncoid command: ${argv[*]}"
  run_syncoid() {
    "$TIME_BIN" -v -o "$WORK/time.sync" ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
      "${argv[@]}" >"$WORK/syncoid.out" 2>&1 </dev/null
  }
  log "2. warm-up (one of each)"
  next_second
  hozo_lab jobs run bench
  ((HOZO_RC == 0)) || { hozo_failed "warm-up"; row_failed "hozo jobs run vs bare syncoid" "warm-up hozo run exited $HOZO_RC"; return; }
  next_second
  run_syncoid || { tail -n 10 "$WORK/syncoid.out" >&2; row_failed "hozo jobs run vs bare syncoid" "warm-up syncoid failed"; return; }
  local i t0 hz_f=$WORK/hozo_run.ms sy_f=$WORK/syncoid.ms
  : >"$hz_f"
  : >"$sy_f"
  : >"$WORK/hozo_own.ms"
  RSS_HOZO+=("$HWM_KB")
  RSS_TREE+=("$TREE_KB")
  for ((i = 1; i <= PAIRS; i++)); do # interleaved, so drift hits both alike
    next_second
    t0=$(now_us)
    HOZO_LAB_POLL=0 hozo_lab jobs run bench
    ms_since "$t0" >>"$hz_f"
    ((HOZO_RC == 0)) || { hozo_failed "run $i"; row_failed "hozo jobs run vs bare syncoid" "hozo run $i exited $HOZO_RC"; return; }
    [[ $(T_STATE=$STATE state_get bench 'r["was_up_before"]') == True ]] ||
      { row_failed "hozo jobs run vs bare syncoid" "run $i did not see the box as already up"; return; }
    # hozo's own share of this very run: its wall time minus its sync stage (syncoid's run in it).
    awk -v w="$(tail -n 1 "$hz_f")" -v s="$(T_STATE=$STATE state_get bench '[x["seconds"] for x in r["stages"] if x["name"] == "sync"][0]')" \
      'BEGIN {printf "%.3f\n", w - 1000 * s}' >>"$WORK/hozo_own.ms"
    RSS_TREE+=("$TREE_KB")
    next_second
    t0=$(now_us)
    run_syncoid || { tail -n 10 "$WORK/syncoid.out" >&2; row_failed "hozo jobs run vs bare syncoid" "syncoid run $i failed"; return; }
    ms_since "$t0" >>"$sy_f"
    RSS_SYNCOID+=("$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.sync")")
    log "2. run $i/$PAIRS: hozo $(tail -n 1 "$hz_f") ms, syncoid $(tail -n 1 "$sy_f") ms"
  done
  [[ $(lab_box_state) == on ]] || log "WARNING: the box is $(lab_box_state) after the box-on runs"
  local hm hx hmin n sm sx smin
  read -r hm hx hmin n < <(stats "$hz_f")
  read -r sm sx smin n < <(stats "$sy_f")
  row "\`hozo jobs run\`, box already on, no-op incremental" "${hm} ms" \
    "median of $n after a warm-up (min ${hmin}, max ${hx} ms); wall time of the whole process, box left on (was_up_before)"
  row "bare syncoid, same command" "${sm} ms" \
    "median of $n (min ${smin}, max ${sx} ms); the \`sync\` line of \`hozo jobs run bench --dry-run\` plus \`--identifier=bare\` (each side prunes only its own sync snapshots), run in the orchestrator namespace with PATH=\$LAB_ORCH_PATH; runs interleaved with hozo's"
  local paired
  paired=$("$PY" - "$hz_f" "$sy_f" <<'PY'
import statistics, sys
h = [float(x) for x in open(sys.argv[1]) if x.strip()]
s = [float(x) for x in open(sys.argv[2]) if x.strip()]
d = [a - b for a, b in zip(h, s)]
print(f"{statistics.median(d):.1f} {100 * statistics.median(d) / statistics.median(s):.1f} {min(d):.1f} {max(d):.1f}")
PY
  )
  local pd pr pmin pmax
  read -r pd pr pmin pmax <<<"$paired"
  row "hozo overhead over bare syncoid" \
    "$(awk -v a="$hm" -v b="$sm" 'BEGIN {printf "%.1f ms (%.1f %% of syncoid)", a - b, 100 * (a - b) / b}')" \
    "difference of the medians: process start, preflight, probe, libssh connect + auth, pool check, verify + holds, state writes"
  row "hozo overhead, median of the paired differences" "${pd} ms (${pr} % of syncoid)" \
    "each hozo run minus the syncoid run right after it (min ${pmin}, max ${pmax} ms); less sensitive to syncoid's own spread"
  local om ox omin
  read -r om ox omin n < <(stats "$WORK/hozo_own.ms")
  row "hozo's own time in the same run (wall − its sync stage)" \
    "$(awk -v a="$om" -v b="$sm" 'BEGIN {printf "%.1f ms (%.1f %% of bare syncoid)", a, 100 * a / b}')" \
    "median of $n (min ${omin}, max ${ox} ms): everything but syncoid itself, without syncoid's run-to-run spread"
}

bench_rss() {
  if ((${#RSS_HOZO[@]} == 0)); then
    row_failed "peak RSS of \`hozo jobs run\`" "no hozo run was measured"
    return
  fi
  local max_hwm=0 max_tree=0 max_sy=0 v
  for v in "${RSS_HOZO[@]}"; do ((v > max_hwm)) && max_hwm=$v; done
  for v in "${RSS_TREE[@]}"; do ((v > max_tree)) && max_tree=$v; done
  for v in "${RSS_SYNCOID[@]}"; do ((v > max_sy)) && max_sy=$v; done
  if ((max_hwm == 0)); then
    row_failed "peak RSS of \`hozo jobs run\` (hozo process)" "VmHWM was never read"
  else
    row "peak RSS of \`hozo jobs run\` (hozo process)" "$((max_hwm / 1024)).$(((max_hwm % 1024) * 10 / 1024)) MiB" \
      "max VmHWM over ${#RSS_HOZO[@]} runs (wake cycles and box-on runs), polled from /proc/<pid>/status every 5 ms"
  fi
  row "peak RSS of \`hozo jobs run\` incl. children" "$((max_tree / 1024)).$(((max_tree % 1024) * 10 / 1024)) MiB" \
    "/usr/bin/time -v \"Maximum resident set size\": the largest single process of the tree (hozo, syncoid/perl, ssh, zfs); bare syncoid alone: $((max_sy / 1024)).$(((max_sy % 1024) * 10 / 1024)) MiB"
}

# =============================================================================================
# main
# =============================================================================================
T_START=$SECONDS
log "hozo: $HOZO_BIN (from $HOZO_BUILT; $("$HOZO_BIN" --version 2>/dev/null | head -n 1)); $RUNS runs per measurement, $PAIRS pairs in section 2; work dir $WORK"
if [[ ${BENCH_ONLY:-} == lab ]]; then
  log "BENCH_ONLY=lab: only the lab sections 1-3"
else
  bench_parse
  bench_big_state
  bench_state_update
fi
LAB_SKIP_REASON=
if [[ ${BENCH_ONLY:-} == state ]]; then
  log "BENCH_ONLY=state: skipping the lab sections 1-3"
elif lab_start; then
  bench_wake_lag
  bench_overhead
  bench_rss
else
  for m in "sshd listening → hozo" "hozo jobs run vs bare syncoid" "peak RSS of \`hozo jobs run\`"; do
    row_failed "$m" "$LAB_SKIP_REASON"
  done
fi
log "done in $((SECONDS - T_START)) s"

{
  echo
  echo "Hōzō benchmarks — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPU(s), hozo $("$HOZO_BIN" --version 2>/dev/null | head -n 1)"
  echo
  echo "| metric | value | notes |"
  echo "|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
}
exit "$FAILED"
