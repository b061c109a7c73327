#!/usr/bin/env bash
# Lab: Wake-on-LAN and waiting for SSH with the real hozo binary (issue: lab and Wake-on-LAN).
#  - box off -> hozo wake + hozo wait -> packet logged, box boots, hozo sees it within one poll
#  - SecureOn password (108-byte packets), box ignoring the first packets (resends), box that never
#    boots (exit 69), box already on (reported as already up), malformed MACs rejected (exit 78)
#  - relay wake through a third namespace
set -uo pipefail
LAB_ID=${LAB_ID:-wol$$}
LAB_RELAY=1
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

t_log "box off: hozo wake + hozo wait"
write_config wol "wol_repeat: 1"
t_eq "box is off before the wake" off "$(lab_box_state)"
lab_mark_events
hozo_run wake wol
t_eq "hozo wake exits 0" 0 "$HOZO_RC"
hozo_run --json wait wol --no-resend
t_eq "hozo wait exits 0" 0 "$HOZO_RC"
end_wall=$(date +%s.%N)
# The simulator polls sshd's port every ~50 ms, so hozo may see sshd before `ssh_up` is logged.
lab_wait_event ssh_up 5 >/dev/null
t_eq "exactly one packet received" 1 "$(lab_count_events wol_received)"
t_check "packet was 102 bytes" grep -q '"len": 102' <(lab_last_event wol_received)
t_eq "wait reports not up before" False "$(json_get "$T_OUT" 'd["was_up_before"]')"
up_wall=$("$LAB_PY" -c 'import json,sys; print(json.loads(sys.argv[1])["wall"])' "$(lab_last_event ssh_up)")
lag=$("$LAB_PY" -c "print(round(($end_wall - $up_wall) * 1000))")
echo "measured: hozo noticed sshd ${lag} ms after the simulator saw it listening (poll interval 250 ms; includes process exit; the simulator itself polls every ~50 ms, so this can be negative)"
t_check "hozo saw sshd within one poll interval (+100 ms process slack)" test "$lag" -le 350

t_log "box already on"
lab_mark_events
hozo_run --json wait wol
t_eq "already-up wait exits 0" 0 "$HOZO_RC"
t_eq "reported as already up" True "$(json_get "$T_OUT" 'd["was_up_before"]')"
t_eq "no packet sent to a box that is up" 0 "$(lab_count_events wol_received)"

t_log "SecureOn password: 108-byte packets accepted, 102-byte ignored"
lab_powersim_restart --password 0a:0b:0c:0d:0e:0f
write_config wol "wol_repeat: 1" "ssh_timeout: 3"
lab_mark_events
hozo_run wake wol
hozo_run wait wol --no-resend
t_eq "without the password the box stays off (exit 69)" 69 "$HOZO_RC"
t_check "the packet was ignored" test "$(lab_count_events packet_ignored)$(lab_count_events packet_invalid)" != "00"
printf '0a-0b-0c-0d-0e-0f' >"$LAB_DIR/wol.password"
write_config wol "wol_repeat: 1" "wol_password_file: $LAB_DIR/wol.password"
lab_mark_events
hozo_run wake wol
hozo_run wait wol --no-resend
t_eq "with the password the box wakes" 0 "$HOZO_RC"
t_check "108-byte packet received" grep -q '"len": 108' <(lab_last_event wol_received)
t_check "the password is not in hozo's output" bash -c "! grep -qi '0a-0b-0c' '$T_ERR' '$T_OUT'"

t_log "box ignoring the first burst wakes thanks to resends"
lab_powersim_restart --ignore-first 2
write_config wol "wol_repeat: 2"
lab_mark_events
start=$(date +%s)
hozo_run wake wol
hozo_run wait wol
t_eq "box woke through a resend" 0 "$HOZO_RC"
t_check "first packets ignored" test "$(lab_count_events packet_ignored)" -ge 2
echo "measured: woke after $(($(date +%s) - start)) s (resend interval 10 s)"

t_log "box that never boots: exit 69 after ssh_timeout"
lab_powersim_restart --never-boot
write_config wol "ssh_timeout: 3"
start=$(date +%s.%N)
hozo_run wait wol
t_eq "never-booting box exits 69" 69 "$HOZO_RC"
t_check "the error names the host and the timeout" grep -q "did not answer with an SSH banner within" "$T_ERR"
elapsed=$("$LAB_PY" -c "print(round($(date +%s.%N) - $start, 1))")
echo "measured: gave up after ${elapsed} s (ssh_timeout 3 s)"

t_log "relay wake through the relay namespace"
lab_powersim_restart
# The default relay command is `wakeonlan -i {broadcast} -p {port} {mac}`; the relay has one on PATH.
write_config wol "wol_broadcast: $LAB_BROADCAST" "wol_relay:" "  host: $LAB_RELAY_IP" "  ssh_key: $LAB_SSH_KEY"
lab_mark_events
hozo_run wake wol
t_eq "relay wake exits 0" 0 "$HOZO_RC"
t_check "box received the packet from the relay" grep -q "$LAB_RELAY_IP" <(lab_last_event wol_received)
hozo_run wait wol --no-resend
t_eq "box woke via the relay" 0 "$HOZO_RC"

t_log "malformed MACs are rejected before anything is sent"
for mac in "zz:11:22:33:44:55" "00:11:22:33:44" "00:11:22:33:44:55:66" "00:11-22:33:44:55" ""; do
  write_config wol
  sed -i "s/mac_address: .*/mac_address: \"$mac\"/" "$T_CONFIG"
  hozo_run wake wol
  t_eq "MAC '$mac' rejected with 78" 78 "$HOZO_RC"
done
t_done
