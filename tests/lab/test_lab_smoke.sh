#!/usr/bin/env bash
# Lab smoke test: proves the lab itself (no hozo involved), so hozo's lab tests can trust it.
#  - box off (port 22 closed) -> magic packet from the orchestrator namespace to 255.255.255.255:9
#    -> wol_received + ssh_up events; login with the lab key and strict host key checking
#  - real syncoid, orchestrator -> box over ssh: full, then incremental after a new snapshot, data
#    identical (sha256 of every file); the box-side zfs compat wrapper was used over ssh
#  - `shutdown -h now` over ssh returns promptly -> poweroff event, port closed, sshd gone
#  - --ignore-first 2 (wakes on the 3rd packet), SecureOn password (108 accepted, 102 ignored),
#    malformed packets, WOL through the relay namespace, HTTP and SMTP receivers
#  - teardown leaves no namespaces, pools, mounts, processes or lab directory
# Run by hand: sudo bash tests/lab/test_lab_smoke.sh   (exit 77 = skipped, reason printed)
set -uo pipefail
LAB_ID=${LAB_ID:-smk$$}
LAB_RELAY=1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lab.sh"
source "$here/testlib.sh"
lab_require
trap 'set +e; lab_down' EXIT

now() { date +%s.%N; }
ms_since() { "$LAB_PY" -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$1" "$(now)"; }
ev_field() { # NAME FIELD: a field of the last event NAME after the mark
  "$LAB_PY" -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$(lab_last_event "$1")" "$2"
}
same_tree() { # SRC_DIR TGT_DIR TGT_DATASET
  remount_tree "$3"
  lab_tree_sums "$1" >"$LAB_DIR/sums.src"
  lab_tree_sums "$2" >"$LAB_DIR/sums.tgt"
  [[ -s $LAB_DIR/sums.src ]] && diff "$LAB_DIR/sums.src" "$LAB_DIR/sums.tgt" >&2
}
not() { ! "$@"; }
box_sshd_running() { pgrep -f "[s]shd .*$LAB_BOX_DIR/sshd_config" >/dev/null; }
state_is() { # STATE [TIMEOUT]
  local end=$((SECONDS + ${2:-10}))
  until [[ $(lab_box_state) == "$1" ]]; do ((SECONDS >= end)) && return 1; sleep 0.05; done
}

t_log "lab up"
t0=$(now)
lab_up || exit 1
echo "measured: lab_up $(ms_since "$t0") ms"
t_check "namespaces exist" bash -c "ip netns list | grep -qw -- '$LAB_NS_ORCH' && ip netns list | grep -qw -- '$LAB_NS_BOX'"
t_check "orchestrator has no default route" bash -c "! ip -n $LAB_NS_ORCH route show | grep -q default"
t_check "box has no default route" bash -c "! ip -n $LAB_NS_BOX route show | grep -q default"
t_eq "box MAC on br0" "$LAB_BOX_MAC" "$(ip -n "$LAB_NS_BOX" -o link show br0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)"
t_check "pools exist" zpool list -H -o name "$LAB_SRC_POOL" "$LAB_TGT_POOL" >/dev/null
t_check "source datasets with a snapshot" zfs list -H -o name "$LAB_SRC_POOL/data/child@lab-initial" "$LAB_SRC_POOL/other" >/dev/null

# ------------------------------------------------------------------------------------------
t_log "box off, wake from the orchestrator namespace, ssh in"
t_eq "box state" off "$(lab_box_state)"
t_check "port 22 closed while off" not lab_port_open "$LAB_BOX_IP" "$LAB_SSH_PORT"
t_check "no box sshd while off" not box_sshd_running
lab_mark_events
lab_exec_orch "$LAB_PY" "$LAB_WAKEONLAN" -i 255.255.255.255 -p 9 "$LAB_BOX_MAC" >/dev/null
t_check "wol_received" lab_wait_event wol_received 5
t_eq "packet from the orchestrator" "$LAB_ORCH_IP" "$(ev_field wol_received from | cut -d: -f1)"
t_eq "packet length" 102 "$(ev_field wol_received len)"
t_eq "packet port" 9 "$(ev_field wol_received port)"
t_check "ssh_up" lab_wait_event ssh_up 20
boot_ms=$("$LAB_PY" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(round((b["t"]-a["t"])*1000))' \
  "$(lab_last_event wol_received)" "$(lab_last_event ssh_up)")
echo "measured: magic packet -> sshd accepting: $boot_ms ms (boot delay ${LAB_BOOT_DELAY}s)"
t_eq "box state" on "$(lab_box_state)"
t_check "port 22 open" lab_port_open "$LAB_BOX_IP" "$LAB_SSH_PORT"
t0=$(now)
t_eq "ssh login (strict host key checking, lab known_hosts)" ok "$(lab_ssh echo ok)"
echo "measured: one ssh command $(ms_since "$t0") ms"
: >"$LAB_DIR/empty_known_hosts"
t_check "an unknown host key is refused" bash -c "! ip netns exec $LAB_NS_ORCH ssh ${LAB_SSH_OPTS/$LAB_KNOWN_HOSTS/$LAB_DIR/empty_known_hosts} root@$LAB_BOX_IP true 2>/dev/null"
t_eq "box PATH starts with the box's /usr/local/sbin" /usr/local/sbin/zfs "$(lab_ssh 'command -v zfs')"
t_eq "box shutdown is the fake" /usr/local/sbin/shutdown "$(lab_ssh 'command -v shutdown')"
t_check "absolute /usr/sbin/shutdown is the fake too" lab_ssh 'grep -q hozo.lab /usr/sbin/shutdown'
t_eq "box processes live in their own pid namespace (sshd is pid 1)" sshd "$(lab_ssh 'ps -o comm= -p 1')"
t_check "box sees the target pool mounts" lab_ssh "test -d $LAB_TGT_MNT/backup"
t_check "the machine's /root/.ssh is untouched" test ! -e /root/.ssh/authorized_keys -o -z "$(grep -l "hozo-lab-client-$LAB_ID" /root/.ssh/authorized_keys 2>/dev/null)"

# ------------------------------------------------------------------------------------------
t_log "real syncoid: full, then incremental (orchestrator -> box over ssh)"
SYNCOID=(syncoid -r --sshkey "$LAB_SSH_KEY" --sshoption "UserKnownHostsFile=$LAB_KNOWN_HOSTS"
  --sshoption StrictHostKeyChecking=yes --sshoption BatchMode=yes --sshoption IdentitiesOnly=yes
  "$LAB_SRC_POOL/data" "root@$LAB_BOX_IP:$LAB_TGT_ROOT/data")
t0=$(now)
lab_exec_orch timeout 120 "${SYNCOID[@]}" >"$LAB_DIR/syncoid1.out" 2>&1
rc=$?
echo "measured: syncoid full $(ms_since "$t0") ms"
sed 's/^/    syncoid: /' "$LAB_DIR/syncoid1.out"
t_eq "syncoid full exit" 0 "$rc"
t_check "full send happened" grep -q "Sending oldest full snapshot $LAB_SRC_POOL/data@lab-initial" "$LAB_DIR/syncoid1.out"
t_check "target datasets received" zfs list -H -o name "$LAB_TGT_ROOT/data/child@lab-initial" >/dev/null
t_check "data identical after the full send" same_tree "$LAB_SRC_MNT/data" "$LAB_TGT_MNT/backup/data" "$LAB_TGT_ROOT/data"

echo "second generation $(date +%s)" >"$LAB_SRC_MNT/data/new.txt"
rm -f "$LAB_SRC_MNT/data/dir/sub/numbers.txt"
echo appended >>"$LAB_SRC_MNT/data/child/child.txt"
head -c 65536 /dev/urandom >"$LAB_SRC_MNT/data/child/more.bin"
sync
zfs snapshot -r "$LAB_SRC_POOL/data@lab-second"
# syncoid names its sync snapshots to the second: a second run within the same second as the
# first would collide with them ("dataset already exists"), so let the clock tick.
sleep 1.1
: >"$LAB_BOX_DIR/zfs-calls.log"
t0=$(now)
lab_exec_orch timeout 120 "${SYNCOID[@]}" >"$LAB_DIR/syncoid2.out" 2>&1
rc=$?
echo "measured: syncoid incremental $(ms_since "$t0") ms"
sed 's/^/    syncoid: /' "$LAB_DIR/syncoid2.out"
t_eq "syncoid incremental exit" 0 "$rc"
t_check "incremental, no full send" bash -c "grep -q 'incremental' '$LAB_DIR/syncoid2.out' && ! grep -q 'full snapshot' '$LAB_DIR/syncoid2.out'"
t_check "lab-second on the target" zfs list -H -o name "$LAB_TGT_ROOT/data@lab-second" "$LAB_TGT_ROOT/data/child@lab-second" >/dev/null
t_check "data identical after the incremental send" same_tree "$LAB_SRC_MNT/data" "$LAB_TGT_MNT/backup/data" "$LAB_TGT_ROOT/data"
t_check "box-side zfs wrapper emulated 'get -t snapshot' over ssh" grep -q 'get -Hpd 1 -t snapshot' "$LAB_BOX_DIR/zfs-calls.log"
t_check "box-side zfs receive went through the wrapper" grep -q 'receive' "$LAB_BOX_DIR/zfs-calls.log"

# ------------------------------------------------------------------------------------------
t_log "shutdown -h now over ssh powers the box off"
lab_mark_events
t0=$(now)
lab_ssh 'shutdown -h now' >/dev/null 2>&1
rc=$?
shut_ms=$(ms_since "$t0")
echo "measured: 'shutdown -h now' over ssh returned after $shut_ms ms (rc $rc)"
t_check "shutdown returned promptly (< 3 s)" test "$shut_ms" -lt 3000
t_check "poweroff event" lab_wait_event poweroff 5
t_check "off event" lab_wait_event off 10
t_check "port 22 closed" lab_wait_port_closed "$LAB_BOX_IP" "$LAB_SSH_PORT" 10
t_eq "box state" off "$(lab_box_state)"
t_check "box sshd gone" not box_sshd_running
t_check "the machine is still up (we are running)" true

# ------------------------------------------------------------------------------------------
t_log "--ignore-first 2: the box wakes on the third packet"
lab_powersim_restart --ignore-first 2
lab_mark_events
lab_wake
lab_wake
t_check "two packets ignored" lab_wait_event packet_ignored 5 2
sleep "$("$LAB_PY" -c "print($LAB_BOOT_DELAY + 0.5)")"
t_eq "still off after two packets" off "$(lab_box_state)"
t_eq "no boot yet" 0 "$(lab_count_events boot_started)"
lab_wake
t_check "third packet wakes it" lab_wait_event wol_received 5
t_check "ssh_up after the third packet" lab_wait_event ssh_up 20
lab_box_ctl poweroff
t_check "powered off again" state_is off 10

# ------------------------------------------------------------------------------------------
t_log "SecureOn password: 108-byte packet accepted, 102-byte ignored"
pw=0a0b0c0d0e0f
lab_powersim_restart --password "$pw"
lab_mark_events
lab_wake
t_check "102-byte packet ignored" lab_wait_event packet_ignored 5
t_eq "reason" password_missing "$(ev_field packet_ignored reason)"
lab_wake --password 010203040506
t_check "wrong password ignored" lab_wait_event packet_ignored 5 2
t_eq "reason" password_wrong "$(ev_field packet_ignored reason)"
sleep "$("$LAB_PY" -c "print($LAB_BOOT_DELAY + 0.5)")"
t_eq "still off" off "$(lab_box_state)"
lab_wake --password "$pw"
t_check "108-byte packet accepted" lab_wait_event wol_received 5
t_eq "accepted length" 108 "$(ev_field wol_received len)"
t_check "ssh_up with the password" lab_wait_event ssh_up 20
lab_ssh poweroff >/dev/null 2>&1
t_check "poweroff over ssh" state_is off 10

t_log "malformed packets and other MACs"
lab_powersim_restart
lab_mark_events
lab_exec_orch "$LAB_PY" "$LAB_WAKEONLAN" -q --raw-hex "ffffffffffff0011" >/dev/null
lab_exec_orch "$LAB_PY" "$LAB_WAKEONLAN" -q 02:00:5e:10:00:99 >/dev/null
lab_exec_orch "$LAB_PY" "$LAB_WAKEONLAN" -q -p 7 --raw-hex "$(printf 'ff%.0s' {1..6})$(printf '020000000001%.0s' {1..15})02005e100001" >/dev/null
t_check "short packet -> packet_invalid" lab_wait_event packet_invalid 5
t_check "other MAC -> packet_ignored" lab_wait_event packet_ignored 5
t_eq "other MAC reason" other_mac "$(ev_field packet_ignored reason)"
t_check "inconsistent MAC repeats -> invalid" lab_wait_event packet_invalid 5 2
t_eq "nothing booted" 0 "$(lab_count_events boot_started)"

# ------------------------------------------------------------------------------------------
t_log "relay: the relay's sshd is reachable and its wakeonlan wakes the box"
t_eq "relay ssh" relay "$(lab_ssh_relay 'echo relay')"
lab_mark_events
lab_ssh_relay "wakeonlan $LAB_BOX_MAC" >/dev/null
t_check "wol_received via the relay" lab_wait_event wol_received 5
t_eq "packet came from the relay" "$LAB_RELAY_IP" "$(ev_field wol_received from | cut -d: -f1)"
t_check "box up via relay" lab_wait_event ssh_up 20
lab_box_ctl poweroff
t_check "off" state_is off 10

# ------------------------------------------------------------------------------------------
t_log "notification receivers"
if "$LAB_PY" -c 'import aiosmtpd' 2>/dev/null; then
  t_check "receivers start" lab_start_receivers
  lab_exec_orch "$LAB_PY" -c '
import sys, urllib.request
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/hook?x=1", data=b"{\"ok\": true}", headers={"Content-Type": "application/json"}))
print(r.status)' "$LAB_HTTP_URL" >"$LAB_DIR/http.out" 2>&1
  t_eq "HTTP answered" 200 "$(cat "$LAB_DIR/http.out")"
  t_check "HTTP request recorded" grep -q '"path": "/hook"' "$LAB_HTTP_LOG"
  lab_http_status 503
  lab_exec_orch "$LAB_PY" -c '
import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1] + "/x"); print(200)
except urllib.error.HTTPError as e: print(e.code)' "$LAB_HTTP_URL" >"$LAB_DIR/http.out" 2>&1
  t_eq "configured status" 503 "$(cat "$LAB_DIR/http.out")"
  lab_exec_orch "$LAB_PY" -c '
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=10) as s:
    s.sendmail("hozo@lab", ["ops@lab"], "Subject: lab smoke\r\n\r\nhello\r\n")' "$LAB_SMTP_ADDR" "$LAB_SMTP_PORT"
  t_check "mail recorded" grep -q '"subject": "lab smoke"' "$LAB_MAILDIR/messages.jsonl"
  t_check ".eml written" test -s "$LAB_MAILDIR/0001.eml"
  lab_stop_receivers
else
  echo "note: python3-aiosmtpd missing, receivers not checked"
fi

# ------------------------------------------------------------------------------------------
t_log "teardown leaves nothing behind"
t0=$(now)
lab_down
echo "measured: lab_down $(ms_since "$t0") ms"
t_check "no lab namespaces" bash -c "! ip netns list | grep -E -- '-$LAB_ID( |\$)'"
t_check "no lab pools" bash -c "! zpool list -H -o name 2>/dev/null | grep -E '^(hzsrc|hztgt)$LAB_ID\$'"
t_check "no lab mounts" bash -c "! grep -F '$LAB_DIR' /proc/self/mounts"
t_check "no lab processes (sshd, powersim, receivers)" bash -c "! pgrep -f '[h]ozo-lab.$LAB_ID'"
t_check "lab directory removed" test ! -e "$LAB_DIR"
t_check "lab_leftovers reports nothing" lab_leftovers
t_done
