#!/usr/bin/env bash
# Lab: notifications (issue: ntfy, Pushover, e-mail, healthchecks, webhook with libcurl). The real
# hozo, in the orchestrator namespace, talks to the lab receivers on that namespace's loopback
# (http_receiver.py for ntfy/Pushover/healthchecks/webhook, aiosmtpd for e-mail). Asserts what
# each receiver got, that a broken channel never changes a run's outcome, that runs stay bounded,
# notify_on, `hozo notify test`, and that no secret reaches state, output, run logs or `jobs show`.
set -uo pipefail
LAB_ID=${LAB_ID:-ntf$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
trap lab_down EXIT
lab_up || exit 1
lab_start_receivers || exit 1

# Secrets (given through *_file, as in production) and sensitive URL paths.
NTFY_TOKEN=tk_labntfy_5e0c9a7b3d1f
PO_TOKEN=azLabPushoverToken0123456789ab
PO_USER=uLabPushoverUser0123456789abcd
SMTP_PW=lab-smtp-Pw-8d2f1c
HC_UUID=7f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f
HOOK_KEY=whk_3c9e1b7a5d
mkdir -p "$LAB_DIR/secrets"
printf '%s\n' "$NTFY_TOKEN" >"$LAB_DIR/secrets/ntfy"
printf '%s\n' "$PO_TOKEN" >"$LAB_DIR/secrets/po_token"
printf '%s\n' "$PO_USER" >"$LAB_DIR/secrets/po_user"
printf '%s\n' "$SMTP_PW" >"$LAB_DIR/secrets/smtp"
chmod 600 "$LAB_DIR/secrets/"*

ALL_OUT=$LAB_DIR/all-hozo-output.txt # stdout + stderr of every hozo call, for the secrets check
: >"$ALL_OUT"
run_hozo() {
  local t0=$SECONDS
  hozo_run "$@"
  RUN_SECONDS=$((SECONDS - t0))
  cat "$T_OUT" "$T_ERR" >>"$ALL_OUT"
}

# notify_config JOB NOTIFY_ON [TIMEOUT] [extra job lines...]
notify_config() {
  local name=$1 on=$2 timeout=${3:-3}
  shift 3 2>/dev/null || shift $#
  write_config "$name" "recursive: true" "$@" \
    "notifications:" \
    "  notify_on: [$on]" \
    "  timeout: $timeout" \
    "  ntfy_server: $LAB_HTTP_URL/ntfy" \
    "  ntfy_topic: hozo-lab" \
    "  ntfy_token_file: $LAB_DIR/secrets/ntfy" \
    "  pushover_url: $LAB_HTTP_URL/pushover/1/messages.json" \
    "  pushover_token_file: $LAB_DIR/secrets/po_token" \
    "  pushover_user_file: $LAB_DIR/secrets/po_user" \
    "  healthchecks_url: $LAB_HTTP_URL/hc/$HC_UUID" \
    "  webhook_url: $LAB_HTTP_URL/hook/$HOOK_KEY" \
    "  smtp:" \
    "    host: $LAB_SMTP_ADDR" \
    "    port: $LAB_SMTP_PORT" \
    "    user: hozo" \
    "    password_file: $LAB_DIR/secrets/smtp" \
    "    from_addr: hozo@lab.example" \
    "    to_addr: [ops@lab.example, admin@lab.example]" \
    "    use_tls: false"
}

# Marks: requests/mails before this point are ignored by the queries below.
mark_receivers() {
  HTTP_MARK=$(wc -l <"$LAB_HTTP_LOG")
  MAIL_MARK=$( (cat "$LAB_MAILDIR/messages.jsonl" 2>/dev/null || true) | wc -l)
}
# http_q EXPR: evaluates EXPR over the HTTP requests since the mark. `on(prefix)` = requests whose
# path starts with prefix; `form(r)` = parsed form body; `js(r)` = JSON body.
http_q() {
  "$LAB_PY" - "$LAB_HTTP_LOG" "$HTTP_MARK" "$1" <<'EOF'
import json, sys, urllib.parse
lines = open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):]
reqs = [json.loads(l) for l in lines if l.strip()]
def on(prefix): return [r for r in reqs if r["path"].startswith(prefix)]
def form(r): return {k: v[0] for k, v in urllib.parse.parse_qs(r["body"] or "", keep_blank_values=True).items()}
def js(r): return json.loads(r["body"])
print(eval(sys.argv[3]))
EOF
}
# mail_q EXPR: over the mails since the mark: `mails` (messages.jsonl records), `msg(i)` = the parsed
# email.message.EmailMessage of mail i, `raw(i)` = its bytes.
mail_q() {
  "$LAB_PY" - "$LAB_MAILDIR" "$MAIL_MARK" "$1" <<'EOF'
import email, email.policy, json, os, sys
d = sys.argv[1]
path = os.path.join(d, "messages.jsonl")
lines = open(path).read().splitlines() if os.path.exists(path) else []
mails = [json.loads(l) for l in lines[int(sys.argv[2]):] if l.strip()]
def raw(i): return open(os.path.join(d, mails[i]["eml"]), "rb").read()
def msg(i): return email.message_from_bytes(raw(i), policy=email.policy.default)
print(eval(sys.argv[3]))
EOF
}
notify_stage() { state_get "$1" '[s for s in r["stages"] if s["name"] == "notify"][0]'"$2"; }

# ------------------------------------------------------------------------------------------
t_log "1. success run, every channel: one well-formed request/mail each"
notify_config nightly "success, failure"
mark_receivers
run_hozo jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_eq "outcome success" success "$(state_get nightly 'r["outcome"]')"
t_check "notify is the last stage, after shutdown" test "$(state_get nightly '",".join(s["name"] for s in r["stages"][-2:])')" = "shutdown,notify"
t_eq "notify stage ok" True "$(notify_stage nightly '["ok"]')"
t_eq "five channel results, all ok" "5 True" \
  "$(state_get nightly 'str(len(r["notifications"])) + " " + str(all(n["ok"] for n in r["notifications"]))')"
t_eq "ntfy: one request" 1 "$(http_q 'len(on("/ntfy/"))')"
t_eq "ntfy: topic in the path" /ntfy/hozo-lab "$(http_q 'on("/ntfy/")[0]["path"]')"
t_eq "ntfy: title" "hozo: nightly succeeded" "$(http_q 'on("/ntfy/")[0]["headers"].get("Title")')"
t_eq "ntfy: priority" default "$(http_q 'on("/ntfy/")[0]["headers"].get("Priority")')"
t_eq "ntfy: bearer token" "Bearer $NTFY_TOKEN" "$(http_q 'on("/ntfy/")[0]["headers"].get("Authorization")')"
t_eq "ntfy: body says powered off" True "$(http_q '"Powered off: yes" in on("/ntfy/")[0]["body"]')"
t_eq "pushover: one request" 1 "$(http_q 'len(on("/pushover/"))')"
t_eq "pushover: form fields" "$PO_TOKEN $PO_USER 0 hozo: nightly succeeded" \
  "$(http_q '" ".join(form(on("/pushover/")[0])[k] for k in ("token", "user", "priority", "title"))')"
t_eq "pushover: message has the datasets" True "$(http_q '"GUID match" in form(on("/pushover/")[0])["message"]')"
t_eq "webhook: one JSON request" "1 application/json" \
  "$(http_q 'str(len(on("/hook/"))) + " " + on("/hook/")[0]["headers"].get("Content-Type")')"
t_eq "webhook: run record with outcome" "success nightly True" \
  "$(http_q '" ".join(str(x) for x in (js(on("/hook/")[0])["outcome"], js(on("/hook/")[0])["job"], len(js(on("/hook/")[0])["datasets"]) == 2))')"
t_eq "healthchecks: /start then success" "/hc/$HC_UUID/start /hc/$HC_UUID" "$(http_q '" ".join(r["path"] for r in on("/hc/"))')"
t_eq "smtp: one mail" 1 "$(mail_q 'len(mails)')"
t_eq "smtp: envelope recipients" "ops@lab.example admin@lab.example" "$(mail_q '" ".join(mails[0]["rcpt_tos"])')"
t_eq "smtp: Subject" "hozo: nightly succeeded" "$(mail_q 'msg(0)["Subject"]')"
t_eq "smtp: To has both" "ops@lab.example, admin@lab.example" "$(mail_q '", ".join(a.addr_spec for a in msg(0)["To"].addresses)')"
t_eq "smtp: From, Date, Message-ID, MIME" "hozo@lab.example True True 1.0 text/plain utf-8" \
  "$(mail_q '" ".join(str(x) for x in (msg(0)["From"], msg(0)["Date"].datetime is not None, msg(0)["Message-ID"].startswith("<hozo."), msg(0)["MIME-Version"], msg(0).get_content_type(), msg(0).get_content_charset()))')"
t_eq "smtp: body parsed, CRLF only" "True True" \
  "$(mail_q 'str("Outcome: success" in msg(0).get_content()) + " " + str(raw(0).count(b"\n") == raw(0).count(b"\r\n"))')"
echo "    run with every channel: ${RUN_SECONDS}s" >&2

# ------------------------------------------------------------------------------------------
t_log "2. every HTTP receiver answers 500 -> run still exit 0, failures recorded, one retry each"
lab_http_status 500
mark_receivers
run_hozo jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_eq "outcome success" success "$(state_get nightly 'r["outcome"]')"
t_eq "no failed stage" "" "$(state_get nightly 'r["failed_stage"]')"
t_eq "notify stage recorded as not ok" False "$(notify_stage nightly '["ok"]')"
t_eq "ntfy, pushover, webhook failed with HTTP 500" "True True True" \
  "$(state_get nightly '" ".join(str(any(n["channel"] == c and not n["ok"] and "HTTP 500" in n["message"] for n in r["notifications"])) for c in ("ntfy", "pushover", "webhook"))')"
t_eq "smtp still ok" True "$(state_get nightly 'any(n["channel"] == "smtp" and n["ok"] for n in r["notifications"])')"
t_eq "ntfy retried once (2 requests)" 2 "$(http_q 'len(on("/ntfy/"))')"
t_eq "webhook retried once (2 requests)" 2 "$(http_q 'len(on("/hook/"))')"
echo "    run with HTTP 500 everywhere: ${RUN_SECONDS}s" >&2

# ------------------------------------------------------------------------------------------
t_log "3. receivers hanging (answer after 30 s, timeout 2 s) -> bounded, exit 0"
lab_http_status 200 30
notify_config nightly "success, failure" 2
mark_receivers
run_hozo jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
hang=$(notify_stage nightly '["seconds"]')
echo "    notify stage with hanging HTTP receivers: ${hang}s (run ${RUN_SECONDS}s)" >&2
# 4 HTTP channels x (2 attempts x 2 s + 1 s pause), plus the start ping (5 s) and slack.
t_check "notify stage bounded (< 30 s)" "$LAB_PY" -c "import sys; sys.exit(0 if float('$hang') < 30 else 1)"
t_eq "timeouts recorded" True "$(state_get nightly 'all(not n["ok"] for n in r["notifications"] if n["channel"] != "smtp")')"
lab_http_status 200

# ------------------------------------------------------------------------------------------
t_log "4. receivers down -> exit 0, every channel failed, quick"
lab_stop_receivers
notify_config nightly "success, failure" 3
run_hozo jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_eq "outcome success" success "$(state_get nightly 'r["outcome"]')"
t_eq "all channels failed" "True" "$(state_get nightly 'all(not n["ok"] for n in r["notifications"]) and len(r["notifications"]) >= 5')"
down=$(notify_stage nightly '["seconds"]')
echo "    notify stage with receivers down: ${down}s (run ${RUN_SECONDS}s)" >&2
t_check "notify stage bounded (< 15 s)" "$LAB_PY" -c "import sys; sys.exit(0 if float('$down') < 15 else 1)"
lab_start_receivers || exit 1

# ------------------------------------------------------------------------------------------
t_log "5. notify_on: [failure] -> nothing on success but the healthchecks pings; everything on failure"
notify_config nightly failure
mark_receivers
run_hozo jobs run nightly
t_eq "run exits 0" 0 "$HOZO_RC"
t_eq "no ntfy/pushover/webhook request" 0 "$(http_q 'len(on("/ntfy/")) + len(on("/pushover/")) + len(on("/hook/"))')"
t_eq "no mail" 0 "$(mail_q 'len(mails)')"
t_eq "healthchecks still pinged (dead man's switch)" "/hc/$HC_UUID/start /hc/$HC_UUID" "$(http_q '" ".join(r["path"] for r in on("/hc/"))')"
notify_config nightly failure 3 "syncoid:" "  path: hozo-no-such-syncoid"
mark_receivers
run_hozo jobs run nightly
t_eq "failed run exits 69" 69 "$HOZO_RC"
t_eq "ntfy: failure title and high priority" "hozo: nightly FAILED (preflight) high" \
  "$(http_q 'on("/ntfy/")[0]["headers"].get("Title") + " " + on("/ntfy/")[0]["headers"].get("Priority")')"
t_eq "pushover: priority 1" 1 "$(http_q 'form(on("/pushover/")[0])["priority"]')"
t_eq "webhook: outcome failed" "failed preflight" "$(http_q 'js(on("/hook/")[0])["outcome"] + " " + js(on("/hook/")[0])["failed_stage"]')"
t_eq "healthchecks: /start then /fail with the summary" "/hc/$HC_UUID/start /hc/$HC_UUID/fail True" \
  "$(http_q '" ".join(r["path"] for r in on("/hc/")) + " " + str("syncoid not found" in on("/hc/")[-1]["body"])')"
t_eq "smtp: failure subject" "hozo: nightly FAILED (preflight)" "$(mail_q 'msg(0)["Subject"]')"

# ------------------------------------------------------------------------------------------
t_log "6. hozo notify test"
notify_config nightly "success, failure"
mark_receivers
run_hozo notify test nightly
t_eq "notify test exits 0" 0 "$HOZO_RC"
t_eq "one ok line per channel" 5 "$(grep -c '^nightly [a-z]*: ok ' "$T_OUT")"
t_eq "test message reached ntfy" "hozo: test notification for nightly" "$(http_q 'on("/ntfy/")[0]["headers"].get("Title")')"
t_eq "test mail" 1 "$(mail_q 'len(mails)')"
lab_http_status 500
run_hozo notify test
t_eq "notify test with failing channels exits 1" 1 "$HOZO_RC"
t_check "failed channels say FAILED and why" grep -q '^nightly ntfy: FAILED .*HTTP 500' "$T_OUT"
lab_http_status 200

# ------------------------------------------------------------------------------------------
t_log "7. secrets never in state, output, run logs or jobs show"
run_hozo jobs show nightly
t_check "jobs show masks the tokens" grep -q '"ntfy_token"' "$T_OUT"
no_secret() { # FILE...
  local s f
  for s in "$NTFY_TOKEN" "$PO_TOKEN" "$PO_USER" "$SMTP_PW"; do
    for f in "$@"; do
      if grep -rqF -- "$s" "$f"; then echo "secret found in $f" >&2; return 1; fi
    done
  done
}
no_path() { # FILE...: the healthchecks UUID and webhook key (URL paths) stay out of logs and state
  local s f
  for s in "$HC_UUID" "$HOOK_KEY"; do
    for f in "$@"; do
      if grep -rqF -- "$s" "$f"; then echo "URL path $s found in $f" >&2; return 1; fi
    done
  done
}
t_check "no secret in the state file" no_secret "$T_STATE"
t_check "no secret in hozo's stdout/stderr (all calls, incl. jobs show)" no_secret "$ALL_OUT"
t_check "no secret in the run logs" no_secret "$LAB_DIR/state/logs"
t_check "no URL path in the state file" no_path "$T_STATE"
t_check "no URL path in the run logs" no_path "$LAB_DIR/state/logs"
grep -v '^    "\(healthchecks\|webhook\)_url"' "$ALL_OUT" >"$LAB_DIR/all-but-show.txt"
t_check "no URL path in hozo's output (besides jobs show's config dump)" no_path "$LAB_DIR/all-but-show.txt"

t_done
