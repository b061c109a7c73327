#!/usr/bin/env bash
# Helpers for hozo's end-to-end lab tests (sourced after lab.sh): run the real hozo binary in the
# orchestrator namespace, write lab configs, assert on state, events and exit codes.
# Every test: source lab.sh + testlib.sh; lab_require; trap lab_down EXIT; lab_up; ...

HOZO_BIN=${HOZO_BIN:-$LAB_SRC_DIR/../../build/hozo}
T_FAILS=0
T_PASSES=0

t_log() { printf '== %s\n' "$*" >&2; }
t_pass() { T_PASSES=$((T_PASSES + 1)); printf 'ok   %s\n' "$*"; }
t_fail() { T_FAILS=$((T_FAILS + 1)); printf 'FAIL %s\n' "$*"; }
t_check() { # DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then t_pass "$what"; else t_fail "$what"; fi
}
t_eq() { # DESCRIPTION EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then t_pass "$1 ($3)"; else t_fail "$1: expected '$2', got '$3'"; fi
}
# Prints the closing line CTest and CI read, and exits non-zero when anything failed.
t_done() {
  echo "$T_PASSES passed, $T_FAILS failed (syncoid $(lab_syncoid_version))"
  ((T_FAILS == 0))
}

# The syncoid release the orchestrator runs ("2.2.0"), as its --version says.
lab_syncoid_version() {
  env PATH="$LAB_ORCH_PATH" syncoid --version 2>/dev/null | sed -n 's/.* version \([0-9.]*\).*/\1/p' | head -n 1
}
t_log "syncoid: ${LAB_SYNCOID:-2.1.0} (LAB_SYNCOID)"

# Runs hozo inside the orchestrator namespace with the lab's PATH (zfs compat wrapper first) and the
# test's config/state. Sets HOZO_RC; stdout to $T_OUT, stderr to $T_ERR.
T_CONFIG=
T_STATE=
hozo_run() {
  T_OUT=$LAB_DIR/hozo.out
  T_ERR=$LAB_DIR/hozo.err
  HOZO_RC=0
  ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
    "$HOZO_BIN" -c "$T_CONFIG" --state "$T_STATE" "$@" >"$T_OUT" 2>"$T_ERR" </dev/null || HOZO_RC=$?
  sed 's/^/    hozo: /' "$T_ERR" >&2
  return 0
}

# Writes a config with one job NAME replicating the lab's source pool to the box. Extra job lines
# ("key: value") are appended; a key given there replaces the default line for that key.
write_config() { # NAME [JOB YAML LINES...]
  local name=$1
  shift
  mkdir -p "$LAB_DIR/home"
  T_CONFIG=$LAB_DIR/hozo.yaml
  T_STATE=$LAB_DIR/state/state.json
  local -a defaults=(
    "source: $LAB_SRC_POOL/data"
    "target_host: $LAB_BOX_IP"
    "target_dataset: $LAB_TGT_ROOT/data"
    "mac_address: \"$LAB_BOX_MAC\""
    "ssh_key: $LAB_SSH_KEY"
    "known_hosts: $LAB_KNOWN_HOSTS"
    "ssh_timeout: 30"
    "retry_delay: 1"
  )
  local line
  local -A given=()
  for line in "$@"; do
    [[ $line == " "* ]] || given[${line%%:*}]=1
  done
  {
    echo "jobs:"
    echo "  - name: $name"
    for line in "${defaults[@]}"; do
      [[ -n ${given[${line%%:*}]:-} ]] || echo "    $line"
    done
    for line in "$@"; do echo "    $line"; done
  } >"$T_CONFIG"
}

# jq-free JSON access: json_get FILE PYTHON_EXPR (the parsed document is `d`).
json_get() { "$LAB_PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# The last run of JOB in the state file: state_get JOB EXPR (the run is `r`).
# state.json holds a summary per job; the newest run (running, else `last`) has its full record in
# runs/<job>/<run id>.json next to it.
state_get() {
  "$LAB_PY" "$LAB_SRC_DIR/hozo_state.py" "$T_STATE" "$1" "$2"
}

# The restores of JOB, oldest first: restores_get JOB EXPR (the list is `rs`).
restores_get() {
  "$LAB_PY" "$LAB_SRC_DIR/hozo_state.py" --restores "$T_STATE" "$1" "$2"
}
# One run of JOB by its id: run_get JOB RUN_ID EXPR (the run record is `r`).
run_get() {
  "$LAB_PY" "$LAB_SRC_DIR/hozo_state.py" "$T_STATE" "$1" "$3" "$2"
}

# zfs-fuse quirk: after an incremental receive into a parent dataset, a child's mount can go stale
# (listed but unreadable); remounting the received tree before comparing files avoids it.
remount_tree() { # DATASET
  local ds
  for ds in $(zfs list -H -o name -r "$1" | sort -r); do zfs unmount -f "$ds" 2>/dev/null; done
  for ds in $(zfs list -H -o name -r "$1"); do zfs mount "$ds" 2>/dev/null; done
}

# Switching the box on and off outside hozo (the simulator's power button).
box_on() { # wakes the box outside hozo and waits until sshd answers
  [[ $(lab_box_state) == on ]] && return 0
  lab_mark_events
  lab_wake && lab_wait_event ssh_up 20 >/dev/null
}
box_off() { # switches the box off outside hozo
  [[ $(lab_box_state) == off ]] && return 0
  lab_box_ctl poweroff
  for _ in $(seq 1 100); do [[ $(lab_box_state) == off ]] && return 0; sleep 0.1; done
}
