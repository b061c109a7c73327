#!/usr/bin/env bash
# `hozo init` without a box (issue 16): --offline writes a commented config that validates (0600)
# and a new ed25519 key (0600, .pub 0644) and prints the from=/restrict authorized_keys line;
# without a terminal and without --yes it refuses (exit 2) naming the options; missing or bad
# answers are exit 2 naming the option; an existing config is never replaced without --force
# (then kept as .bak) and a key never at all; the interactive path runs on a pseudo-terminal
# (script(1)) with defaults in brackets. Nothing here contacts a box (--offline; target 127.0.0.1).
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
hozo_bin=${HOZO_BIN:-$src/build/hozo}
work=$(mktemp -d /tmp/hozo-init-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
hozo() { # runs hozo with config $CFG; sets RC, OUT, ERR
  RC=0
  HOME=$work/home "$hozo_bin" -c "$CFG" "$@" >"$work/out" 2>"$work/err" </dev/null || RC=$?
  OUT=$(cat "$work/out")
  ERR=$(cat "$work/err")
}
expect_rc() { # WHAT EXPECTED
  if [[ $RC == "$2" ]]; then ok "$1 (exit $RC)"; else bad "$1: expected exit $2, got $RC; out: $OUT; err: $ERR"; fi
}
has() { # WHAT HAYSTACK NEEDLE
  if [[ $2 == *"$3"* ]]; then ok "$1"; else bad "$1: \"$3\" not in: $2"; fi
}
eq() { # WHAT EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then ok "$1 ($3)"; else bad "$1: expected '$2', got '$3'"; fi
}
mkdir -p "$work/home"
CFG=$work/etc/hozo.yaml
base=(init --yes --offline --source tank/data --target-host 127.0.0.1 --mac 02:00:5e:10:00:01)

# ------------------------------------------------------------------------------------------
hozo init
expect_rc "no terminal, no --yes: refused" 2
has "the refusal names --yes" "$ERR" "--yes"
has "the refusal names the answers' options" "$ERR" "--source DATASET --target-host HOST --mac MAC"
[[ ! -e $CFG ]] && ok "nothing written" || bad "a config was written"

hozo init --yes --offline
expect_rc "--yes without the required answers" 2
has "names --source" "$ERR" "--source: "
has "names --target-host" "$ERR" "--target-host: "
has "names --mac" "$ERR" "--mac: "

hozo init --yes --offline --source tank/data --target-host 127.0.0.1 --mac zz:zz
expect_rc "a bad MAC" 2
has "says which option and why" "$ERR" "--mac: jobs[0].mac_address: invalid MAC"
[[ ! -e $CFG && ! -e $work/etc/id_ed25519 ]] && ok "bad answers write nothing (no config, no key)" || bad "files written"

hozo init --yes --offline --source 'tank/da ta' --target-host 127.0.0.1 --mac 02:00:5e:10:00:01
expect_rc "a bad dataset name" 2
has "names --source" "$ERR" "--source: "

# ------------------------------------------------------------------------------------------
hozo "${base[@]}"
expect_rc "--yes --offline" 0
eq "config mode" 600 "$(stat -c %a "$CFG")"
eq "key mode" 600 "$(stat -c %a "$work/etc/id_ed25519")"
eq "public key mode" 644 "$(stat -c %a "$work/etc/id_ed25519.pub")"
has "the config is commented and names the key" "$(cat "$CFG")" "ssh_key: \"$work/etc/id_ed25519\""
line=$(grep -E '^from=' "$work/out")
pub=$(cut -d' ' -f1,2 "$work/etc/id_ed25519.pub")
eq "the authorized_keys line" "from=\"127.0.0.1\",restrict $pub" "$(cut -d' ' -f1-3 <<<"$line")"
if command -v ssh-keygen >/dev/null; then
  eq "ssh-keygen reads the private key" "$pub" "$(ssh-keygen -y -f "$work/etc/id_ed25519" | cut -d' ' -f1,2)"
fi
has "next steps named" "$OUT" "hozo check nightly --wake"
hozo config validate
expect_rc "the written config validates" 0
hozo jobs show nightly --json
has "the job reads back" "$OUT" '"target_host": "127.0.0.1"'

before=$(sha256sum "$CFG" "$work/etc/id_ed25519")
hozo "${base[@]}" --name other
expect_rc "again without --force" 2
has "names --force" "$ERR" "--force"
eq "config and key untouched" "$before" "$(sha256sum "$CFG" "$work/etc/id_ed25519")"

hozo "${base[@]}" --force --name other --from 192.0.2.7 --no-recursive --schedule ""
expect_rc "--force" 0
has "the key is reused" "$OUT" "reusing the existing $work/etc/id_ed25519"
eq "same key" "$(sed -n 2p <<<"$before")" "$(sha256sum "$work/etc/id_ed25519")"
[[ -s $CFG.bak ]] && ok "old config kept as .bak" || bad "no .bak"
has "--from is used" "$OUT" "from=\"192.0.2.7\",restrict ssh-ed25519 "
has "--no-recursive" "$(cat "$CFG")" "recursive: false"
has "manual schedule" "$(cat "$CFG")" 'schedule: ""'

CFG=$work/nowol.yaml
hozo init --yes --offline --source tank/data --target-host 127.0.0.1 --no-wol --key "$work/k2"
expect_rc "--no-wol needs no MAC" 0
has "wol: false written" "$(cat "$CFG")" "wol: false"
echo "not a key" >"$work/k3"
chmod 600 "$work/k3"
CFG=$work/k3.yaml
hozo "${base[@]}" --key "$work/k3"
expect_rc "an existing non-key file as --key" 1
eq "it is not overwritten" "not a key" "$(cat "$work/k3")"
[[ ! -e $CFG ]] && ok "and no config written" || bad "config written"

# ------------------------------------------------------------------------------------------
# Interactive on a pseudo-terminal: Enter takes the defaults; a wrong MAC is asked again.
if command -v script >/dev/null; then
  CFG=$work/tty/hozo.yaml
  answers=$(printf '%s\n' "" tank/photos n 127.0.0.1 "" y "11:22" "" "" 2222 "" "" "" "02:00:5e:10:00:09")
  RC=0
  printf '%s\n' "$answers" >"$work/answers"
  # script(1) hands its stdin to the pty and passes end-of-file on once everything was read.
  HOME=$work/home TERM=dumb timeout 60 script -qefc "$(printf '%q ' "$hozo_bin" -c "$CFG" init --offline)" /dev/null \
    <"$work/answers" >"$work/tty.out" 2>&1 || RC=$?
  OUT=$(tr -d '\r' <"$work/tty.out")
  expect_rc "interactive --offline" 0
  has "prompt with default" "$OUT" "[nightly]:"
  has "default target from the source" "$OUT" "[backup/photos]:"
  has "the MAC was asked again" "$OUT" "✗ jobs[0].mac_address: invalid MAC"
  cfg=$(cat "$CFG" 2>/dev/null)
  has "typed source" "$cfg" 'source: "tank/photos"'
  has "answered no to children" "$cfg" "recursive: false"
  has "corrected MAC" "$cfg" 'mac_address: "02:00:5e:10:00:09"'
  has "typed port" "$cfg" "ssh_port: 2222"
  has "default target" "$cfg" 'target_dataset: "backup/photos"'
else
  echo "skip interactive part: script(1) missing"
fi

echo "$pass passed, $fail failed"
((fail == 0))
