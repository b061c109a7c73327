#!/usr/bin/env bash
# Lab: `hozo serve` in a real headless Chromium. After two real lab runs the overview shows the
# job as success with its age and a sparkline; "Run now" (a same-origin POST with the page's
# CSRF token) starts a real lab run whose run page shows it running with its log, and which
# ends as success. Screenshots of the overview and the run page go to $LAB_DIR (or to
# $HOZO_SCREENSHOT_DIR, e.g. docs/, when set). Chromium and the server run in the lab's
# orchestrator namespace: the only routes there are the lab's veths.
set -uo pipefail
LAB_ID=${LAB_ID:-srv$$}
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
lab_require
command -v chromium >/dev/null || _lab_skip "chromium not installed (tests/install-deps.sh)"
serve_pid=
stop_serve() { [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null; serve_pid=; }
trap 'stop_serve; lab_down' EXIT
lab_up || exit 1
shots=${HOZO_SCREENSHOT_DIR:-$LAB_DIR}
mkdir -p "$shots" "$LAB_DIR/chrome-home"

browser() { # MODE URL [ARGS...]: MODE dump (DOM on stdout) or shot FILE
  local mode=$1 url=$2
  local -a args=(--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking
    --disable-component-update --disable-sync --disable-default-apps --user-data-dir="$LAB_DIR/chrome"
    --window-size=1280,720 --hide-scrollbars)
  if [[ $mode == dump ]]; then
    ip netns exec "$LAB_NS_ORCH" env HOME="$LAB_DIR/chrome-home" timeout 60 chromium "${args[@]}" \
      --virtual-time-budget=3000 --dump-dom "$url" 2>>"$LAB_DIR/chromium.log"
  else
    ip netns exec "$LAB_NS_ORCH" env HOME="$LAB_DIR/chrome-home" timeout 60 chromium "${args[@]}" \
      --virtual-time-budget=3000 --screenshot="$3" "$url" >>"$LAB_DIR/chromium.log" 2>&1
  fi
}

t_log "1. two real runs, then the overview in Chromium"
write_config nightly "recursive: true" "description: nightly off-site copy of tank/data" "schedule: daily 02:00"
hozo_run jobs run nightly
t_eq "first run" 0 "$HOZO_RC"
echo "more $(date)" >"$LAB_SRC_MNT/data/more.txt"
hozo_run jobs run nightly
t_eq "second run" 0 "$HOZO_RC"

port=8000
base=http://127.0.0.1:$port
ip netns exec "$LAB_NS_ORCH" env PATH="$LAB_ORCH_PATH" HOME="$LAB_DIR/home" \
  "$HOZO_BIN" -c "$T_CONFIG" --state "$T_STATE" serve --listen "127.0.0.1:$port" >"$LAB_DIR/serve.log" 2>&1 </dev/null &
serve_pid=$!
for _ in $(seq 50); do lab_exec_orch curl -s -o /dev/null "$base/healthz" && break; sleep 0.1; done
t_check "serve answers /healthz in the orchestrator namespace" lab_exec_orch curl -sf -o /dev/null "$base/healthz"

dom=$(browser dump "$base/")
t_check "overview: job row" grep -q 'href="/jobs/nightly"' <<<"$dom"
t_check "overview: success badge" grep -q '<span class="badge success">success</span>' <<<"$dom"
t_check "overview: age of the last success" grep -Eq '<td>[0-9]+[smhd]( [0-9]+[smh])? ago<br>' <<<"$dom"
t_check "overview: duration sparkline (inline SVG)" grep -q '<svg class="spark"[^>]*aria-label="duration of the last runs"' <<<"$dom"
t_check "overview: the box as the last run left it (off)" grep -q "<td>off</td>" <<<"$dom"
t_check "overview: no overdue badge" bash -c '! grep -q "badge overdue" <<<"$1"' _ "$dom"
browser shot "$base/" "$shots/serve-overview.png"
t_check "overview screenshot" test -s "$shots/serve-overview.png"

t_log "2. Run now: a real lab run, followed on its run page"
csrf=$(grep -o 'name="csrf" value="[0-9a-f]*"' <<<"$dom" | head -1 | sed 's/.*value="\([0-9a-f]*\)"/\1/')
before=$(state_get nightly 'r["run_id"]')
location=$(lab_exec_orch curl -s -o /dev/null -w '%{redirect_url}' -H "Origin: $base" -d "csrf=$csrf" "$base/jobs/nightly/run")
t_check "Run now redirects to the new run's page ($location)" grep -q "/jobs/nightly/runs/" <<<"$location"
run_id=${location##*/}
t_check "a new run was started" test "$run_id" != "$before"
running_seen=0
for _ in $(seq 1 30); do
  dom=$(browser dump "$location")
  if grep -q '<span class="badge running">running</span>' <<<"$dom"; then
    running_seen=1
    break
  fi
  sleep 1
done
t_eq "the run page shows the run as running" 1 "$running_seen"
t_check "the running page shows the stage progress" grep -q 'id="progress-stage"' <<<"$dom"
t_check "and the log, followed by the script" grep -q 'data-running="1"' <<<"$dom"
((running_seen)) && browser shot "$location" "$shots/serve-run-running.png"
for _ in $(seq 1 240); do
  [[ $(state_get nightly 'r["outcome"]') != running ]] && break
  sleep 1
done
t_eq "the run ends as success" success "$(state_get nightly 'r["outcome"]')"
t_eq "it is the run Run now started" "$run_id" "$(state_get nightly 'r["run_id"]')"
dom=$(browser dump "$location")
t_check "run page: success badge" grep -q '<span class="badge success">success</span>' <<<"$dom"
t_check "run page: stage timeline" grep -q '<svg class="timeline"' <<<"$dom"
t_check "run page: syncoid's output in the log" grep -qi 'syncoid\|sending' <<<"$dom"
t_check "run page: verified datasets" grep -q 'GUID match' <<<"$dom"
browser shot "$location" "$shots/serve-run.png"
t_check "run page screenshot" test -s "$shots/serve-run.png"
t_eq "box is off again" off "$(lab_box_state)"
t_check "one journal line per request" grep -q 'POST /jobs/nightly/run 303 from 127.0.0.1' "$LAB_DIR/serve.log"
stop_serve
t_done
