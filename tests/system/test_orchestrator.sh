#!/usr/bin/env bash
# System lab: the orchestrator under a real systemd (issue: system lab). A Debian 12 container
# (cached rootfs, systemd as PID 1) joins the lab's orchestrator network namespace and uses the
# host's zfs-fuse through /run/zfs; the box is the lab's simulated box (powersim + real sshd).
#  1. `apt install ./hozo_*.deb` on the clean rootfs pulls in every dependency (proves Depends)
#  2. `hozo schedule --install --enable` for a job due in about a minute: the timer fires by itself,
#     the run succeeds against the box, state in /var/lib/hozo, the journal has the lines with
#     their priorities (PRIORITY 6 info, no "<N>" prefixes left), list-timers showed hozo's next run
#  3. `systemctl stop` mid-transfer: the run is recorded as interrupted, the box is powered off
#  4. `systemctl kill -s KILL` mid-transfer: ExecStopPost's `hozo recover` powers the box off
#  5. cron: `hozo schedule --cron --install`, Debian's cron runs the job with PATH=/usr/bin:/bin
set -uo pipefail
LAB_ID=${LAB_ID:-sor$$}
LAB_ID=${LAB_ID:0:10}
export LAB_BACKUPD=0 LAB_DISK=0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lab/lab.sh"
source "$here/../lab/testlib.sh"
source "$here/systemlib.sh"
sys_lab_container orch

# ------------------------------------------------------------------------------------------
t_log "1. apt install ./$(basename "$deb") on the clean rootfs"
t0=$SECONDS
if out=$(sys_install_deb "$root" "$deb" bookworm); then
  t_pass "apt install ./$(basename "$deb") ($((SECONDS - t0)) s)"
else
  t_fail "apt install: $out"
  t_done
  exit 1
fi
t_check "syncoid came with the Depends" test -x "$root/usr/sbin/syncoid"
t_check "/usr/bin/hozo installed" test -x "$root/usr/bin/hozo"

# The lab's fixtures inside the container: key, pinned host key, the zfs-fuse compat wrapper
# (syncoid 2.1.0 lists snapshots with `zfs get -t`, which zfs-fuse lacks; see tests/lab/README.md).
install -d -m 700 "$root/etc/hozo"
install -m 600 "$LAB_SSH_KEY" "$root/etc/hozo/id_ed25519"
install -m 644 "$LAB_KNOWN_HOSTS" "$root/etc/hozo/known_hosts"
install -m 755 "$LAB_SRC_DIR/bin/zfs" "$root/usr/local/sbin/zfs"
# Timer precision for the test only: hozo@.timer spreads runs by up to 5 min (RandomizedDelaySec)
# and fires within AccuracySec=1min; the test wants the run at the minute it scheduled.
install -d "$root/etc/systemd/system/hozo@.timer.d"
printf '# system lab: fire on time\n[Timer]\nRandomizedDelaySec=0\nAccuracySec=1s\n' \
  >"$root/etc/systemd/system/hozo@.timer.d/zz-system-lab.conf"

# A slow dataset for the stop/kill scenarios: 8 MiB at 256 KiB/s (syncoid's mbuffer limit).
zfs create "$LAB_SRC_POOL/big"
head -c 8388608 /dev/urandom >"$LAB_SRC_MNT/big/blob.bin"
zfs snapshot "$LAB_SRC_POOL/big@one"

job() { # NAME SOURCE TARGET [EXTRA LINES...]
  printf '  - name: %s\n    source: %s\n    target_host: %s\n    target_dataset: %s\n' "$1" "$2" "$LAB_BOX_IP" "$3"
  printf '    mac_address: "%s"\n    ssh_key: /etc/hozo/id_ed25519\n    known_hosts: /etc/hozo/known_hosts\n' "$LAB_BOX_MAC"
  printf '    ssh_timeout: 30\n    retry_delay: 1\n'
  shift 3
  local l
  for l in "$@"; do printf '    %s\n' "$l"; done
}
# The next full minute (UTC) at least 40 s away, so daemon-reload and enable are done before it.
next_minute() { date -u -d "@$(( ($(date +%s) + 40) / 60 * 60 + 60 ))" '+%Y-%m-%d %H:%M:00'; }
due=$(next_minute)
due_oncal="*-*-* $(date -u -d "$due" '+%H:%M'):00 UTC"
write_orch_config() { # [EXTRA JOB BLOCKS...]
  {
    echo "jobs:"
    job nightly "$LAB_SRC_POOL/data" "$LAB_TGT_ROOT/data" "recursive: true" "schedule: \"$due_oncal\""
    job big "$LAB_SRC_POOL/big" "$LAB_TGT_ROOT/big" "retries: 0" "ssh_connect_timeout: 3" "syncoid:" "  source_bwlimit: 256k"
    printf '%s\n' "$@"
  } >"$root/etc/hozo/hozo.yaml"
}
write_orch_config

sys_boot "$C" "$root" "$LAB_NS_ORCH" || { echo "FAIL boot"; t_done; exit 1; }
t_pass "container booted: systemd $(sys_exec "$C" systemctl --version | head -n 1 | cut -d' ' -f2) in $LAB_NS_ORCH"
in_c() { sys_exec "$C" "$@"; }
t_eq "zfs in the container sees the lab pool through /run/zfs" "$LAB_SRC_POOL" \
  "$(in_c zfs list -H -o name "$LAB_SRC_POOL" 2>&1)"

# ------------------------------------------------------------------------------------------
t_log "2. hozo schedule --install --enable; the timer fires at $due UTC by itself"
in_c hozo schedule --install --enable >"$SYS_WORK/schedule.out" 2>&1
rc=$?
sed 's/^/    schedule: /' "$SYS_WORK/schedule.out" >&2
t_eq "hozo schedule --install --enable exits 0" 0 "$rc"
printed=$(sed -n 's/^nightly: wrote .*next run \([0-9T:Z-]*\)).*/\1/p' "$SYS_WORK/schedule.out")
t_eq "hozo schedule printed the next run" "$(date -u -d "$due" '+%Y-%m-%dT%H:%M:%SZ')" "$printed"
t_eq "timer enabled" enabled "$(in_c systemctl is-enabled hozo@nightly.timer)"
t_eq "timer active" active "$(in_c systemctl is-active hozo@nightly.timer)"
timers=$(in_c systemctl list-timers --all --no-pager 'hozo@*')
echo "$timers" | sed 's/^/    list-timers: /' >&2
t_check "systemctl list-timers shows the next run hozo printed ($due)" \
  grep -q "$(date -u -d "$due" '+%Y-%m-%d %H:%M:%S') UTC.*hozo@nightly.timer" <<<"$timers"
t_check "the manual job has no timer" bash -c "! grep -q 'hozo@big.timer' <<<\"\$1\"" _ "$timers"
lab_mark_events
T_STATE=$root/var/lib/hozo/state.json
deadline=$(($(date -u -d "$due" +%s) + 150))
# the oneshot ran and finished when its main process has an exit time
while (($(date +%s) < deadline)); do
  [[ $(in_c systemctl show hozo@nightly.service -p ExecMainExitTimestampMonotonic --value) =~ ^[1-9] ]] && break
  sleep 2
done
started=$(in_c systemctl show hozo@nightly.service -p ExecMainStartTimestamp --value)
t_check "the timer started hozo@nightly.service by itself (at $started)" test -n "$started"
t_check "it started at the scheduled minute" grep -q "$(date -u -d "$due" '+%Y-%m-%d %H:%M')" <<<"$started"
t_eq "the service succeeded" success "$(in_c systemctl show hozo@nightly.service -p Result --value)"
t_eq "state in /var/lib/hozo: outcome" success "$(state_get nightly 'r["outcome"]' 2>&1)"
t_eq "the box was woken and powered off" "True done" "$(state_get nightly 'r["woke_host"], r["shutdown"]["outcome"]' 2>&1 | tr -d "(),'")"
t_eq "box is off again" off "$(lab_box_state)"
t_check "run log under /var/lib/hozo/logs" bash -c "ls '$root/var/lib/hozo/logs/nightly/'*.log >/dev/null"
in_c journalctl -u hozo@nightly.service -o json --no-pager >"$SYS_WORK/journal.json"
prio_of() { # TEXT: the PRIORITY of the first journal line of hozo containing TEXT
  "$LAB_PY" - "$SYS_WORK/journal.json" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    m = e.get("MESSAGE")
    if isinstance(m, str) and e.get("SYSLOG_IDENTIFIER") == "hozo" and sys.argv[2] in m:
        print(e.get("PRIORITY")); break
EOF
}
n_hozo=$("$LAB_PY" -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l).get("SYSLOG_IDENTIFIER")=="hozo"))' "$SYS_WORK/journal.json")
t_check "journalctl -u hozo@nightly has hozo's lines ($n_hozo)" test "$n_hozo" -gt 3
t_eq "info lines carry PRIORITY 6" 6 "$(prio_of "$LAB_TGT_ROOT/data")"
t_check "no '<N>' priority prefix left in any message" bash -c "! grep -q '\"MESSAGE\":\"<[0-7]>' '$SYS_WORK/journal.json'"

# ------------------------------------------------------------------------------------------
syncoid_running() { pgrep -f "[s]yncoid.*$LAB_SRC_POOL/big" >/dev/null; }
start_big() {
  lab_mark_events
  in_c systemctl start --no-block hozo@big.service
  for _ in $(seq 1 150); do syncoid_running && break; sleep 0.2; done
  syncoid_running && sleep 2
}
t_log "3. systemctl stop hozo@big mid-transfer: interrupted, box powered off"
start_big
t_check "syncoid is transferring" syncoid_running
in_c systemctl stop hozo@big.service
t_eq "recorded as interrupted" interrupted "$(state_get big 'r["outcome"]' 2>&1)"
t_eq "service result: exit code 130" "130" "$(in_c systemctl show hozo@big.service -p ExecMainStatus --value)"
t_check "no syncoid left" bash -c "! pgrep -f '[s]yncoid.*$LAB_SRC_POOL/big'"
t_eq "box powered off" off "$(lab_box_state)"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
in_c journalctl -u hozo@big.service -o json --no-pager >"$SYS_WORK/journal.json"
p=$(prio_of "interrupted")
t_check "the interruption is logged as a warning or error (PRIORITY $p)" test -n "$p" -a "${p:-9}" -le 4

# ------------------------------------------------------------------------------------------
t_log "4. systemctl kill -s KILL hozo@big mid-transfer: recovery by ExecStopPost"
t_check "the installed hozo has the recover command (ExecStopPost=)" bash -c "grep -q 'hozo recover' \"$root/lib/systemd/system/hozo@.service\""
box_off
start_big
t_check "syncoid is transferring" syncoid_running
in_c systemctl kill -s KILL hozo@big.service
for _ in $(seq 1 300); do [[ $(lab_box_state) == off ]] && break; sleep 0.2; done
t_eq "box powered off by the recovery" off "$(lab_box_state)"
t_check "the killed run is not left as running" bash -c "[[ \$1 != running ]]" _ "$(state_get big 'r["outcome"]' 2>&1)"
t_check "no syncoid left" bash -c "! pgrep -f '[s]yncoid.*$LAB_SRC_POOL/big'"

# ------------------------------------------------------------------------------------------
t_log "5. cron: hozo schedule --cron --install; cron runs the job with PATH=/usr/bin:/bin"
t_eq "cron is running in the container" active "$(in_c systemctl is-active cron.service)"
box_off
due2=$(next_minute)
write_orch_config "$(job viacron "$LAB_SRC_POOL/other" "$LAB_TGT_ROOT/other" \
  "schedule: \"$(date -u -d "$due2" '+%-M %-H') * * *\"")"
in_c hozo schedule --cron --install >"$SYS_WORK/cron.out" 2>&1
t_eq "hozo schedule --cron --install exits 0" 0 "$?"
sed 's/^/    cron.d: /' "$root/etc/cron.d/hozo" >&2
t_check "/etc/cron.d/hozo runs /usr/bin/hozo jobs run viacron" grep -q "root /usr/bin/hozo .*jobs run viacron" "$root/etc/cron.d/hozo"
deadline=$(($(date -u -d "$due2" +%s) + 150))
outcome=
while (($(date +%s) < deadline)); do
  outcome=$(state_get viacron 'r["outcome"]' 2>/dev/null)
  [[ -n $outcome && $outcome != running ]] && break
  sleep 2
done
err=$(state_get viacron 'r.get("error", "")' 2>/dev/null)
t_eq "cron's run of viacron succeeded" success "$outcome"
[[ $outcome == success ]] || echo "    error: $err"
for _ in $(seq 1 50); do [[ $(lab_box_state) == off ]] && break; sleep 0.2; done
t_eq "box is off after the cron run" off "$(lab_box_state)"

t_done
