#!/usr/bin/env bash
# Security of the real `hozo serve` on 127.0.0.1, over a state file made by a real (failing) run:
# refusal to serve without credentials off loopback, login with a crypt(3) hash and its rate
# limit, bearer token, CSRF + same-origin on every POST, XSS payloads (job description, log
# line) rendered inert, run/log id traversal refused, and no secret in any response.
# Traffic: 127.0.0.1 and 127.0.0.2 only.
set -uo pipefail
src=${HOZO_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
hozo_bin=${HOZO_BIN:-$src/build/hozo}
for tool in curl python3; do
  command -v $tool >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
done
work=$(mktemp -d /tmp/hozo-serve-test.XXXXXX)
serve_pid=
cleanup() { [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }

password='correct horse battery'
if command -v mkpasswd >/dev/null; then
  hash=$(printf '%s' "$password" | mkpasswd -m yescrypt --stdin)
else
  hash=$(openssl passwd -6 "$password")
fi
printf '%s\n' "$hash" > "$work/serve.hash"
printf 'serve-api-token-0123456789\n' > "$work/serve.token"
printf 'agent-token-abcdefghijklmnop\n' > "$work/agent.token"
chmod 600 "$work"/*.token "$work/serve.hash"
secrets=("$password" serve-api-token-0123456789 agent-token-abcdefghijklmnop ntfy-inline-secret-987654 "$hash")
port=$((20000 + $$ % 20000))
cat > "$work/hozo.yaml" <<YAML
settings:
  notifications:
    ntfy_server: http://127.0.0.1:1
    ntfy_topic: t
    ntfy_token: ntfy-inline-secret-987654
    notify_on: []
serve:
  listen: 127.0.0.1:$port
  password_hash_file: $work/serve.hash
  token_file: $work/serve.token
  metrics_textfile: $work/metrics/hozo.prom
jobs:
  - name: nightly
    description: "<script>alert('desc')</script><img src=x onerror=alert(2)>"
    source_dataset: tank/data
    target_dataset: backup/data
    target_host: 127.0.0.1
    ssh_port: 1
    ssh_timeout: 1s
    wol: false
    schedule: daily 02:00
    agent:
      url: http://127.0.0.1:1
      token_file: $work/agent.token
YAML
state=$work/state/state.json

# A real run (the box never answers: it fails at wait) makes the state entry and its log.
"$hozo_bin" -c "$work/hozo.yaml" --state "$state" jobs run nightly >"$work/run.out" 2>&1
log=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"]["nightly"]["last"]["log_file"])' "$state")
run_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"]["nightly"]["last"]["run_id"])' "$state")
[[ -f $log ]] && ok "a real run recorded $run_id with its log" || bad "no run log ($log)"
grep -q '^hozo_last_run_success{job="nightly"} 0$' "$work/metrics/hozo.prom" 2>/dev/null &&
  [[ $(stat -c %a "$work/metrics/hozo.prom") == 644 ]] && ok "metrics_textfile written after the run (mode 644)" ||
  bad "metrics_textfile: $(cat "$work/metrics/hozo.prom" 2>&1 | head -3)"
if command -v promtool >/dev/null; then
  out=$(promtool check metrics <"$work/metrics/hozo.prom" 2>&1)
  [[ $? == 0 && -z $out ]] && ok "promtool check metrics of the textfile: clean" || bad "promtool (textfile): $out"
fi
echo "<script>alert('log')</script> \"quoted\" & more" >> "$log"

# --- exposure ------------------------------------------------------------------------------
sed -e '/password_hash_file\|token_file: .*serve.token/d' "$work/hozo.yaml" > "$work/open.yaml"
"$hozo_bin" -c "$work/open.yaml" --state "$state" serve --listen 0.0.0.0:$port >"$work/refuse.out" 2>&1
rc=$?
[[ $rc == 78 ]] && grep -q "serve.password_hash_file" "$work/refuse.out" && ok "no credentials on 0.0.0.0: refused (exit 78)" ||
  bad "0.0.0.0 without credentials: exit $rc: $(cat "$work/refuse.out")"
"$hozo_bin" -c "$work/open.yaml" --state "$state" serve --listen 127.0.0.1:$port >"$work/open.log" 2>&1 &
serve_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
grep -q "local only" "$work/open.log" && ok "no credentials on loopback: serves and says local only" || bad "open.log: $(cat "$work/open.log")"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null; serve_pid=

# --- the protected server -------------------------------------------------------------------
"$hozo_bin" -c "$work/hozo.yaml" --state "$state" serve >"$work/serve.log" 2>&1 &
serve_pid=$!
base=http://127.0.0.1:$port
for _ in $(seq 50); do curl -s -o /dev/null "$base/healthz" && break; sleep 0.1; done
fetch() { # NAME CURL-ARGS...: saves headers+body to $work/resp.NAME, prints the status
  local name=$1; shift
  n=$(mktemp -u XXXXXXXX)
  curl -s -o "$work/resp.$n.$name" -D "$work/hdr.$n.$name" -w '%{http_code}' "$@"
}
expect() { # WHAT EXPECTED GOT
  [[ $3 == "$2" ]] && ok "$1 ($3)" || bad "$1: expected $2, got $3"
}
expect "GET / without login redirects" 303 "$(fetch root "$base/")"
expect "API without token" 401 "$(fetch api "$base/api/v1/jobs")"
expect "metrics without token" 401 "$(fetch metrics "$base/metrics")"
expect "API with the bearer token" 200 "$(fetch api_bearer -H "Authorization: Bearer serve-api-token-0123456789" "$base/api/v1/jobs")"
expect "API with a wrong token" 401 "$(fetch api_wrong -H "Authorization: Bearer nope" "$base/api/v1/jobs")"

# Wrong passwords from 127.0.0.2: the sixth and later are refused with 429, even the right one.
codes=()
for i in $(seq 10); do
  codes+=("$(fetch login_wrong --interface 127.0.0.2 -H "Origin: http://127.0.0.1:$port" -H "Host: 127.0.0.1:$port" \
    --data-urlencode "password=guess$i" "$base/login")")
done
[[ ${codes[0]} == 401 && ${codes[9]} == 429 ]] && ok "10 wrong passwords: ${codes[*]}" || bad "rate limit: ${codes[*]}"
expect "right password from the locked-out address" 429 "$(fetch login_locked --interface 127.0.0.2 \
  -H "Origin: http://127.0.0.1:$port" --data-urlencode "password=$password" "$base/login")"
expect "login from another site" 403 "$(fetch login_xorigin -H "Origin: http://evil.example" --data-urlencode "password=$password" "$base/login")"
expect "login" 303 "$(fetch login -H "Origin: http://127.0.0.1:$port" --data-urlencode "password=$password" -c "$work/jar" "$base/login")"
grep -i '^set-cookie: hozo_session=' "$work"/hdr.*.login | grep -qi 'HttpOnly' && grep -i '^set-cookie' "$work"/hdr.*.login | grep -q 'SameSite=Strict' &&
  ok "session cookie is HttpOnly and SameSite=Strict" || bad "cookie: $(grep -i set-cookie "$work"/hdr.*.login)"

expect "overview with the session" 200 "$(fetch overview -b "$work/jar" "$base/")"
expect "job page" 200 "$(fetch job -b "$work/jar" "$base/jobs/nightly")"
expect "run page" 200 "$(fetch run -b "$work/jar" "$base/jobs/nightly/runs/$run_id")"
csrf=$(grep -o 'name="csrf" value="[0-9a-f]*"' "$work"/resp.*.job | head -1 | sed 's/.*value="\([0-9a-f]*\)"/\1/')
[[ ${#csrf} == 64 ]] && ok "the job page carries a CSRF token" || bad "no CSRF token on the job page"

# XSS: the payloads are there, escaped; no script element but the embedded asset.
for page in overview job run; do
  f=$(ls "$work"/resp.*."$page")
  if grep -q "<script>alert\|<img src=x" "$f"; then bad "$page: raw payload"; else ok "$page: payload not rendered as markup"; fi
  scripts=$(grep -o '<script[^>]*>' "$f" | sort -u)
  [[ $scripts == '<script src="/assets/hozo.js" defer>' ]] && ok "$page: only the embedded script" || bad "$page scripts: $scripts"
done
grep -q "&lt;script&gt;alert(&#39;desc&#39;)" "$work"/resp.*.overview && ok "description shown escaped" || bad "description not shown"
grep -q "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt; &quot;quoted&quot; &amp; more" "$work"/resp.*.run &&
  ok "log line shown escaped" || bad "log line not shown escaped"
grep -qi "^content-security-policy: default-src 'self'" "$work"/hdr.*.overview && ok "CSP default-src 'self'" || bad "no CSP"

# CSRF and same origin on POST.
expect "POST without CSRF token" 403 "$(fetch post_nocsrf -b "$work/jar" -H "Origin: http://127.0.0.1:$port" -d x=1 "$base/jobs/nightly/dry-run")"
expect "POST cross-origin" 403 "$(fetch post_xorigin -b "$work/jar" -H "Origin: http://evil.example" -d "csrf=$csrf" "$base/jobs/nightly/dry-run")"
expect "POST cross-site (Sec-Fetch-Site)" 403 "$(fetch post_xsite -b "$work/jar" -H "Sec-Fetch-Site: cross-site" -d "csrf=$csrf" "$base/jobs/nightly/dry-run")"
expect "POST without Origin or Sec-Fetch-Site" 403 "$(fetch post_noorigin -b "$work/jar" -d "csrf=$csrf" "$base/jobs/nightly/dry-run")"
expect "POST same-origin with the token" 200 "$(fetch post_ok -b "$work/jar" -H "Origin: http://127.0.0.1:$port" -d "csrf=$csrf" "$base/jobs/nightly/dry-run")"
expect "API POST with the bearer token" 200 "$(fetch api_dry -X POST -H "Authorization: Bearer serve-api-token-0123456789" "$base/api/v1/jobs/nightly/dry-run")"

# Traversal on run and log ids.
auth=(-H "Authorization: Bearer serve-api-token-0123456789")
for path in "/jobs/nightly/runs/..%2F..%2F..%2Fetc%2Fpasswd" "/jobs/nightly/runs/%2Fetc%2Fpasswd/log" \
  "/api/v1/jobs/nightly/runs/..%2Fstate/log" "/api/v1/jobs/nightly/runs/.." "/jobs/nightly/runs/$run_id%2F..%2F..%2Fx/log"; do
  code=$(fetch trav "${auth[@]}" --path-as-is "$base$path")
  [[ $code == 400 || $code == 404 ]] && ok "traversal $path refused ($code)" || bad "traversal $path: $code"
done
code=$(fetch trav_job "${auth[@]}" --path-as-is "$base/jobs/..%2F..%2Fetc/runs/$run_id/log")
[[ $code == 404 ]] && ok "traversal in the job name refused ($code)" || bad "job traversal: $code"
# A state file whose log_file points outside <state dir>/logs: the log is not served.
# (state layout: a summary in state.json, one file per run under runs/<job>/; the summary is
# rewritten too, so the dashboard's cache, keyed on state.json, reads the runs again)
python3 - "$state" <<'PY'
import glob, json, os, sys
p = sys.argv[1]
for f in glob.glob(os.path.join(os.path.dirname(p), "runs", "nightly", "*.json")):
    r = json.load(open(f)); r["log_file"] = "/etc/passwd"; json.dump(r, open(f, "w"))
d = json.load(open(p))
for key in ("last", "last_success"):
    if isinstance(d["jobs"]["nightly"].get(key), dict): d["jobs"]["nightly"][key]["log_file"] = "/etc/passwd"
json.dump(d, open(p, "w"))
PY
code=$(fetch log_outside "${auth[@]}" "$base/api/v1/jobs/nightly/runs/$run_id/log")
[[ $code == 403 ]] && ! grep -q "root:" "$work"/resp.*.log_outside && ok "log_file outside the state dir refused (403)" || bad "log outside: $code"

# More documents for the secret scan.
for p in /api/v1/status /api/v1/jobs/nightly /api/v1/jobs/nightly/config /api/v1/jobs/nightly/runs "/api/v1/jobs/nightly/runs/$run_id" /metrics /healthz; do
  fetch doc "${auth[@]}" "$base$p" >/dev/null
done
if command -v promtool >/dev/null; then
  out=$(curl -s "${auth[@]}" "$base/metrics" | promtool check metrics 2>&1)
  [[ $? == 0 && -z $out ]] && ok "promtool check metrics: clean" || bad "promtool check metrics: $out"
else
  echo "promtool not found (Debian prometheus): metrics lint skipped"
fi
leaks=0
for s in "${secrets[@]}"; do
  if grep -rlF -- "$s" "$work"/resp.* "$work"/hdr.* "$work/serve.log" >/dev/null 2>&1; then
    leaks=$((leaks + 1))
    bad "secret found in: $(grep -rlF -- "$s" "$work"/resp.* "$work"/hdr.* "$work/serve.log" | tr '\n' ' ')"
  fi
done
((leaks == 0)) && ok "no secret in $(ls "$work"/resp.* | wc -l) responses, their headers or the server log"
lines=$(grep -cE ' (GET|POST) /' "$work/serve.log")
requests=$(ls "$work"/hdr.* | wc -l)
((lines >= requests)) && ok "one log line per request ($lines for $requests requests)" || bad "request log lines: $lines for $requests requests"

echo "serve security: $pass passed, $fail failed"
((fail == 0))
