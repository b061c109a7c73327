#!/usr/bin/env bash
# Finding syncoid and zfs where cron runs hozo: cron's PATH is /usr/bin:/bin, Debian puts syncoid,
# zfs and zpool in /usr/sbin. hozo looks on $PATH, then in /usr/local/sbin:/usr/sbin:/sbin, warns
# in --dry-run only when a tool is truly missing, builds the syncoid argv for the release it found
# (fake syncoids printing 2.1.0/2.2.0/2.3.0), and `hozo schedule --cron` writes a PATH line.
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
hozo_bin=${HOZO_BIN:-$src/build/hozo}
work=$(mktemp -d /tmp/hozo-toolpath-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
hozo() { # PATH_VALUE ARGS...: runs hozo under `env -i` with only PATH and HOME; sets RC, OUT, ERR
  local path=$1
  shift
  RC=0
  env -i PATH="$path" HOME="$work/home" TZ=UTC "$hozo_bin" -c "$work/hozo.yaml" --state "$work/state/state.json" "$@" \
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
lacks() { # WHAT HAYSTACK NEEDLE
  if [[ $2 != *"$3"* ]]; then ok "$1"; else bad "$1: \"$3\" unexpected in: $2"; fi
}
mkdir -p "$work/home/.ssh" "$work/state" "$work/fake"
# The dry run checks the SSH key offline: give the job a default key, as a set-up machine has.
ssh-keygen -q -t ed25519 -N '' -f "$work/home/.ssh/id_ed25519" >/dev/null
config() { # JOB LINES...
  {
    echo "jobs:"
    echo "  - name: nightly"
    echo "    source: tank/data"
    echo "    target_host: 127.0.0.1"
    echo "    target_dataset: backup/data"
    echo '    mac_address: "AA:BB:CC:DD:EE:FF"'
    echo '    schedule: "daily 02:00"'
    local line
    for line in "$@"; do echo "    $line"; done
  } >"$work/hozo.yaml"
}
cron_path=/usr/bin:/bin

# --- cron's PATH, the real tools in /usr/sbin -----------------------------------------------------
config
if [[ -x /usr/sbin/syncoid && -x /usr/sbin/zfs && ! -e /usr/bin/syncoid && ! -e /usr/bin/zfs ]]; then
  hozo "$cron_path" jobs run nightly --dry-run
  expect_rc "dry run with cron's PATH" 0
  has "syncoid found in /usr/sbin" "$OUT" "at /usr/sbin/syncoid"
  has "zfs found in /usr/sbin" "$OUT" "zfs at /usr/sbin/zfs"
  lacks "no warning when the tools exist" "$ERR" "not found"
else
  echo "skip: /usr/sbin/syncoid and /usr/sbin/zfs (only there) are needed for the cron-PATH case"
fi

# --- a tool that is truly missing: a warning, and the plan says so ----------------------------------
config "syncoid:" "  path: hozo-no-such-syncoid"
hozo "$cron_path" jobs run nightly --dry-run
expect_rc "dry run with a missing syncoid" 0
has "warning names what was searched" "$ERR" 'syncoid not found (looked for "hozo-no-such-syncoid" in PATH and /usr/local/sbin:/usr/sbin:/sbin)'
has "plan marks it" "$OUT" "syncoid NOT FOUND"
hozo "$cron_path" jobs run nightly
expect_rc "a real run without syncoid is exit 69" 69

# --- the argv follows the release found -------------------------------------------------------------
fake_syncoid() { # VERSION
  printf '#!/bin/sh\necho "$0 version %s"\necho "(Getopt::Long::GetOptions version 2.52; Perl version 5.36.0)"\n' "$1" \
    >"$work/fake/syncoid"
  chmod 755 "$work/fake/syncoid"
}
fake_syncoid 2.3.0
config "syncoid:" "  exclude: [tmp$]"
hozo "$work/fake:$cron_path" jobs run nightly --dry-run
expect_rc "dry run with syncoid 2.3.0" 0
has "2.3.0 found first on PATH" "$OUT" "syncoid 2.3.0 at $work/fake/syncoid"
has "2.3.0 gets --exclude-datasets" "$OUT" "'--exclude-datasets=tmp\$'"
fake_syncoid 2.1.0
hozo "$work/fake:$cron_path" jobs run nightly --dry-run
has "2.1.0 gets --exclude" "$OUT" "'--exclude=tmp\$'"
config "syncoid:" "  extra_args: [--use-hold]"
hozo "$work/fake:$cron_path" jobs run nightly --dry-run
expect_rc "--use-hold on syncoid 2.1.0 is a config error" 78
has "the error names both releases" "$ERR" "--use-hold needs syncoid 2.2.0 or later; the installed syncoid is 2.1.0"
fake_syncoid 2.2.0
hozo "$work/fake:$cron_path" jobs run nightly --dry-run
expect_rc "--use-hold on syncoid 2.2.0" 0
has "--use-hold passed on" "$OUT" " --use-hold "
printf '#!/bin/sh\necho "usage: whatever"\nexit 2\n' >"$work/fake/syncoid"
config
hozo "$work/fake:$cron_path" jobs run nightly --dry-run
expect_rc "a syncoid without a version" 0
has "assumes 2.1.0 and says so" "$OUT" "syncoid (version unknown, assuming 2.1.0) at $work/fake/syncoid"

# --- the cron file carries a PATH with the sbin directories -----------------------------------------
config
hozo "$cron_path" schedule --cron
expect_rc "schedule --cron" 0
has "cron output sets PATH" "$OUT" $'\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'
hozo "$cron_path" schedule --cron --install --dir "$work/cron.d"
expect_rc "schedule --cron --install" 0
grep -qx 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$work/cron.d/hozo" &&
  ok "cron.d/hozo sets PATH" || bad "cron.d/hozo: $(cat "$work/cron.d/hozo")"

echo "$pass passed, $fail failed"
((fail == 0))
