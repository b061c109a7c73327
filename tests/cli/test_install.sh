#!/usr/bin/env bash
# `cmake --install BUILD --prefix TMP` puts every file where it belongs: binaries, man pages
# (1, 5, 8), the systemd units (hozo@.service with ExecStart at the installed binary), example
# configs and the bash completion; the installed units verify clean; the installed completion
# completes commands, options and job names from the config (HOZO_CONFIG or -c).
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${HOZO_BUILD_DIR:-$src/build}
if ! command -v cmake >/dev/null || [[ ! -f $build/cmake_install.cmake ]]; then
  echo "SKIP: no cmake or no build dir ($build)"
  exit 77
fi
work=$(mktemp -d /tmp/hozo-install-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
prefix=$work/prefix

if cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
  ok "cmake --install --prefix $prefix"
else
  bad "cmake --install failed: $(cat "$work/install.log")"
fi
for f in bin/hozo bin/backupd share/man/man1/hozo.1 share/man/man5/hozo.yaml.5 share/man/man8/backupd.8 \
  lib/systemd/system/hozo@.service lib/systemd/system/hozo-serve.service lib/systemd/system/hozo@.timer lib/systemd/system/backupd.service lib/systemd/system/backupd.socket \
  share/doc/hozo/examples/hozo.yaml share/doc/hozo/examples/backupd.yaml \
  share/bash-completion/completions/hozo; do
  [[ -f $prefix/$f ]] && ok "installed $f" || bad "missing $f"
done
[[ -x $prefix/bin/hozo ]] && "$prefix/bin/hozo" --version >/dev/null && ok "installed hozo runs" || bad "hozo --version"
exec_start=$(grep '^ExecStart=' "$prefix/lib/systemd/system/hozo@.service")
[[ $exec_start == "ExecStart=$prefix/bin/hozo jobs run %i" ]] && ok "hozo@.service runs the installed binary" ||
  bad "hozo@.service: $exec_start"
exec_stop_post=$(grep '^ExecStopPost=' "$prefix/lib/systemd/system/hozo@.service")
[[ $exec_stop_post == "ExecStopPost=$prefix/bin/hozo recover %i" ]] && ok "hozo@.service recovers with the installed binary" ||
  bad "hozo@.service: $exec_stop_post"
exec_start=$(grep '^ExecStart=' "$prefix/lib/systemd/system/hozo-serve.service")
[[ $exec_start == "ExecStart=$prefix/bin/hozo serve" ]] && ok "hozo-serve.service runs the installed binary" ||
  bad "hozo-serve.service: $exec_start"
exec_start=$(grep '^ExecStart=' "$prefix/lib/systemd/system/backupd.service")
[[ $exec_start == "ExecStart=$prefix/bin/backupd --config /etc/hozo/backupd.yaml" ]] &&
  ok "backupd.service runs the installed binary" || bad "backupd.service: $exec_start"

if command -v systemd-analyze >/dev/null; then
  # The installed man pages satisfy Documentation= (systemd-analyze runs man on them).
  out=$(cd "$work" && MANPATH=$prefix/share/man systemd-analyze verify \
    "$prefix/lib/systemd/system/hozo@nightly.service" "$prefix/lib/systemd/system/hozo@nightly.timer" 2>&1)
  rc=$?
  [[ $rc == 0 && -z $out ]] && ok "systemd-analyze verify of the installed units: clean" ||
    bad "systemd-analyze verify (exit $rc): $out"
  out=$(cd "$work" && MANPATH=$prefix/share/man systemd-analyze verify "$prefix/lib/systemd/system/hozo-serve.service" 2>&1)
  rc=$?
  [[ $rc == 0 && -z $out ]] && ok "systemd-analyze verify hozo-serve.service: clean" ||
    bad "systemd-analyze verify hozo-serve.service (exit $rc): $out"
  # backupd.service and backupd.socket (socket activation), each alone and as the pair.
  for units in backupd.service backupd.socket "backupd.socket backupd.service"; do
    args=()
    for u in $units; do args+=("$prefix/lib/systemd/system/$u"); done
    out=$(cd "$work" && MANPATH=$prefix/share/man systemd-analyze verify "${args[@]}" 2>&1)
    rc=$?
    [[ $rc == 0 && -z $out ]] && ok "systemd-analyze verify $units: clean" || bad "systemd-analyze verify $units (exit $rc): $out"
  done
  grep -q '^ListenStream=127.0.0.1:9999$' "$prefix/lib/systemd/system/backupd.socket" &&
    ok "backupd.socket listens on backupd's default address" || bad "backupd.socket: unexpected ListenStream"
else
  echo "systemd-analyze not found: verify skipped"
fi

# --- bash completion ---------------------------------------------------------------------------------
cat >"$work/hozo.yaml" <<'YAML'
jobs:
  - name: nightly
    source: tank/data
    target_host: 127.0.0.1
    target_dataset: backup/data
    mac_address: "AA:BB:CC:DD:EE:FF"
    schedule: "daily 02:00"
  - name: offsite-media
    source: tank/media
    target_host: 127.0.0.1
    target_dataset: backup/media
    mac_address: "AA:BB:CC:DD:EE:FF"
YAML
cp "$work/hozo.yaml" "$work/other.yaml"
sed -i 's/offsite-media/elsewhere/' "$work/other.yaml"
complete_words() { # WORD... (the last one is being completed); prints COMPREPLY, one per line
  HOME=$work PATH=$prefix/bin:$PATH HOZO_CONFIG=$work/hozo.yaml bash --norc --noprofile -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    _hozo hozo "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$prefix/share/bash-completion/completions/hozo" "$@"
}
expect_completion() { # WHAT EXPECTED -- WORD...
  local what=$1 want=$2
  shift 3
  local got
  got=$(complete_words "$@" | sort | tr '\n' ' ')
  got=${got% }
  [[ $got == "$want" ]] && ok "completion: $what → $got" || bad "completion: $what: expected '$want', got '$got'"
}
expect_completion "job names for jobs run" "nightly offsite-media" -- hozo jobs run ""
expect_completion "a job name from a prefix" "offsite-media" -- hozo jobs run off
expect_completion "job names for schedule" "nightly offsite-media" -- hozo schedule ""
expect_completion "job names from -c FILE" "elsewhere nightly" -- hozo -c "$work/other.yaml" status ""
expect_completion "top-level commands" "schedule serve shutdown status" -- hozo s
expect_completion "subcommands" "list reseed run show" -- hozo jobs ""
expect_completion "options of a command" "--cron" -- hozo schedule --cr
expect_completion "global options" "--config" -- hozo --conf
expect_completion "jobs list --names" "--names" -- hozo jobs list --na
expect_completion "-n is --dry-run for jobs run: job names follow" "nightly offsite-media" -- hozo jobs run -n ""
expect_completion "-n is --dry-run for restore: job names follow" "nightly offsite-media" -- hozo restore -n ""
expect_completion "-n is --count for history: no job name as its value" "" -- hozo history -n ""
expect_completion "after history -n N: job names" "nightly offsite-media" -- hozo history -n 5 ""
expect_completion "restore --to takes a value, not a job name" "" -- hozo restore --to ""
# Every top-level command of the binary is offered.
all=$(complete_words hozo "" | sort | tr '\n' ' ')
missing=
for cmd in $("$prefix/bin/hozo" --help | sed -n '/^Subcommands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }'); do
  [[ " $all " == *" $cmd "* ]] || missing+=" $cmd"
done
[[ -z $missing && -n $all ]] && ok "every subcommand of hozo --help is offered" || bad "not offered:$missing ($all)"
out=$(bash --norc --noprofile -c 'source "$1"; complete -p hozo' _ "$prefix/share/bash-completion/completions/hozo")
[[ $out == "complete -F _hozo hozo" ]] && ok "the script registers _hozo for hozo" || bad "complete -p: $out"

echo "$pass passed, $fail failed"
((fail == 0))
