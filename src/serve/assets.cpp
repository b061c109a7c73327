// The dashboard's CSS and JS, compiled into the binary (no CDN, nothing fetched at run time).
#include "hozo/serve/pages.hpp"

namespace hozo::serve {

std::string_view stylesheet() {
  return R"CSS(:root{--fg:#1d232a;--muted:#5f6b76;--bg:#f6f7f9;--card:#fff;--line:#dde1e6;--ok:#1b7f3b;--bad:#b3261e;--warn:#a15c00;--run:#1f5fbf}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;align-items:center;gap:1rem;padding:.6rem 1.2rem;background:#22303c;color:#fff}
header a{color:#fff;text-decoration:none;font-weight:600}
header .note{color:#c9d3dc;font-size:12px}
header form{margin-left:auto}
main{padding:1rem 1.2rem;max-width:1200px}
h1{font-size:20px;margin:.2rem 0 .8rem}h2{font-size:16px;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line)}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line);vertical-align:middle}
th{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.03em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;white-space:nowrap;padding:.05rem .5rem;border-radius:1rem;font-size:12px;font-weight:600;color:#fff;background:var(--muted)}
.badge.success{background:var(--ok)}.badge.failed{background:var(--bad)}.badge.interrupted{background:var(--warn)}
.badge.running{background:var(--run)}.badge.overdue{background:var(--warn)}.badge.never{background:#8a949e}
.muted{color:var(--muted)}
.spark{color:var(--run);vertical-align:middle}
.timeline rect.ok{fill:var(--ok)}.timeline rect.bad{fill:var(--bad)}.timeline text{font-size:11px;fill:var(--fg)}
pre{background:#11181f;color:#e3e8ee;padding:.8rem;overflow:auto;max-height:70vh;white-space:pre-wrap;word-break:break-all}
pre.config{background:var(--card);color:var(--fg);border:1px solid var(--line)}
form.inline{display:inline}
button{font:inherit;padding:.25rem .7rem;border:1px solid var(--line);border-radius:4px;background:#fff;cursor:pointer}
button.primary{background:var(--run);color:#fff;border-color:var(--run)}
.actions{display:flex;gap:.4rem;flex-wrap:wrap;margin:.5rem 0}
.login{max-width:320px;background:var(--card);border:1px solid var(--line);padding:1rem}
.login input{width:100%;padding:.4rem;margin:.3rem 0 .8rem}
.error{color:var(--bad);font-weight:600}
.progress{padding:.5rem .8rem;background:var(--card);border:1px solid var(--line);margin:.5rem 0}
)CSS";
}

std::string_view script() {
  return R"JS(// hozo serve: follows a running run's log and progress. The page works without this script
// (it reloads itself through <noscript>); nothing here comes from user input but data-* URLs
// the server rendered, and text is only ever inserted with textContent.
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log || log.dataset.running !== "1") return;
  var url = log.dataset.logUrl;
  var offset = parseInt(log.dataset.offset || "0", 10);
  var stage = document.getElementById("progress-stage");
  var line = document.getElementById("progress-line");
  var bytes = document.getElementById("progress-bytes");
  function last(text) {
    var lines = text.split(/[\r\n]+/).filter(function (l) { return l.trim() !== ""; });
    return lines.length ? lines[lines.length - 1] : "";
  }
  function poll() {
    fetch(url + "?offset=" + offset, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (d) {
        if (d.text) {
          var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
          log.appendChild(document.createTextNode(d.text));
          if (atBottom) log.scrollTop = log.scrollHeight;
          if (line) line.textContent = last(d.text) || line.textContent;
        }
        offset = d.next_offset;
        if (stage && d.stage) stage.textContent = d.stage;
        if (bytes && d.progress_text) bytes.textContent = d.progress_text;
        if (d.running) { setTimeout(poll, 1500); } else { window.location.reload(); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();
)JS";
}

}  // namespace hozo::serve
