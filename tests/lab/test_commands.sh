#!/usr/bin/env bash
# Lab: the one-shot commands around a job — hozo hostkey [--accept] and hozo shutdown [--force].
set -uo pipefail
LAB_ID=${LAB_ID:-cmd$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

t_log "hozo hostkey: shows the fingerprint, --accept pins it, a changed key is never replaced"
kh=$LAB_DIR/kh-cmd
: >"$kh"
write_config box "known_hosts: $kh"
lab_mark_events
lab_wake && lab_wait_event ssh_up 20 >/dev/null
hozo_run hostkey box
t_eq "hostkey exits 0" 0 "$HOZO_RC"
expected=$(ssh-keygen -lf "$LAB_BOX_DIR/ssh_host_ed25519_key.pub" | awk '{print $2}')
t_check "prints the box's SHA256 fingerprint" grep -q "$expected" "$T_OUT"
t_check "says it is unknown and how to trust it" grep -q -- "--accept" "$T_OUT"
t_check "nothing pinned without --accept" test ! -s "$kh"
hozo_run hostkey box --accept
t_eq "hostkey --accept exits 0" 0 "$HOZO_RC"
t_check "key pinned" grep -q "$LAB_BOX_IP" "$kh"
hozo_run hostkey box
t_check "now known" grep -q "known" "$T_OUT"
ssh-keygen -q -t ed25519 -N '' -f "$LAB_DIR/impostor" <<<y >/dev/null 2>&1
echo "$LAB_BOX_IP $(cut -d' ' -f1,2 "$LAB_DIR/impostor.pub")" >"$kh"
hozo_run hostkey box --accept
t_eq "a changed key is refused" 1 "$HOZO_RC"
t_check "the impostor entry was not replaced" grep -q "$(cut -d' ' -f2 "$LAB_DIR/impostor.pub")" "$kh"

t_log "hozo shutdown: refuses while a job holds the host, --force overrides"
write_config box
lockfile=$LAB_DIR/state/hosts/$LAB_BOX_IP.lock
mkdir -p "$(dirname "$lockfile")"
flock -s "$lockfile" sleep 30 &
holder=$!
sleep 0.3
lab_mark_events
hozo_run shutdown box
t_eq "refused while in use (exit 75)" 75 "$HOZO_RC"
t_check "says why" grep -q "in use" "$T_ERR"
t_eq "box still on" on "$(lab_box_state)"
hozo_run shutdown box --force
t_eq "--force powers off" 0 "$HOZO_RC"
t_eq "one power-off event" 1 "$(lab_count_events poweroff)"
t_eq "box off" off "$(lab_box_state)"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
t_done
