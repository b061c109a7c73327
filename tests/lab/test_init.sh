#!/usr/bin/env bash
# Lab: `hozo init` (issue 16) against the real box, the way a new user sets up: `init --yes`
# writes the config and a new key and prints the authorized_keys line; the test installs that
# line on the box (as the user would, while init waits for it); init wakes the box, pins its host
# key, logs in with the new key, runs the check and powers the box off again. Then `hozo check
# NAME --wake` is all ✓ and a first `hozo jobs run NAME` succeeds with equal data, box off.
# Then: no overwrite without --force, the key is never replaced, and the interactive path on a
# pseudo-terminal (script(1)) with a mistyped MAC asked again.
set -uo pipefail
LAB_ID=${LAB_ID:-init$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
command -v script >/dev/null || { echo "SKIP: script(1) (util-linux) is missing"; exit 77; }
trap 'set +e; [[ -n ${INIT_PID:-} ]] && kill "$INIT_PID" 2>/dev/null; lab_down' EXIT
lab_up || exit 1

D=$LAB_DIR/init
mkdir -p "$D" "$LAB_DIR/home"
T_CONFIG=$D/hozo.yaml
T_STATE=$LAB_DIR/state/state.json
KH=$D/known_hosts
KEY=$D/id_ed25519
mode_of() { stat -c %a "$1"; }
# The status symbol of the row NAME in FILE ("✓", "!", "✗", "-"), first match.
row() { awk -v n="$1" '{ line = $0; sub(/^  /, "", line); sym = substr(line, 1, index(line, " ") - 1);
  rest = substr(line, index(line, " ") + 1); if (index(rest, n) == 1) { print sym; exit } }' "$2"; }
show() { sed 's/^/    out: /' "$1" >&2; }
# The printed authorized_keys line (the one line that starts with from= or restrict).
printed_line() { grep -E '^(from="[^"]*",)?restrict ssh-ed25519 ' "$1" | head -1; }

# ------------------------------------------------------------------------------------------
t_log "1. hozo init --yes: config + key + line; the line is installed while init waits; host key pinned, check ✓, box off"
t_eq "box is off before init" off "$(lab_box_state)"
lab_mark_events
OUT=$D/init.out
ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
  "$HOZO_BIN" -c "$T_CONFIG" --state "$T_STATE" init --yes --name nightly --source "$LAB_SRC_POOL/data" \
  --target-host "$LAB_BOX_IP" --target-dataset "$LAB_TGT_ROOT/data" --mac "$LAB_BOX_MAC" \
  --known-hosts "$KH" --key-timeout 90s >"$OUT" 2>"$D/init.err" </dev/null &
INIT_PID=$!
line=
for _ in $(seq 1 100); do
  line=$(printed_line "$OUT")
  [[ -n $line ]] && break
  sleep 0.1
done
t_check "init printed an authorized_keys line" test -n "$line"
t_check "the line is restricted to this machine: from=\"$LAB_ORCH_IP\",restrict" \
  grep -q "^from=\"$LAB_ORCH_IP\",restrict ssh-ed25519 " <<<"$line"
t_eq "the line carries the new public key" "$(cut -d' ' -f1,2 "$KEY.pub")" "$(cut -d' ' -f2,3 <<<"$line")"
# As the user would: append it to authorized_keys on the box (the box's sshd reads this file).
sleep 2  # let init reach its wait for the key (it wakes the box and pins the host key first)
echo "$line" >>"$LAB_BOX_DIR/authorized_keys"
wait "$INIT_PID"
rc=$?
INIT_PID=
show "$OUT"
sed 's/^/    err: /' "$D/init.err" >&2
t_eq "init exits 0" 0 "$rc"
t_eq "config mode 600" 600 "$(mode_of "$T_CONFIG")"
t_eq "private key mode 600" 600 "$(mode_of "$KEY")"
t_eq "public key mode 644" 644 "$(mode_of "$KEY.pub")"
t_check "the private key is an OpenSSH ed25519 key (ssh-keygen reads it)" \
  bash -c "ssh-keygen -y -f '$KEY' | grep -q '^ssh-ed25519 '"
t_check "the config is commented" grep -q '^# hozo configuration for one job, written by `hozo init`' "$T_CONFIG"
t_check "the config names the new key" grep -q "ssh_key: \"$KEY\"" "$T_CONFIG"
hozo_run config validate
t_eq "hozo config validate passes" 0 "$HOZO_RC"
t_check "init woke the box" grep -q "waking it" "$OUT"
t_check "init showed the host key's fingerprint" grep -qE "presents ssh-ed25519 key SHA256:" "$OUT"
t_check "init pinned the host key" grep -q "✓ host key: pinned SHA256:" "$OUT"
t_check "known_hosts has the box" grep -q "^$LAB_BOX_IP ssh-ed25519 " "$KH"
t_check "init waited for the key" grep -q "not accepted yet" "$OUT"
t_check "the login with the new key worked" grep -q "✓ ssh login:" "$OUT"
t_check "init ran the check" grep -q "^hozo check nightly:" "$OUT"
t_eq "check inside init: no ✗ rows" 0 "$(grep -cE '^  ✗ ' "$OUT")"
t_check "init powered the box off" grep -q "✓ power off: init woke the box" "$OUT"
t_eq "one power-off" 1 "$(lab_count_events poweroff)"
t_eq "box is off after init" off "$(lab_box_state)"
t_check "no woken marker left" bash -c "! ls '$LAB_DIR'/state/hosts/*.woken >/dev/null 2>&1"

# ------------------------------------------------------------------------------------------
t_log "2. hozo check nightly --wake: every row ✓"
lab_mark_events
hozo_run check nightly --wake
show "$T_OUT"
t_eq "check exits 0" 0 "$HOZO_RC"
t_eq "no !, ✗ or - rows" 0 "$(grep -cE '^  [!✗-] ' "$T_OUT")"
for name in config syncoid host "host key" "ssh login" "zfs (box)" "target $LAB_TGT_ROOT/data" permissions "power off"; do
  t_eq "$name ✓" "✓" "$(row "$name" "$T_OUT")"
done
t_eq "box off after the check" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "3. hozo jobs run nightly: the first backup, data equal, box off"
lab_mark_events
hozo_run jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_eq "outcome success" success "$(state_get nightly 'r["outcome"]')"
t_eq "datasets verified" True "$(state_get nightly 'all(d["guid_match"] for d in r["datasets"])')"
remount_tree "$LAB_TGT_ROOT/data"
lab_tree_sums "$LAB_SRC_MNT/data" >"$D/sums.src"
lab_tree_sums "$LAB_TGT_MNT/backup/data" >"$D/sums.tgt"
t_check "source has files" test -s "$D/sums.src"
t_check "target data equals the source (sha256 of every file)" diff "$D/sums.src" "$D/sums.tgt"
t_eq "shutdown done" done "$(state_get nightly 'r["shutdown"]["outcome"]')"
t_eq "box off after the run" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "4. again: no overwrite without --force (exit 2); --force keeps a .bak and reuses the key"
before=$(sha256sum "$T_CONFIG" "$KEY" | cut -d' ' -f1)
hozo_run init --yes --offline --source "$LAB_SRC_POOL/other" --target-host "$LAB_BOX_IP" --mac "$LAB_BOX_MAC"
t_eq "exit 2 without --force" 2 "$HOZO_RC"
t_check "the error names --force" grep -q -- "--force" "$T_ERR"
t_eq "config and key unchanged" "$before" "$(sha256sum "$T_CONFIG" "$KEY" | cut -d' ' -f1)"
old_fp=$(ssh-keygen -lf "$KEY" | cut -d' ' -f2)
hozo_run init --yes --offline --force --source "$LAB_SRC_POOL/data" --target-host "$LAB_BOX_IP" \
  --target-dataset "$LAB_TGT_ROOT/data" --mac "$LAB_BOX_MAC" --known-hosts "$KH"
t_eq "--force exits 0" 0 "$HOZO_RC"
t_check "the old config is kept as .bak" test -s "$T_CONFIG.bak"
t_check "the key was reused, not replaced" grep -q "reusing the existing $KEY ($old_fp)" "$T_OUT"
t_eq "same key file" "$(echo "$before" | tail -1)" "$(sha256sum "$KEY" | cut -d' ' -f1)"
t_eq "box still off (--offline)" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "5. interactive on a terminal (script(1)): prompts with defaults, a bad MAC asked again, host key confirmed"
C2=$D/interactive.yaml
KH2=$D/known_hosts2
OUT2=$D/interactive.out
lab_mark_events
# Answers: name, source, children?, host, target dataset, WOL?, MAC (wrong), broadcast, user, port,
# key (the installed one), known_hosts, schedule; then the MAC again; then "y" for the host key.
answers=$(printf '%s\n' interactive "$LAB_SRC_POOL/data" y "$LAB_BOX_IP" "$LAB_TGT_ROOT/data2" y "zz:zz" "" "" "" \
  "$KEY" "$KH2" "" "$LAB_BOX_MAC" y)
rc=0
printf '%s\n' "$answers" >"$D/answers"
# script(1) hands its stdin to the pty and passes end-of-file on once everything was read.
ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" TERM=dumb \
  timeout 120 script -qefc "$(printf '%q ' "$HOZO_BIN" -c "$C2" --state "$T_STATE" init)" /dev/null \
  <"$D/answers" >"$OUT2" 2>&1 || rc=$?
tr -d '\r' <"$OUT2" >"$OUT2.txt"
show "$OUT2.txt"
t_eq "interactive init exits 0" 0 "$rc"
t_check "asked for the job name with its default" grep -q "Job name (used in .*) \[nightly\]:" "$OUT2.txt"
t_check "offered the default target dataset" grep -q "\[backup/data\]:" "$OUT2.txt"
t_check "said what is wrong with the MAC" grep -q "✗ jobs\[0\].mac_address" "$OUT2.txt"
t_check "asked to trust the host key" grep -q "Trust this key and pin it in $KH2? \[y/N\]" "$OUT2.txt"
t_check "pinned it" grep -q "✓ host key: pinned" "$OUT2.txt"
t_check "the config has the typed answers" \
  bash -c "grep -q 'name: \"interactive\"' '$C2' && grep -q 'target_dataset: \"$LAB_TGT_ROOT/data2\"' '$C2' && grep -q 'mac_address: \"$LAB_BOX_MAC\"' '$C2'"
t_check "the key was reused" grep -q "reusing the existing $KEY" "$OUT2.txt"
t_check "init ran the check" grep -q '^hozo check interactive:' "$OUT2.txt"
t_eq "the check has no ✗ rows" 0 "$(sed -n '/^hozo check interactive:/,$p' "$OUT2.txt" | grep -cE '^  ✗ ')"
t_eq "box off after interactive init" off "$(lab_box_state)"

# ------------------------------------------------------------------------------------------
t_log "6. without a terminal and without --yes: exit 2 naming the options, nothing written"
T_CONFIG=$D/none.yaml hozo_run init
t_eq "exit 2" 2 "$HOZO_RC"
t_check "names --yes and the options" bash -c "grep -q -- '--yes' '$T_ERR' && grep -q -- '--target-host' '$T_ERR'"
t_check "no config written" test ! -e "$D/none.yaml"

t_done
