#!/usr/bin/env bash
# CLI behaviour of the real hozo binary that needs neither root nor a network: config validation
# on the malformed corpus, the Python Hōzō format, secrets masking, --dry-run touching nothing,
# corrupt state files, usage errors. Every command runs in a private network namespace when
# possible (unshare -n), proving that nothing here needs the network.
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
hozo_bin=${HOZO_BIN:-$src/build/hozo}
work=$(mktemp -d /tmp/hozo-cli-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
isolate=()
if [[ $(id -u) -eq 0 ]] && unshare -n true 2>/dev/null; then isolate=(unshare -n); fi
hozo() { # runs hozo (offline when possible); sets RC, OUT, ERR
  RC=0
  HOME=$work/home "${isolate[@]}" "$hozo_bin" "$@" >"$work/out" 2>"$work/err" </dev/null || RC=$?
  OUT=$(cat "$work/out")
  ERR=$(cat "$work/err")
}
expect_rc() { # WHAT EXPECTED
  if [[ $RC == "$2" ]]; then ok "$1 (exit $RC)"; else bad "$1: expected exit $2, got $RC; stderr: $ERR"; fi
}
mkdir -p "$work/home/.ssh"
# The default identity a run would use (config validate and --dry-run check it offline).
ssh-keygen -q -t ed25519 -N '' -f "$work/home/.ssh/id_ed25519" >/dev/null

# --- malformed configs: exit 78 and the right field or reason named ---------------------------
n=0
for f in "$src"/tests/config/malformed/*.yaml; do
  expect=$(sed -n '1s/^# expect: //p' "$f")
  hozo config validate "$f"
  n=$((n + 1))
  if [[ $RC == 78 && $ERR == *"$expect"* && $ERR == *"$(basename "$f")"* ]]; then
    ok "$(basename "$f"): 78, names \"$expect\""
  else
    bad "$(basename "$f"): expected 78 naming \"$expect\", got $RC: $ERR"
  fi
done
((n >= 20)) && ok "$n malformed configs checked" || bad "only $n malformed configs"

# --- good configs ------------------------------------------------------------------------------
hozo config validate "$src/tests/config/python-hozo.yaml"
expect_rc "Python Hōzō config validates unchanged" 0
[[ $ERR == *"auth"* ]] && ok "auth: block noticed" || bad "no notice about auth: ($ERR)"
hozo config validate "$src/examples/hozo.yaml"
expect_rc "examples/hozo.yaml validates" 0
hozo config example
cmp -s "$work/out" "$src/examples/hozo.yaml" && ok "config example == examples/hozo.yaml" || bad "config example differs"
HOZO_CONFIG=$src/examples/hozo.yaml hozo --state "$work/s1/state.json" jobs list
expect_rc "HOZO_CONFIG is honoured" 0

# --- secrets never printed ---------------------------------------------------------------------
printf 'filesecret7f3a\n' >"$work/token"
cat >"$work/secret.yaml" <<YAML
settings:
  notifications:
    ntfy_topic: t
    ntfy_token: inlinesecret91c2
    pushover_token: pushoversecret55aa
    pushover_user: pushoveruser66bb
    smtp:
      host: smtp.example.com
      user: u
      password_file: $work/token
      from_addr: hozo@example.com
      to_addr: admin@example.com
jobs:
  - name: data
    source: tank/data
    target_host: 192.0.2.10
    target_dataset: backup/data
    mac_address: "00:11:22:33:44:55"
YAML
for args in "jobs show data" "--json jobs show data" "jobs list" "--json jobs list" "jobs run data --dry-run" "-vv config validate"; do
  # shellcheck disable=SC2086
  hozo -c "$work/secret.yaml" --state "$work/s2/state.json" $args
  if [[ "$OUT$ERR" == *filesecret7f3a* || "$OUT$ERR" == *inlinesecret91c2* || "$OUT$ERR" == *pushoversecret55aa* || "$OUT$ERR" == *pushoveruser66bb* ]]; then
    bad "'$args' printed a secret"
  else
    ok "'$args' prints no secret"
  fi
done
hozo -c "$work/secret.yaml" jobs show data
[[ $OUT == *"********"* ]] && ok "secrets shown masked" || bad "no mask in jobs show"

# --- --dry-run touches nothing -----------------------------------------------------------------
hozo -c "$work/secret.yaml" --state "$work/s3/state.json" jobs run data --dry-run
expect_rc "dry run" 0
[[ $OUT == *"syncoid "*"--sshoption=StrictHostKeyChecking=yes"* ]] && ok "dry run prints the syncoid command" || bad "no syncoid command: $OUT"
[[ ! -e $work/s3 ]] && ok "dry run wrote no state" || bad "dry run created $work/s3"

# --- usage errors and unknown jobs ----------------------------------------------------------------
hozo -c "$work/secret.yaml" jobs run
expect_rc "jobs run without a name" 2
hozo -c "$work/secret.yaml" jobs run dta
expect_rc "unknown job" 2
[[ $ERR == *'did you mean "data"'* ]] && ok "did-you-mean for job names" || bad "no hint: $ERR"
hozo frobnicate
expect_rc "unknown command" 2
hozo --version
[[ $RC == 0 && $OUT == "hozo "* ]] && ok "--version: $OUT" || bad "--version: $RC $OUT"
hozo -c "$work/missing.yaml" jobs list
expect_rc "missing config" 78

# --- state file: status, corrupt file moved aside -----------------------------------------------
hozo -c "$work/secret.yaml" --state "$work/s4/state.json" status
expect_rc "status with a --state file that does not exist" 2
[[ ! -e $work/s4 ]] && ok "status created no directory" || bad "status created $work/s4"
mkdir -p "$work/s5"
printf '{"format": "hozo-state", "jobs": {"data": [' >"$work/s5/state.json"
hozo -c "$work/secret.yaml" --state "$work/s5/state.json" status data
expect_rc "status with a corrupt state file" 0
ls "$work/s5" | grep -q 'state.json.corrupt-' && ok "corrupt state moved aside" || bad "corrupt file not moved: $(ls "$work/s5")"
[[ $ERR == *corrupt* ]] && ok "corrupt state warned about" || bad "no warning: $ERR"
printf '{"format": "hozo-state", "jobs": {"data": [' >"$work/s5/state.json"
hozo -c "$work/secret.yaml" --state "$work/s5/state.json" --json status
"${PYTHON:-/usr/bin/python3}" -c 'import json,sys; json.loads(sys.argv[1])' "$OUT" && ok "status --json is JSON" || bad "status --json: $OUT"

echo "$pass passed, $fail failed"
((fail == 0))
