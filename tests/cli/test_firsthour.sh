#!/usr/bin/env bash
# Issue #16, "First hour with hozo": one check (or a few) per numbered defect the new user met,
# showing the new behaviour. Offline like test_cli.sh: every hozo runs in `unshare -n` when
# possible; no root-only or network step is needed (item 4 uses a private mount namespace so a
# wrong --install could not touch the real /etc/systemd/system).
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
hozo_bin=${HOZO_BIN:-$src/build/hozo}
py=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d /tmp/hozo-firsthour.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
check() { # WHAT COMMAND...: ok when the command succeeds
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what (rc $RC; out: ${OUT:0:600}; err: ${ERR:0:600})"; fi
}
isolate=()
if [[ $(id -u) -eq 0 ]] && unshare -n true 2>/dev/null; then isolate=(unshare -n); fi
home=$work/home
hozo() { # runs hozo offline; sets RC, OUT, ERR
  RC=0
  HOME=$home TZ=${TZ_OVERRIDE:-UTC} "${isolate[@]}" "$hozo_bin" "$@" >"$work/out" 2>"$work/err" </dev/null || RC=$?
  OUT=$(cat "$work/out")
  ERR=$(cat "$work/err")
}
rc_is() { [[ $RC == "$1" ]]; }
out_has() { [[ $OUT == *"$1"* ]]; }
err_has() { [[ $ERR == *"$1"* ]]; }
json_ok() { "$py" -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if ($1) else 1)" "$OUT" 2>/dev/null; }
mkdir -p "$home/.ssh"
ssh-keygen -q -t ed25519 -N '' -f "$home/.ssh/id_ed25519" >/dev/null
ssh-keygen -q -t ed25519 -N 'secret pass' -f "$work/locked_key" >/dev/null
pubkey=$(cut -d' ' -f1,2 "$home/.ssh/id_ed25519.pub")
printf '192.0.2.10 %s\n' "$pubkey" >"$work/known_hosts"
: >"$work/empty_known_hosts"

job() { # NAME [EXTRA LINES...]: one job entry
  local name=$1
  shift
  local line extra=" $* "
  printf '  - name: %s\n    source: tank/%s\n    target_dataset: backup/%s\n' "$name" "$name" "$name"
  [[ $extra == *" target_host:"* ]] || printf '    target_host: 192.0.2.10\n'
  [[ $extra == *" mac_address:"* ]] || printf '    mac_address: "00:11:22:33:44:55"\n'
  [[ $extra == *" known_hosts:"* ]] || printf '    known_hosts: %s\n' "$work/known_hosts"
  for line in "$@"; do printf '    %s\n' "$line"; done
}

# --- 1. one bad job does not block the others -----------------------------------------------------
{ echo "jobs:"; job good; job bad 'mac_address: "00:11:22:33:44"'; } >"$work/one-bad.yaml"
c=(-c "$work/one-bad.yaml" --state "$work/st1/state.json")
hozo "${c[@]}" jobs run good --dry-run
check "1: jobs run good --dry-run works while bad is broken (exit 0)" rc_is 0
check "1: ... with a loud warning naming the broken job" err_has 'job "bad" CANNOT RUN'
hozo "${c[@]}" jobs run --all --dry-run
check "1: jobs run --all plans the good job and still exits 78 for the broken one" \
  bash -c '[[ $1 == 78 && $2 == *"job good: dry run"* && $2 != *"job bad"* ]]' _ "$RC" "$OUT"
hozo "${c[@]}" jobs run bad --dry-run
check "1: jobs run bad exits 78" rc_is 78
check "1: ... naming the field" err_has "jobs[1].mac_address"
mkdir -p "$work/st1"
printf '{"format": "hozo-state", "version": 1, "jobs": {"bad": {"runs": [{"run_id": "20261201T010000Z-1", "job": "bad", "outcome": "success", "started": "2026-12-01T01:00:00Z", "finished": "2026-12-01T01:10:00Z"}]}}}\n' >"$work/st1/state.json"
hozo "${c[@]}" status
check "1: status works (exit 0)" rc_is 0
check "1: status marks the broken job" out_has "CONFIG ERROR"
hozo "${c[@]}" --json status
check "1: --json status prints JSON with config_error for bad only" \
  json_ok '[j["name"] for j in d if j["config_error"]] == ["bad"] and any(j["name"] == "good" for j in d)'
hozo "${c[@]}" jobs list
check "1: jobs list works and marks bad" bash -c '[[ $1 == 0 && $2 == *"bad"*"CONFIG ERROR"* ]]' _ "$RC" "$OUT"
hozo "${c[@]}" history bad
check "1: history of the broken job still shows its runs" bash -c '[[ $1 == 0 && $2 == *20261201T010000Z-1* ]]' _ "$RC" "$OUT"
hozo "${c[@]}" status bad
check "1: status bad shows the error and exits 78" bash -c '[[ $1 == 78 && $2 == *"invalid MAC"* ]]' _ "$RC" "$OUT"
hozo config validate "$work/one-bad.yaml"
check "1: config validate still fails with 78 and lists the problem" \
  bash -c '[[ $1 == 78 && $2 == *"jobs[1].mac_address"* && $2 == *"cannot run: bad"* ]]' _ "$RC" "$ERR"
{ echo "settings:"; echo "  ssh_port: 0"; echo "jobs:"; job good; } >"$work/bad-settings.yaml"
hozo -c "$work/bad-settings.yaml" --state "$work/st1/state.json" status
check "1: an error in settings: still stops everything (78)" rc_is 78

# --- 2. bad keys are caught offline ----------------------------------------------------------------
key_case() { # WHAT EXPECT-RC EXPECT-TEXT JOB-LINES...
  local what=$1 want=$2 text=$3
  shift 3
  { echo "jobs:"; job k "$@"; } >"$work/key.yaml"
  hozo config validate "$work/key.yaml"
  check "2: validate, $what: exit $want naming \"$text\"" bash -c '[[ $1 == "$2" && $3 == *"$4"* ]]' _ "$RC" "$want" "$OUT$ERR" "$text"
}
key_case "ssh_key missing" 78 "$work/nokey does not exist" "ssh_key: $work/nokey"
key_case "ssh_key is a .pub file" 78 "is a public key" "ssh_key: $home/.ssh/id_ed25519.pub"
key_case "ssh_key has a passphrase" 78 "protected by a passphrase" "ssh_key: $work/locked_key"
key_case "ssh_key is a directory" 78 "is a directory" "ssh_key: $home/.ssh"
key_case "a good key, pinned host" 0 "OK, 1 job" "ssh_key: $home/.ssh/id_ed25519"
{ echo "jobs:"; job k "ssh_key: $work/locked_key"; } >"$work/key.yaml"
hozo -c "$work/key.yaml" --state "$work/st2/state.json" jobs run k --dry-run
check "2: --dry-run reports the passphrase-protected key and exits 78" \
  bash -c '[[ $1 == 78 && $2 == *"protected by a passphrase"* ]]' _ "$RC" "$OUT"
mkdir -p "$work/nohome"
{ echo "jobs:"; job k; } >"$work/key.yaml"
RC=0
HOME=$work/nohome "${isolate[@]}" "$hozo_bin" config validate "$work/key.yaml" >"$work/out" 2>"$work/err" </dev/null || RC=$?
ERR=$(cat "$work/err")
check "2: no ssh_key and no default key: names the key the run would use" \
  bash -c '[[ $1 == 78 && $2 == *"would use $3/.ssh/id_ed25519"* ]]' _ "$RC" "$ERR" "$work/nohome"
key_case "strict policy, no known_hosts file" 0 'hozo hostkey k --accept' "known_hosts: $work/nothere"
check "2: ... as a warning" err_has "warning:"
key_case "strict policy, no entry for the host" 0 "has no key for 192.0.2.10" "known_hosts: $work/empty_known_hosts"
key_case "accept-new: no known_hosts warning" 0 "OK, 1 job(s)" "known_hosts: $work/nothere" "host_key_policy: accept-new"
check "2: ... and no warning at all" bash -c '[[ $1 != *warning* ]]' _ "$ERR"
hozo config validate --no-local-checks "$work/key.yaml"
check "2: --no-local-checks skips the machine's files" rc_is 0

# --- 3. invalid addresses ------------------------------------------------------------------------
addr_case() { # WHAT WANT LINE...
  local what=$1 want=$2
  shift 2
  { echo "jobs:"; job a "$@"; } >"$work/addr.yaml"
  hozo config validate --no-local-checks "$work/addr.yaml"
  check "3: $what: exit $want" rc_is "$want"
}
addr_case "target_host 192.0.2.300" 78 "target_host: 192.0.2.300"
check "3: ... says invalid IPv4" err_has "invalid IPv4 address"
addr_case "wol_broadcast 192.0.2.256" 78 "wol_broadcast: 192.0.2.256"
addr_case "target_host 192.0.2 (three numbers)" 78 "target_host: 192.0.2"
addr_case "a host name is still fine" 0 "target_host: backup.example.com"
addr_case "a host name starting with digits is fine" 0 "target_host: 1und1.example.com"
addr_case "MAC ff:ff:ff:ff:ff:ff" 78 'mac_address: "ff:ff:ff:ff:ff:ff"'
check "3: ... named the broadcast address" err_has "broadcast address"
addr_case "multicast MAC 01:00:5e:00:00:01" 78 'mac_address: "01:00:5e:00:00:01"'
check "3: ... named multicast" err_has "multicast"
addr_case "MAC 00:00:00:00:00:00" 78 'mac_address: "00:00:00:00:00:00"'
{ echo "jobs:"; job a; job b 'mac_address: "00:11:22:33:44:66"'; } >"$work/twomacs.yaml"
hozo config validate --no-local-checks "$work/twomacs.yaml"
check "3: same box, different MACs: a warning (exit 0)" \
  bash -c '[[ $1 == 0 && $2 == *"warning:"*"woken with MAC 00:11:22:33:44:66"* ]]' _ "$RC" "$ERR"
{ echo "jobs:"; job a; printf '  - name: a2\n    source: tank/a\n    target_dataset: backup/a\n    target_host: 192.0.2.10\n    mac_address: "00:11:22:33:44:55"\n'; } >"$work/same.yaml"
hozo config validate --no-local-checks "$work/same.yaml"
check "3: two jobs with the same source and target: a warning" err_has 'like job "a"'

# --- 4. schedule --install -c /tmp/... (PrivateTmp hides it) -------------------------------------
{ echo "jobs:"; job nightly 'schedule: "daily 02:00"'; } >"$work/tmp-config.yaml"
if [[ $(id -u) -eq 0 ]] && unshare -m true 2>/dev/null; then
  RC=0
  # A private mount namespace with an empty /etc/systemd/system: even a wrong install stays in it.
  HOME=$home unshare -m -n sh -c 'mount -t tmpfs hozo-test /etc/systemd/system && "$@"; rc=$?; ls -A /etc/systemd/system >&2; exit $rc' \
    _ "$hozo_bin" -c "$work/tmp-config.yaml" schedule --install >"$work/out" 2>"$work/err" </dev/null || RC=$?
  ERR=$(cat "$work/err")
  check "4: schedule --install with a config under /tmp is refused (exit 2, PrivateTmp named)" \
    bash -c '[[ $1 == 2 && $2 == *PrivateTmp* && $2 == *"nothing installed"* && $2 != *"hozo@nightly"* ]]' _ "$RC" "$ERR"
else
  echo "skip 4: needs root and unshare -m"
fi
hozo -c "$work/tmp-config.yaml" schedule --install --dir "$work/units"
check "4: with --dir it installs but warns about PrivateTmp" bash -c '[[ $1 == 0 && $2 == *PrivateTmp* ]]' _ "$RC" "$ERR"

# --- 5. the example sends nothing until edited ---------------------------------------------------
hozo config example
cp "$work/out" "$work/example.yaml"
check "5: no active ntfy_topic, smtp block or backup_device in the example" \
  bash -c '! grep -Eq "^ *(ntfy_topic|smtp|backup_device):" "$1"' _ "$work/example.yaml"
check "5: defaults and examples are marked apart" bash -c 'grep -q "(default)" "$1" && grep -q "EXAMPLE" "$1"' _ "$work/example.yaml"
hozo -c "$work/example.yaml" --json jobs show tank-data
check "5: a job of the example has no notification channel" \
  json_ok 'd["notifications"]["ntfy_topic"] == "" and d["notifications"]["smtp"] is None and d["backup_device"] == ""'

# --- 6. --json is consistent ---------------------------------------------------------------------
{ echo "jobs:"; job manual1; job sched 'schedule: "daily 02:00"'; } >"$work/json.yaml"
c=(-c "$work/json.yaml" --state "$work/st6/state.json")
hozo "${c[@]}" --json jobs run manual1 --dry-run
check "6: --json jobs run --dry-run prints JSON" json_ok 'd["job"] == "manual1" and d["dry_run"] and any("syncoid" in l for l in d["plan"])'
hozo "${c[@]}" --json jobs list --names
check "6: --json jobs list --names is a JSON array" json_ok 'd == ["manual1", "sched"]'
hozo "${c[@]}" --json jobs list
list_json=$OUT
check "6: jobs list: next_run null and manual true for a manual job, a time otherwise" \
  json_ok 'd[0]["next_run"] is None and d[0]["manual"] and d[1]["next_run"].endswith("Z") and not d[1]["manual"]'
mkdir -p "$work/st6" && echo '{"format": "hozo-state", "version": 1, "jobs": {}}' >"$work/st6/state.json"
hozo "${c[@]}" --json status
check "6: status uses the same next_run form" json_ok 'd[0]["next_run"] is None and d[0]["manual"] and d[1]["next_run"].endswith("Z")'
hozo "${c[@]}" --json schedule
check "6: schedule uses the same next_run form" json_ok 'd[0]["next_run"] is None and d[0]["manual"]'
hozo --help
help_list=$(sed -n 's/.*--json.*machine-readable output (\(.*\))/\1/p' <<<"$OUT" | tr -s ' ')
readme_list=$(sed -n 's/^(on \(.*\)), `--version`.*/\1/p' "$src/README.md")
man_list=$(awk '/^\.It Fl -json/{f=1; next} f && /^\.It/{exit} f && /^\.Cm /{sub(/^\.Cm /,""); sub(/ ,$/,""); sub(/ \.$/,""); printf "%s%s", sep, $0; sep=", "}' "$src/man/hozo.1")
check "6: --help, README and hozo(1) list the same --json commands ($help_list)" \
  bash -c '[[ -n $1 && $1 == "$2" && $1 == "$3" ]]' _ "$help_list" "$readme_list" "$man_list"
hozo --json config validate "$work/one-bad.yaml"
check "6: config validate --json: issues as objects with file/line/column/path/message/severity" \
  json_ok 'not d["valid"] and any(i["path"] == "jobs[1].mac_address" and i["line"] == 13 and i["column"] and i["severity"] == "error" and i["file"].endswith("one-bad.yaml") and i["message"] for i in d["issues"])'
check "6: ... exit 78" rc_is 78

# --- 7. jobs show prints the values the run uses ---------------------------------------------------
hozo "${c[@]}" jobs show manual1
check "7: jobs show resolves the default ssh_key" out_has "\"ssh_key\": \"$home/.ssh/id_ed25519\""
check "7: ... and shows the known_hosts in use" out_has "\"known_hosts\": \"$work/known_hosts\""
{ echo "jobs:"; printf '  - name: d\n    source: tank/d\n    target_dataset: backup/d\n    target_host: 192.0.2.10\n    wol: false\n'; } >"$work/defaults.yaml"
hozo -c "$work/defaults.yaml" --json jobs show d
check "7: an unset known_hosts shows the default file, not \"\"" json_ok 'd["known_hosts"] != "" and d["known_hosts_from"] == "default"'

# --- 8. did-you-mean for mistyped commands ---------------------------------------------------------
for pair in "staus:hozo status" "config valdate:hozo config validate" "jobs ls:hozo jobs list" "jobs shwo:hozo jobs show"; do
  typed=${pair%%:*}
  # shellcheck disable=SC2086
  hozo $typed
  check "8: hozo $typed: exit 2, did you mean \"${pair#*:}\"" bash -c '[[ $1 == 2 && $2 == *"did you mean \"$3\""* ]]' _ "$RC" "$ERR" "${pair#*:}"
done
hozo help
check "8: hozo help points to --help (exit 2)" bash -c '[[ $1 == 2 && $2 == *"hozo --help"* ]]' _ "$RC" "$ERR"
hozo jobs
check "8: hozo jobs names its subcommands" bash -c '[[ $1 == 2 && $2 == *"list, show, run"* ]]' _ "$RC" "$ERR"

# --- 10. smaller issues ------------------------------------------------------------------------------
hozo -c "$work/json.yaml" --state "$work/typo/state.json" status
check "10: status with a mistyped --state: non-zero and says the file does not exist" \
  bash -c '[[ $1 == 2 && $2 == *"does not exist"* ]]' _ "$RC" "$ERR"
hozo -c "$work/json.yaml" --state "$work/typo/state.json" jobs list
check "10: jobs list warns about it" err_has "does not exist"
hozo -c "$work/json.yaml" --state "$work/typo/state.json" history sched
check "10: ... and no read-only command created the directory" test ! -e "$work/typo"
{ echo "auth:"; echo "  username: admin"; echo "jobs:"; job a; } >"$work/auth.yaml"
hozo -c "$work/auth.yaml" --state "$work/st6/state.json" jobs list
check "10: the auth: notice is not repeated by other commands" bash -c '[[ $1 != *auth* ]]' _ "$ERR"
hozo config validate "$work/auth.yaml"
check "10: ... but config validate prints it" err_has "auth"
mkdir -p "$work/st10"
printf '{"format": "hozo-state", "version": 1, "jobs": {"a": {"runs": [{"run_id": "20261201T010000Z-1", "job": "a", "outcome": "interrupted", "exit_code": 130, "started": "2026-12-01T01:00:00Z", "finished": "2026-12-01T01:05:00Z", "error": "interrupted by signal"}]}}}\n' >"$work/st10/state.json"
hozo -c "$work/auth.yaml" --state "$work/st10/state.json" status a
check "10: an interrupted run's reason is in the plain status" out_has "reason     interrupted by signal"
hozo -c "$work/auth.yaml" --state "$work/st10/state.json" status
check "10: ... and in the one-line status" out_has "interrupted by signal"
hozo -c "$src/examples/hozo.yaml" --state "$work/st6/state.json" jobs list
width=$(awk '{ if (length($0) > m) m = length($0) } END { print m }' <<<"$OUT")
check "10: jobs list of the example fits 100 columns (widest line: $width)" test "$width" -le 100
hozo -c "$src/examples/hozo.yaml" --state "$work/st6/state.json" jobs list -o wide
check "10: -o wide adds host and datasets" bash -c '[[ $1 == *DATASETS* && $1 == *"tank/vms → backup.example.com:backup/vms"* ]]' _ "$OUT"
cat >"$work/merge.yaml" <<YAML
x-box: &box
  target_host: 192.0.2.10
  mac_address: "00:11:22:33:44:55"
  known_hosts: $work/known_hosts
x-bad: &bad
  ssh_port: 99999
jobs:
  - <<: *box
    name: merged
    source: tank/m
    target_dataset: backup/m
  - <<: [*bad, *box]
    name: m2
    source: tank/m2
    target_dataset: backup/m2
YAML
hozo -c "$work/merge.yaml" --state "$work/st6/state.json" --json jobs show merged
check "10: YAML merge keys are accepted" json_ok 'd["target_host"] == "192.0.2.10" and d["mac_address"] == "00:11:22:33:44:55"'
hozo config validate "$work/merge.yaml"
check "10: an error in a merged value names the anchor's line" \
  bash -c '[[ $1 == 78 && $2 == *"merge.yaml:6:13: jobs[1].ssh_port"* ]]' _ "$RC" "$ERR"
{ echo "jobs:"; job u 'schedule: "daily 02:00"'; job l 'schedule: "0 2 * * *"'; } >"$work/tz.yaml"
TZ_OVERRIDE=Europe/Berlin hozo -c "$work/tz.yaml" --state "$work/st6/state.json" jobs list
check "10: jobs list shows the zone: daily HH:MM is UTC" out_has "daily 02:00 (UTC)"
check "10: ... cron is local, named" out_has "0 2 * * * (local, Europe/Berlin)"
check "10: ... next runs carry their zone" bash -c '[[ $1 == *" CET"* || $1 == *" CEST"* ]]' _ "$OUT"
TZ_OVERRIDE=Europe/Berlin hozo -c "$work/tz.yaml" --state "$work/st6/state.json" status l
check "10: status NAME shows the zone too" out_has "(local, Europe/Berlin)"
check "10: hozo.yaml(5) states the zone rule where schedule is described" \
  bash -c 'sed -n "/^\.It Cm schedule Pq string/,/^\.It Cm backup_device/p" "$1" | grep -q "Time zone rule"' _ "$src/man/hozo.yaml.5"

echo "$pass passed, $fail failed"
((fail == 0))
