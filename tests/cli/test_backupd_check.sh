#!/usr/bin/env bash
# `backupd --check`: a missing config file or no token fails (78); a token file readable by group
# or others and a non-loopback listen address over plain HTTP are loud warnings (exit 0); every
# problem is reported at once; shutdown_command may be a string (split into words, no shell) or a
# list; messages carry one key prefix ("listen: invalid port", never "listen: listen:").
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
backupd_bin=${BACKUPD_BIN:-$(dirname "${HOZO_BIN:-$src/build/hozo}")/backupd}
[[ -x $backupd_bin ]] || { echo "SKIP: no backupd binary ($backupd_bin)"; exit 77; }
work=$(mktemp -d /tmp/hozo-backupd-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
check() { # CONFIG: runs backupd --check; sets RC, OUT, ERR
  RC=0
  env -u CREDENTIALS_DIRECTORY "$backupd_bin" --check -c "$1" "${@:2}" >"$work/out" 2>"$work/err" </dev/null || RC=$?
  OUT=$(cat "$work/out")
  ERR=$(cat "$work/err")
}
expect() { # WHAT RC [PATTERN...]: exit code and every pattern in stdout+stderr
  local what=$1 rc=$2 p
  shift 2
  [[ $RC == "$rc" ]] || { bad "$what: expected exit $rc, got $RC; out: $OUT; err: $ERR"; return; }
  for p in "$@"; do
    [[ "$OUT$ERR" == *"$p"* ]] || { bad "$what: '$p' missing; out: $OUT; err: $ERR"; return; }
  done
  ok "$what (exit $RC)"
}
token=$work/token
printf 'check-test-token-0123456789\n' >"$token"
chmod 600 "$token"
good() { printf 'listen: 127.0.0.1:9999\ntoken_file: %s\n' "$token"; }

# (a) missing config file, no token
check "$work/missing.yaml"
expect "missing config file" 78 "$work/missing.yaml"
printf 'listen: 127.0.0.1:9999\n' >"$work/notoken.yaml"
check "$work/notoken.yaml"
expect "no token" 78 "token: none configured"
good >"$work/good.yaml"
check "$work/good.yaml"
expect "good config" 0 "OK (listen 127.0.0.1:9999, token file $token"
[[ -z $ERR ]] && ok "good config: no warnings" || bad "good config warned: $ERR"

# (b) loud warnings, exit 0
chmod 644 "$token"
check "$work/good.yaml"
expect "world-readable token" 0 "WARNING: token: $token is readable by every user (mode 0644)" "chmod 600 $token" "1 warning"
chmod 640 "$token"
check "$work/good.yaml"
expect "group-readable token" 0 "WARNING: token: $token is readable by its group (mode 0640)"
chmod 600 "$token"
printf 'listen: 0.0.0.0:9999\ntoken_file: %s\n' "$token" >"$work/lan.yaml"
check "$work/lan.yaml"
expect "non-loopback listen over plain HTTP" 0 "WARNING: listen: 0.0.0.0 is not a loopback address" "plain HTTP"
check "$work/good.yaml" --listen 192.0.2.10:9999
expect "--listen on a LAN address warns too" 0 "WARNING: listen: 192.0.2.10"

# (c) every problem at once (config keys and the token)
cat >"$work/many.yaml" <<YAML
listen: 127.0.0.1:99999
threds: 4
shutdown_delay: forever
token_file: $work/no-such-token
YAML
check "$work/many.yaml"
expect "all problems reported" 78 "many.yaml:1:9: listen: invalid port '99999'" "many.yaml:2:1: threds: unknown key" \
  "many.yaml:3:17: shutdown_delay:" "token: " "no-such-token" "4 problems found"

# (d) shutdown_command as a string or a list
printf '%s\nshutdown_command: systemctl poweroff --no-wall\n' "$(good)" >"$work/string.yaml"
check "$work/string.yaml"
expect "shutdown_command as a string" 0 "shutdown_command 'systemctl poweroff --no-wall'"
printf '%s\nshutdown_command: [/sbin/poweroff, -f]\n' "$(good)" >"$work/list.yaml"
check "$work/list.yaml"
expect "shutdown_command as a list" 0 "shutdown_command '/sbin/poweroff -f'"
printf '%s\nshutdown_command: "shutdown -h now; reboot"\n' "$(good)" >"$work/shell.yaml"
check "$work/shell.yaml"
expect "shutdown_command with shell syntax" 78 "shutdown_command: ';' is shell syntax, and backupd runs no shell"

# (e) one prefix per message
printf 'listen: 127.0.0.1:x\ntoken_file: %s\n' "$token" >"$work/port.yaml"
check "$work/port.yaml"
expect "bad port" 78 "port.yaml:1:9: listen: invalid port 'x'"
[[ "$OUT$ERR" != *"listen: listen"* ]] && ok "no doubled 'listen: listen:'" || bad "doubled prefix: $ERR"
check "$work/good.yaml" --listen 127.0.0.1:x
expect "bad --listen" 2 "--listen: invalid port 'x'"
[[ "$ERR" != *"listen: listen"* ]] && ok "no doubled prefix for --listen" || bad "doubled prefix: $ERR"

# old keys still load, with a warning
printf '%s\nthreads: 8\nmax_queued: 64\nwrite_timeout: 5s\nkeep_alive_timeout: 5s\n' "$(good)" >"$work/old.yaml"
check "$work/old.yaml"
expect "keys of older versions" 0 "WARNING: threads (each connection has its own thread" "4 warnings"

echo "backupd --check: $pass passed, $fail failed"
((fail == 0))
