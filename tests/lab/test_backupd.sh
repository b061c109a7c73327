#!/usr/bin/env bash
# Lab: the real backupd binary on the simulated backup box (issue: backupd).
#  - started at the simulated boot (LAB_BACKUPD=1: inside the box's pid + mount namespace, where
#    `shutdown` is the simulator's), listening on $LAB_BOX_IP:9999 with a token file
#  - from the orchestrator namespace with curl: /ping without a token; /status needs the token and
#    lists the target pool ONLINE; a traversal in /disk/{dev} is 400
#  - POST /shutdown → 202, then the target pool is exported and the simulator logs `poweroff`
set -uo pipefail
LAB_ID=${LAB_ID:-bd$$}
export LAB_BACKUPD=1 # backupd starts with the box (lab.sh: config, token, the zpool export shim)
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1

BD_DIR=$LAB_BACKUPD_DIR
TOKEN=$(cat "$LAB_BACKUPD_TOKEN_FILE")
BD_URL=$LAB_BACKUPD_URL

orch_curl() { ip netns exec "$LAB_NS_ORCH" curl -sS --max-time 10 "$@"; }
# HTTP status only.
orch_code() { orch_curl -o "$BD_DIR/body" -w '%{http_code}' "$@"; }

t_log "config check"
"$LAB_BACKUPD_BIN" --config "$LAB_BACKUPD_CONFIG" --check >/dev/null 2>&1
t_eq "--check accepts the lab config" 0 "$?"
printf 'listen: nowhere:99999\nbogus: 1\n' >"$BD_DIR/bad.yaml"
"$LAB_BACKUPD_BIN" --config "$BD_DIR/bad.yaml" --check >/dev/null 2>&1
t_eq "--check rejects a bad config with 78" 78 "$?"

t_log "box on: backupd starts with it (inside the box's pid + mount namespace)"
lab_mark_events
lab_wake
lab_wait_event ssh_up 30 || {
  t_fail "box did not boot"
  t_done
  exit 1
}
if ! lab_wait_port "$LAB_BOX_IP" "$LAB_BACKUPD_PORT" 10; then
  t_fail "backupd listens on $BD_URL"
  sed 's/^/    backupd: /' "$LAB_BACKUPD_LOG" >&2
  t_done
  exit 1
fi
t_pass "backupd listens on $BD_URL"

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
t_check "the token is not in backupd's log" bash -c "! grep -q '$TOKEN' '$LAB_BACKUPD_LOG'"

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
t_check "backupd logged the export" grep -q "exported pool $LAB_TGT_POOL" "$LAB_BACKUPD_LOG"
t_check "backupd is gone with the box" bash -c "! ip netns exec '$LAB_NS_ORCH' curl -s --max-time 2 '$BD_URL/ping' >/dev/null"
zpool import -d "$LAB_POOL_DIR" "$LAB_TGT_POOL" >/dev/null 2>&1
t_check "target pool re-imported" bash -c "zpool list -H -o name '$LAB_TGT_POOL' >/dev/null"
sed 's/^/    backupd: /' "$LAB_BACKUPD_LOG" >&2

t_done
