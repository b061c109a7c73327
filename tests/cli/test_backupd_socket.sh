#!/usr/bin/env bash
# Socket activation without systemd as PID 1: systemd-socket-activate listens on 127.0.0.1 and
# hands backupd the socket (LISTEN_FDS/LISTEN_PID, as backupd.socket does). backupd serves that
# socket, ignores `listen` of its config (a different port) and says so, does not pass the
# variables on to its children, and refuses two sockets.
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
backupd_bin=${BACKUPD_BIN:-$(dirname "${HOZO_BIN:-$src/build/hozo}")/backupd}
[[ -x $backupd_bin ]] || { echo "SKIP: no backupd binary ($backupd_bin)"; exit 77; }
command -v systemd-socket-activate >/dev/null || { echo "SKIP: no systemd-socket-activate"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
work=$(mktemp -d /tmp/hozo-backupd-socket.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

token=sock-test-token-0123456789
printf '%s\n' "$token" >"$work/token"
chmod 600 "$work/token"
cfg_port=$(free_port)
# The shutdown command prints the environment it got: LISTEN_* must not reach children.
cat >"$work/backupd.yaml" <<YAML
listen: 127.0.0.1:$cfg_port
token_file: $work/token
shutdown_command: [/bin/sh, -c, "env > $work/child-env"]
shutdown_delay: 0s
YAML
port=$(free_port)
systemd-socket-activate -l "127.0.0.1:$port" "$backupd_bin" -c "$work/backupd.yaml" >"$work/log" 2>&1 &
pids+=($!)
answer=""
for _ in $(seq 1 50); do
  answer=$(curl -s --max-time 2 "http://127.0.0.1:$port/ping") && [[ -n $answer ]] && break
  sleep 0.1
done
[[ $answer == *'"status":"ok"'* ]] && ok "GET /ping on the socket systemd-socket-activate passed: $answer" ||
  bad "no answer on the activated socket: $answer; log: $(cat "$work/log")"
grep -q "listening on 127.0.0.1:$port (socket from systemd; 'listen' in the config is not used)" "$work/log" &&
  ok "backupd logs the socket it got and that 'listen' is not used" || bad "log: $(cat "$work/log")"
curl -s --max-time 1 "http://127.0.0.1:$cfg_port/ping" >/dev/null && bad "backupd also bound 'listen' ($cfg_port)" ||
  ok "the config's listen port stays unbound"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H "Authorization: Bearer $token" \
  -H 'Content-Length: 0' "http://127.0.0.1:$port/shutdown")
[[ $code == 202 ]] && ok "POST /shutdown with the token: 202" || bad "POST /shutdown: $code"
for _ in $(seq 1 50); do [[ -s $work/child-env ]] && break; sleep 0.1; done
if [[ -s $work/child-env ]]; then
  grep -q '^LISTEN_' "$work/child-env" && bad "the shutdown command saw $(grep '^LISTEN_' "$work/child-env")" ||
    ok "the shutdown command did not inherit LISTEN_FDS/LISTEN_PID"
else
  bad "the shutdown command did not run"
fi
kill "${pids[0]}" 2>/dev/null
wait "${pids[0]}" 2>/dev/null
pids=()

# Two sockets: a configuration error (78), not a guess.
p1=$(free_port)
p2=$(free_port)
rc=0
timeout 10 systemd-socket-activate -l "127.0.0.1:$p1" -l "127.0.0.1:$p2" "$backupd_bin" -c "$work/backupd.yaml" \
  >"$work/log2" 2>&1 &
pid=$!
pids+=($pid)
# The first connection starts it; until systemd-socket-activate listens, curl cannot connect (7).
for _ in $(seq 1 50); do
  curl -s --max-time 2 "http://127.0.0.1:$p1/ping" >/dev/null 2>&1
  [[ $? != 7 ]] && break
  sleep 0.1
done
wait "$pid" || rc=$?
pids=()
[[ $rc == 78 ]] && grep -q "systemd passed 2 sockets" "$work/log2" && ok "two sockets: exit 78, named" ||
  bad "two sockets: exit $rc; log: $(cat "$work/log2")"

echo "backupd socket activation: $pass passed, $fail failed"
((fail == 0))
