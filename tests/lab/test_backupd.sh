#!/usr/bin/env bash
# Lab: the real backupd binary on the simulated backup box (issue: backupd).
#  - started over SSH on the box (inside its pid + mount namespace, where `shutdown` is the
#    simulator's), listening on $LAB_BOX_IP:9999 with a token file
#  - from the orchestrator namespace with curl: /ping without a token; /status needs the token and
#    lists the target pool ONLINE; a traversal in /disk/{dev} is 400
#  - POST /shutdown → 202, then the target pool is exported and the simulator logs `poweroff`
set -uo pipefail
LAB_ID=${LAB_ID:-bd$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
BACKUPD_BIN=${BACKUPD_BIN:-/work/main/build/backupd}
if [[ ! -x "$BACKUPD_BIN" ]]; then
  echo "SKIP: backupd binary not found at $BACKUPD_BIN (set BACKUPD_BIN)"
  exit 77
fi
lab_require
HELPER_PID=
cleanup() {
  set +e
  [[ -n "$HELPER_PID" ]] && kill "$HELPER_PID" 2>/dev/null
  # The pool may still be exported if the test stopped half-way: import it so lab_down can clean up.
  if [[ -n "${LAB_TGT_POOL:-}" ]] && ! zpool list -H -o name "$LAB_TGT_POOL" >/dev/null 2>&1; then
    zpool import -d "$LAB_DIR/pools" "$LAB_TGT_POOL" >/dev/null 2>&1
  fi
  lab_down
}
trap cleanup EXIT
lab_up || exit 1

BD_DIR=$LAB_DIR/backupd
mkdir -p "$BD_DIR"
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077 && printf '%s\n' "$TOKEN" >"$BD_DIR/token")
BD_URL="http://$LAB_BOX_IP:9999"

orch_curl() { ip netns exec "$LAB_NS_ORCH" curl -sS --max-time 10 "$@"; }
# HTTP status only.
orch_code() { orch_curl -o "$BD_DIR/body" -w '%{http_code}' "$@"; }

t_log "box on"
lab_mark_events
lab_wake
lab_wait_event ssh_up 30 || {
  t_fail "box did not boot"
  t_done
  exit 1
}
lab_wait_port "$LAB_BOX_IP" "$LAB_SSH_PORT" 15 || t_fail "sshd not reachable"

# The fake power command inside the box's mount namespace (covers /usr/sbin/shutdown too).
SHUTDOWN_CMD=shutdown
if lab_ssh 'test -x /usr/local/sbin/shutdown' </dev/null; then SHUTDOWN_CMD=/usr/local/sbin/shutdown; fi
cat >"$BD_DIR/backupd.yaml" <<EOF
listen: $LAB_BOX_IP:9999
token_file: $BD_DIR/token
export_pools: [$LAB_TGT_POOL]
shutdown_command: ["$SHUTDOWN_CMD", "-h", "now"]
shutdown_delay: 1s
EOF

# Lab fixture: the box shares the host's single zfs-fuse daemon and its mounts are slave copies of
# the host's, so a `zpool export` run inside the box's mount namespace finds the pool "busy" (the
# host's copy of the FUSE mount stays). On a real box ZFS is local. backupd on the box finds this
# `zpool` shim first in PATH: `zpool export POOL` is handed to a helper loop in the host namespace
# (whose unmount propagates to the box); every other zpool command runs unchanged.
mkdir -p "$BD_DIR/bin"
mkfifo "$BD_DIR/export.fifo"
cat >"$BD_DIR/bin/zpool" <<EOF
#!/bin/sh
if [ "\$1" = export ]; then
  shift
  rm -f '$BD_DIR/export.rc'
  printf '%s\n' "\$*" >'$BD_DIR/export.fifo'
  i=0
  while [ ! -s '$BD_DIR/export.rc' ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i + 1)); done
  cat '$BD_DIR/export.out' >&2 2>/dev/null
  exit "\$(cat '$BD_DIR/export.rc' 2>/dev/null || echo 1)"
fi
exec /usr/sbin/zpool "\$@"
EOF
chmod +x "$BD_DIR/bin/zpool"
export_helper() {
  local args
  while [[ -p "$BD_DIR/export.fifo" ]]; do
    read -r args <"$BD_DIR/export.fifo" || continue
    if [[ "$args" =~ ^[A-Za-z0-9_.:-]+$ ]]; then
      zpool export "$args" >"$BD_DIR/export.out" 2>&1
      echo $? >"$BD_DIR/export.rc.tmp"
    else
      echo "refused: $args" >"$BD_DIR/export.out"
      echo 2 >"$BD_DIR/export.rc.tmp"
    fi
    mv "$BD_DIR/export.rc.tmp" "$BD_DIR/export.rc"
  done
}
export_helper &
HELPER_PID=$!

t_log "config check"
"$BACKUPD_BIN" --config "$BD_DIR/backupd.yaml" --check >/dev/null 2>&1
t_eq "--check accepts the lab config" 0 "$?"
printf 'listen: nowhere:99999\nbogus: 1\n' >"$BD_DIR/bad.yaml"
"$BACKUPD_BIN" --config "$BD_DIR/bad.yaml" --check >/dev/null 2>&1
t_eq "--check rejects a bad config with 78" 78 "$?"

t_log "start backupd on the box (inside its pid + mount namespace)"
lab_ssh "PATH='$BD_DIR/bin':\$PATH nohup '$BACKUPD_BIN' --config '$BD_DIR/backupd.yaml' -v >'$BD_DIR/backupd.log' 2>&1 </dev/null &" </dev/null
if ! lab_wait_port "$LAB_BOX_IP" 9999 10; then
  t_fail "backupd listens on $LAB_BOX_IP:9999"
  sed 's/^/    backupd: /' "$BD_DIR/backupd.log" >&2
  t_done
  exit 1
fi
t_pass "backupd listens on $LAB_BOX_IP:9999"

t_log "endpoints from the orchestrator namespace"
t_eq "/ping without a token" 200 "$(orch_code "$BD_URL/ping")"
t_check "/ping says ok" grep -q '"status":"ok"' "$BD_DIR/body"
t_eq "/status without a token" 401 "$(orch_code "$BD_URL/status")"
t_eq "/status with a wrong token" 401 "$(orch_code -H "Authorization: Bearer wrong$TOKEN" "$BD_URL/status")"
t_eq "/shutdown without a token" 401 "$(orch_code -X POST -d '' "$BD_URL/shutdown")"
t_eq "/status with the token" 200 "$(orch_code -H "Authorization: Bearer $TOKEN" "$BD_URL/status")"
health=$("$LAB_PY" -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(next((p["health"] for p in d["pools"] if p["name"]==sys.argv[2]), "missing"))' "$BD_DIR/body" "$LAB_TGT_POOL")
t_eq "/status lists the target pool" ONLINE "$health"
t_eq "traversal in /disk/{dev}" 400 "$(orch_code -H "Authorization: Bearer $TOKEN" --path-as-is "$BD_URL/disk/..%2F..%2Fetc%2Fpasswd")"
t_eq "injection in /disk/{dev}" 400 "$(orch_code -H "Authorization: Bearer $TOKEN" "$BD_URL/disk/sda%3Breboot")"
t_check "the token is not in backupd's log" bash -c "! grep -q '$TOKEN' '$BD_DIR/backupd.log'"

t_log "POST /shutdown: export, then the box powers off"
lab_mark_events
t_eq "/shutdown with the token" 202 "$(orch_code -X POST -d '' -H "Authorization: Bearer $TOKEN" "$BD_URL/shutdown")"
if lab_wait_event poweroff 20; then t_pass "simulator logged poweroff"; else t_fail "simulator logged poweroff"; fi
lab_wait_event off 20 >/dev/null 2>&1
if zpool list -H -o name 2>/dev/null | grep -qx "$LAB_TGT_POOL"; then
  t_fail "target pool $LAB_TGT_POOL was exported"
else
  t_pass "target pool $LAB_TGT_POOL was exported"
fi
t_check "backupd logged the export" grep -q "exported pool $LAB_TGT_POOL" "$BD_DIR/backupd.log"
t_check "backupd is gone with the box" bash -c "! ip netns exec '$LAB_NS_ORCH' curl -s --max-time 2 '$BD_URL/ping' >/dev/null"
zpool import -d "$LAB_DIR/pools" "$LAB_TGT_POOL" >/dev/null 2>&1
t_check "target pool re-imported" bash -c "zpool list -H -o name '$LAB_TGT_POOL' >/dev/null"
sed 's/^/    backupd: /' "$BD_DIR/backupd.log" >&2

t_done
