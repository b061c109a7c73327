#!/usr/bin/env bash
# `hozo schedule`: timer drop-ins and cron lines from the jobs' schedules, --install into a
# temp dir, --enable with a fake systemctl (never the real one), manual jobs, usage errors.
# Where systemd-analyze exists: the shipped units verify clean (with and without a drop-in)
# and `systemd-analyze calendar` agrees with the drop-ins' OnCalendar values and next runs.
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
hozo_bin=${HOZO_BIN:-$src/build/hozo}
work=$(mktemp -d /tmp/hozo-schedule-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
hozo() { # runs hozo; sets RC, OUT, ERR
  RC=0
  HOME=$work/home PATH=$work/fakebin:$PATH TZ=UTC "$hozo_bin" -c "$work/hozo.yaml" "$@" \
    >"$work/out" 2>"$work/err" </dev/null || RC=$?
  OUT=$(cat "$work/out")
  ERR=$(cat "$work/err")
}
expect_rc() { # WHAT EXPECTED
  if [[ $RC == "$2" ]]; then ok "$1 (exit $RC)"; else bad "$1: expected exit $2, got $RC; out: $OUT; err: $ERR"; fi
}
has() { # WHAT HAYSTACK NEEDLE
  if [[ $2 == *"$3"* ]]; then ok "$1"; else bad "$1: \"$3\" not in: $2"; fi
}
mkdir -p "$work/home" "$work/fakebin"

job() { # NAME SCHEDULE
  printf '  - name: %s\n    source: tank/%s\n    target_host: 127.0.0.1\n    target_dataset: backup/%s\n' "$1" "$1" "$1"
  printf '    mac_address: "AA:BB:CC:DD:EE:FF"\n'
  [[ -n $2 ]] && printf '    schedule: "%s"\n' "$2"
  return 0
}
{
  echo "jobs:"
  job nightly "daily 02:00"
  job weekly "weekly Sunday 03:00"
  job workdays "30 2 * * 1-5"
  job often "*/15 * * * *"
  job adhoc ""
} >"$work/hozo.yaml"

# --- printing drop-ins ----------------------------------------------------------------------------
hozo schedule
expect_rc "schedule prints drop-ins" 0
has "drop-in names the file" "$OUT" "# hozo@nightly.timer.d/schedule.conf"
has "drop-in resets the default OnCalendar" "$OUT" $'[Timer]\nOnCalendar=\nOnCalendar=*-*-* 02:00:00 UTC'
has "weekly legacy form is UTC" "$OUT" "OnCalendar=Sun *-*-* 03:00:00 UTC"
has "cron form becomes OnCalendar (local time)" "$OUT" "OnCalendar=Mon..Fri *-*-* 02:30:00"$'\n'
has "manual jobs are listed as manual" "$OUT" "# adhoc: manual (no schedule), skipped"
hozo schedule nightly
[[ $OUT != *weekly* && $OUT == *nightly* ]] && ok "NAME selects jobs" || bad "schedule nightly printed: $OUT"
hozo schedule nosuchjob
expect_rc "unknown job" 2
hozo --json schedule
"${PYTHON:-/usr/bin/python3}" - "$OUT" <<'PY' && ok "--json lists every job with its OnCalendar" || bad "--json: $OUT"
import json, sys
j = {e["name"]: e for e in json.loads(sys.argv[1])}
assert j["nightly"]["oncalendar"] == ["*-*-* 02:00:00 UTC"], j["nightly"]
assert j["nightly"]["next_run"].endswith("T02:00:00Z"), j["nightly"]
assert j["adhoc"]["manual"] is True and j["adhoc"]["oncalendar"] is None, j["adhoc"]
assert j["often"]["timer"] == "hozo@often.timer"
PY

# --- cron ------------------------------------------------------------------------------------------
hozo schedule --cron
expect_rc "schedule --cron" 0
has "cron line for a legacy form" "$OUT" "0 2 * * * root $hozo_bin -q -c $work/hozo.yaml jobs run nightly"
has "cron line for a cron schedule" "$OUT" "30 2 * * 1-5 root $hozo_bin -q -c $work/hozo.yaml jobs run workdays"
has "cron line for a step" "$OUT" "*/15 * * * * root "
has "cron: manual job as a comment" "$OUT" "# adhoc: manual (no schedule)"
hozo schedule --cron --install --dir "$work/cron.d"
expect_rc "schedule --cron --install" 0
[[ -f $work/cron.d/hozo && $(stat -c %a "$work/cron.d/hozo") == 644 ]] && ok "cron.d/hozo written, mode 644" ||
  bad "cron.d/hozo: $(ls -l "$work/cron.d" 2>&1)"
grep -q 'jobs run weekly$' "$work/cron.d/hozo" && ok "cron file has the weekly job" || bad "cron file: $(cat "$work/cron.d/hozo")"

# --- usage errors ------------------------------------------------------------------------------------
hozo schedule --cron --systemd
expect_rc "--cron with --systemd" 2
hozo schedule --enable
expect_rc "--enable without --install" 2
hozo schedule --dir "$work/x"
expect_rc "--dir without --install" 2
hozo schedule --cron --install --enable
expect_rc "--enable with --cron" 2

# --- schedules with two OnCalendar lines, or no form at all ----------------------------------------------
cp "$work/hozo.yaml" "$work/good.yaml"
job either "0 0 13 * 5" >>"$work/hozo.yaml"
hozo schedule either
expect_rc "cron day-of-month OR weekday" 0
has "becomes two OnCalendar lines" "$OUT" $'OnCalendar=\nOnCalendar=*-*-13 00:00:00\nOnCalendar=Fri *-*-* 00:00:00'
job seconds "*-*-* 03:00:30" >>"$work/hozo.yaml"
hozo schedule seconds --cron
expect_rc "seconds have no cron form" 78
has "the reason is given" "$ERR" "seconds other than :00"
hozo schedule --cron --install --dir "$work/bad"
expect_rc "--install refuses when one job cannot be converted" 78
[[ ! -e $work/bad ]] && ok "nothing written" || bad "files written: $(find "$work/bad")"
hozo schedule seconds
expect_rc "the same schedule as a timer works" 0
cp "$work/good.yaml" "$work/hozo.yaml"

# --- --install, then --enable with a fake systemctl -------------------------------------------------
hozo schedule --install --dir "$work/units"
expect_rc "--install" 0
f=$work/units/hozo@nightly.timer.d/schedule.conf
[[ -f $f && $(stat -c %a "$f") == 644 ]] && ok "drop-in written, mode 644" || bad "no drop-in: $(find "$work/units")"
[[ $(grep '^OnCalendar' "$f") == $'OnCalendar=\nOnCalendar=*-*-* 02:00:00 UTC' ]] && ok "drop-in content" ||
  bad "drop-in: $(cat "$f")"
[[ ! -e $work/units/hozo@adhoc.timer.d ]] && ok "no drop-in for the manual job" || bad "adhoc has a drop-in"
has "prints daemon-reload" "$OUT" "  systemctl daemon-reload"
has "prints enable --now" "$OUT" "  systemctl enable --now hozo@nightly.timer hozo@weekly.timer hozo@workdays.timer hozo@often.timer"
ls "$work/units/hozo@nightly.timer.d" | grep -qv '^schedule.conf$' && bad "temp files left behind" || ok "no temp files left"

cat >"$work/fakebin/systemctl" <<EOF
#!/bin/sh
echo "\$*" >>"$work/systemctl.log"
case "\$1" in enable) [ -n "\${FAKE_SYSTEMCTL_FAIL:-}" ] && { echo "Failed to enable unit" >&2; exit 5; } ;; esac
exit 0
EOF
chmod +x "$work/fakebin/systemctl"
hozo schedule nightly weekly --install --enable --dir "$work/units"
expect_rc "--enable runs systemctl" 0
[[ $(cat "$work/systemctl.log") == $'daemon-reload\nenable --now hozo@nightly.timer hozo@weekly.timer' ]] &&
  ok "systemctl got exactly daemon-reload and enable --now" || bad "systemctl calls: $(cat "$work/systemctl.log")"
rm -f "$work/systemctl.log"
FAKE_SYSTEMCTL_FAIL=1 hozo schedule nightly --install --enable --dir "$work/units"
expect_rc "a failing systemctl fails the command" 1
has "the failure names the command and status" "$ERR" "systemctl enable --now hozo@nightly.timer exited with status 5"

# A job whose schedule was removed: its drop-in goes away and its timer is disabled.
sed -i '/schedule: "daily 02:00"/d' "$work/hozo.yaml"
hozo schedule nightly --install --enable --dir "$work/units"
expect_rc "a job that became manual" 0
[[ ! -e $work/units/hozo@nightly.timer.d ]] && ok "its drop-in is removed" || bad "drop-in still there"
has "its timer is disabled" "$(cat "$work/systemctl.log")" "disable --now hozo@nightly.timer"
[[ ! -e $work/units/hozo@nightly.service.d ]] && ok "its config drop-in is removed" || bad "config drop-in still there"
cp "$work/good.yaml" "$work/hozo.yaml"

# A manual job's timer is disabled even without an old drop-in (it may have been enabled by hand,
# firing at hozo@.timer's default).
hozo schedule --install --dir "$work/units2"
has "a manual job's timer is disabled" "$OUT" "  systemctl disable --now hozo@adhoc.timer"

# -c: the timers' runs must use the same config (hozo@NAME.service.d/config.conf).
c=$work/units2/hozo@nightly.service.d/config.conf
[[ -f $c && $(grep '^Environment=' "$c") == "Environment=HOZO_CONFIG=$work/hozo.yaml" ]] &&
  ok "-c config: the service drop-in sets HOZO_CONFIG" || bad "config drop-in: $(cat "$c" 2>&1)"
hozo schedule nightly
has "the printed drop-ins include the config one" "$OUT" "# hozo@nightly.service.d/config.conf"
cp "$work/hozo.yaml" "$work/odd dir.yaml" 2>/dev/null
RC=0
HOME=$work/home TZ=UTC "$hozo_bin" -c "$work/odd dir.yaml" schedule --install --dir "$work/units3" >"$work/out" 2>"$work/err" || RC=$?
ERR=$(cat "$work/err")
expect_rc "a config path systemd cannot carry is refused" 78
[[ ! -e $work/units3 ]] && ok "nothing written for it" || bad "files written: $(find "$work/units3")"

# --cron --install writes the file for every job: job names would silently drop the others.
hozo schedule weekly --cron --install --dir "$work/cron2"
expect_rc "--cron --install with NAME" 2
[[ ! -e $work/cron2 ]] && ok "no cron file written" || bad "cron file written"

# cron runs in local time: UTC schedules move by a fixed offset, and are refused where DST changes it.
cron_tz() { # TZ ARGS...
  local tz=$1
  shift
  RC=0
  HOME=$work/home TZ=$tz "$hozo_bin" -c "$work/hozo.yaml" "$@" >"$work/out" 2>"$work/err" </dev/null || RC=$?
  OUT=$(cat "$work/out")
  ERR=$(cat "$work/err")
}
cron_tz Asia/Kolkata schedule --cron
expect_rc "cron in UTC+5:30" 0
has "daily 02:00 UTC is 07:30 local" "$OUT" "30 7 * * * root "
has "weekly Sunday 03:00 UTC is Sunday 08:30 local" "$OUT" "30 8 * * 0 root "
has "the line says so" "$OUT" "# nightly: \"daily 02:00\" (UTC) in local time (UTC+05:30)"
has "a local cron expression is unchanged" "$OUT" "30 2 * * 1-5 root "
cron_tz America/Bogota schedule weekly --cron
has "weekly Sunday 03:00 UTC is Saturday 22:00 in UTC-5" "$OUT" "0 22 * * 6 root "
cron_tz Europe/Berlin schedule --cron
expect_rc "UTC schedules where DST changes the offset" 78
has "the reason is given" "$ERR" "changes its UTC offset during the year (DST)"
cron_tz Europe/Berlin schedule workdays --cron
expect_rc "a local cron expression works there" 0

# --- systemd-analyze: units verify clean, calendar agrees ---------------------------------------------
if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not found: unit checks skipped"
else
  u=$work/verify
  mkdir -p "$u"
  sed "s#@HOZO_BINDIR@#$(dirname "$hozo_bin")#" "$src/systemd/hozo@.service.in" >"$u/hozo@.service"
  cp "$src/systemd/hozo@.timer" "$u/"
  grep -q '@HOZO' "$u/hozo@.service" && bad "hozo@.service.in has an unknown @VARIABLE@"
  out=$(systemd-analyze verify --man=no "$u/hozo@nightly.service" "$u/hozo@nightly.timer" 2>&1)
  rc=$?
  [[ $rc == 0 && -z $out ]] && ok "systemd-analyze verify hozo@.service hozo@.timer: clean" ||
    bad "systemd-analyze verify (exit $rc): $out"
  cp -r "$work/units/hozo@weekly.timer.d" "$u/"
  out=$(systemd-analyze verify --man=no "$u/hozo@weekly.timer" 2>&1)
  rc=$?
  [[ $rc == 0 && -z $out ]] && ok "verify with the generated drop-in: clean" || bad "verify with drop-in (exit $rc): $out"
  sed "s#@HOZO_BINDIR@/backupd#/bin/true#" "$src/systemd/backupd.service.in" >"$u/backupd.service"
  grep -q '@HOZO' "$u/backupd.service" && bad "backupd.service.in has an unknown @VARIABLE@"
  out=$(systemd-analyze verify --man=no "$u/backupd.service" 2>&1)
  rc=$?
  [[ $rc == 0 && -z $out ]] && ok "backupd.service verifies clean" || bad "backupd.service (exit $rc): $out"

  # Every generated OnCalendar: systemd's normalized form is the same, and its next elapse is
  # hozo's next run (both in UTC).
  before=$(date +%s)  # systemd computes from here; hozo from its now, in the same or a later second
  hozo --json schedule
  while IFS=$'\t' read -r name expr next; do
    cal=$(TZ=UTC systemd-analyze calendar --base-time="@$before" "$expr" 2>&1)
    norm=$(sed -n 's/^ *Normalized form: //p' <<<"$cal")
    elapse=$(sed -n 's/^ *Next elapse: [A-Za-z]* \([0-9-]* [0-9:]*\) UTC$/\1/p' <<<"$cal")
    want=${next%Z}
    want=${want/T/ }
    if [[ $norm == "$expr" && $elapse == "$want" ]]; then
      ok "$name: systemd-analyze calendar '$expr' → next $elapse"
    else
      bad "$name: hozo says '$expr' next $want; systemd-analyze: '$norm' next '$elapse': $cal"
    fi
  done < <("${PYTHON:-/usr/bin/python3}" -c '
import json, sys
for e in json.loads(sys.argv[1]):
    if e["oncalendar"]:
        print(e["name"], e["oncalendar"][0], e["next_run"], sep="\t")' "$OUT")
fi

echo "$pass passed, $fail failed"
((fail == 0))
