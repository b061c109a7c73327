#include "hozo/serve/pages.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "hozo/serve/html.hpp"
#include "hozo/version.hpp"

namespace hozo::serve {

namespace {

using Out = std::string;

std::string h(std::string_view s) { return escape_html(s); }
std::string u(std::string_view s) { return url_component(s); }

std::string job_href(const Job& job) { return "/jobs/" + u(job.name); }
std::string run_href(const Job& job, const RunRecord& r) { return job_href(job) + "/runs/" + u(r.run_id); }

void head(Out& out, std::string_view title, const PageContext& ctx, int refresh_seconds = 0,
          bool refresh_without_js_only = false) {
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  if (refresh_seconds > 0) {
    const auto meta = fmt::format("<meta http-equiv=\"refresh\" content=\"{}\">", refresh_seconds);
    out += refresh_without_js_only ? "<noscript>" + meta + "</noscript>" : meta;
  }
  out += fmt::format("<title>{} · hozo</title><link rel=\"stylesheet\" href=\"/assets/hozo.css\">"
                     "<script src=\"/assets/hozo.js\" defer></script></head><body><header><a href=\"/\">Hōzō</a>",
                     h(title));
  if (ctx.local_only) out += "<span class=\"note\">local only (no credentials configured)</span>";
  if (ctx.logout) {
    out += fmt::format("<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                       "<button type=\"submit\">Log out</button></form>",
                       h(ctx.csrf));
  }
  out += "</header><main>";
}

void foot(Out& out) { out += fmt::format("</main><footer class=\"muted\"><main>hozo {}</main></footer></body></html>\n", h(kVersion)); }

void badge(Out& out, std::string_view word) { out += fmt::format("<span class=\"badge {0}\">{0}</span>", h(word)); }

std::string age_of(std::optional<double> age) {
  if (!age) return "never";
  return short_duration(std::max(0.0, *age)) + " ago";
}

void action_button(Out& out, const Job& job, std::string_view action, std::string_view label, const PageContext& ctx,
                   bool primary = false) {
  if (ctx.csrf.empty()) return;
  out += fmt::format("<form class=\"inline\" method=\"post\" action=\"{}/{}\"><input type=\"hidden\" name=\"csrf\" "
                     "value=\"{}\"><button type=\"submit\"{}>{}</button></form>",
                     job_href(job), h(action), h(ctx.csrf), primary ? " class=\"primary\"" : "", h(label));
}

void actions(Out& out, const Job& job, const PageContext& ctx) {
  out += "<div class=\"actions\">";
  action_button(out, job, "run", "Run now", ctx, true);
  action_button(out, job, "dry-run", "Dry run", ctx);
  action_button(out, job, "check", "Check", ctx);
  action_button(out, job, "wake", "Wake", ctx);
  action_button(out, job, "shutdown", "Shut down", ctx);
  out += "</div>";
}

/// The stages of a run as horizontal bars (SVG attributes, no inline style).
void timeline(Out& out, const RunRecord& r) {
  if (r.stages.empty()) {
    out += "<p class=\"muted\">no stage finished yet</p>";
    return;
  }
  double total = 0;
  for (const auto& s : r.stages) total += std::max(0.0, s.seconds);
  if (total <= 0) total = 1;
  const int width = 600;
  const int row = 18;
  out += fmt::format("<svg class=\"timeline\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"stage timeline\">",
                     width + 260, static_cast<int>(r.stages.size()) * row + 4);
  double x = 0;
  int y = 2;
  for (const auto& s : r.stages) {
    const double w = std::max(1.0, std::max(0.0, s.seconds) / total * width);
    out += fmt::format("<rect class=\"{}\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\"><title>{}: {}</title></rect>"
                       "<text x=\"{:.1f}\" y=\"{}\">{} {}</text>",
                       s.ok ? "ok" : "bad", 120 + x, y, w, row - 4, h(s.name), h(short_duration(s.seconds)), 0.0,
                       y + row - 6, h(s.name), h(short_duration(s.seconds)));
    x += w;
    y += row;
  }
  out += "</svg>";
}

void stages_table(Out& out, const RunRecord& r) {
  out += "<table><tr><th>stage</th><th></th><th>started</th><th>took</th><th>message</th></tr>";
  for (const auto& s : r.stages) {
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>", h(s.name),
                       s.ok ? "✓" : "✗", h(s.started), h(short_duration(s.seconds)), h(s.message));
  }
  out += "</table>";
}

void datasets_table(Out& out, const RunRecord& r) {
  if (r.datasets.empty()) return;
  out += "<table><tr><th>source</th><th>target</th><th>newest snapshot</th><th>verified</th><th>snapshots on box</th></tr>";
  for (const auto& d : r.datasets) {
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>", h(d.source),
                       h(d.target), h(d.newest_source_snapshot.empty() ? "-" : d.newest_source_snapshot),
                       d.guid_match ? "<span class=\"badge success\">GUID match</span>"
                                    : "<span class=\"badge failed\">not verified</span>",
                       d.remote_snapshot_count);
  }
  out += "</table>";
}

}  // namespace

std::string render_overview(const std::vector<JobView>& views, const PageContext& ctx) {
  Out out;
  out.reserve(4096 + views.size() * 1500);
  head(out, "Jobs", ctx, 30);
  out += "<h1>Jobs</h1><table><tr><th>job</th><th>state</th><th>last success</th><th>duration</th><th>bytes</th>"
         "<th>next run</th><th>box</th><th>last runs</th><th></th></tr>";
  for (const auto& v : views) {
    const Job& job = *v.job;
    out += fmt::format("<tr><td><a href=\"{}\">{}</a>", job_href(job), h(job.name));
    if (!job.description.empty()) out += fmt::format("<br><span class=\"muted\">{}</span>", h(job.description));
    out += "</td><td>";
    badge(out, badge_of(v));
    if (v.overdue) out += " <span class=\"badge overdue\">overdue</span>";
    if (v.last_completed != nullptr && !v.last_completed->failed_stage.empty()) {
      out += fmt::format("<br><span class=\"muted\">{}</span>", h(v.last_completed->failed_stage));
    }
    out += fmt::format("</td><td>{}{}</td>", h(age_of(v.last_success_age)),
                       v.last_success != nullptr
                           ? fmt::format("<br><span class=\"muted\">{}</span>", h(v.last_success->finished))
                           : std::string());
    out += fmt::format("<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>",
                       v.duration ? h(short_duration(*v.duration)) : "-", h(bytes_text(v.bytes)), h(v.next_run),
                       h(v.power.empty() ? "-" : v.power),
                       sparkline_svg(v.durations, 120, 24, "duration of the last runs"),
                       sparkline_svg(v.byte_series, 120, 24, "bytes of the last runs"));
    if (v.last != nullptr) out += fmt::format("<a href=\"{}\">log</a> ", run_href(job, *v.last));
    action_button(out, job, "run", "Run now", ctx, true);
    out += "</td></tr>";
  }
  if (views.empty()) out += "<tr><td colspan=\"9\" class=\"muted\">no jobs configured</td></tr>";
  out += "</table>";
  foot(out);
  return out;
}

std::string render_job(const JobView& v, const nlohmann::ordered_json& masked_config, const PageContext& ctx) {
  const Job& job = *v.job;
  Out out;
  head(out, job.name, ctx, v.running ? 10 : 60);
  out += fmt::format("<h1>{} ", h(job.name));
  badge(out, badge_of(v));
  if (v.overdue) out += " <span class=\"badge overdue\">overdue</span>";
  out += "</h1>";
  if (!job.description.empty()) out += fmt::format("<p>{}</p>", h(job.description));
  out += fmt::format("<p>last success: {} · next run: {} · schedule: {}</p>", h(age_of(v.last_success_age)), h(v.next_run),
                     h(job.schedule.empty() ? "manual" : job.schedule));
  actions(out, job, ctx);
  if (v.last != nullptr) {
    const RunRecord& r = *v.last;
    out += fmt::format("<h2>Last run <a href=\"{}\">{}</a></h2>", run_href(job, r), h(r.run_id));
    if (!r.error.empty()) out += fmt::format("<p class=\"error\">{}: {}</p>", h(r.failed_stage), h(r.error));
    timeline(out, r);
    stages_table(out, r);
    out += "<h2>Verification</h2>";
    datasets_table(out, r);
  }
  out += "<h2>History</h2>";
  out += sparkline_svg(v.durations, 400, 40, "duration of the last runs");
  out += "<table><tr><th>run</th><th>outcome</th><th>started</th><th>duration</th><th>bytes</th><th>detail</th></tr>";
  if (v.state != nullptr) {
    for (auto it = v.state->runs.rbegin(); it != v.state->runs.rend(); ++it) {
      const auto& r = *it;
      out += fmt::format("<tr><td><a href=\"{}\">{}</a></td><td>", run_href(job, r), h(r.run_id));
      badge(out, to_string(r.outcome));
      out += fmt::format("</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>", h(r.started),
                         h(short_duration(r.duration_seconds)), h(bytes_text(run_bytes(r))),
                         h(r.failed_stage.empty() ? std::string(to_string(r.shutdown.outcome))
                                                  : r.failed_stage + ": " + r.error));
    }
  }
  out += "</table><h2>Restores</h2>";
  if (v.state == nullptr || v.state->restores.empty()) {
    out += "<p class=\"muted\">none recorded (restores are started with <code>hozo restore</code>)</p>";
  } else {
    out += "<table><tr><th>restore</th><th>outcome</th><th>from</th><th>to</th><th>snapshot</th><th>started</th></tr>";
    for (auto it = v.state->restores.rbegin(); it != v.state->restores.rend(); ++it) {
      out += fmt::format("<tr><td>{}</td><td>", h(it->restore_id));
      badge(out, to_string(it->outcome));
      out += fmt::format("</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", h(it->backup), h(it->target),
                         h(it->restored_snapshot), h(it->started));
    }
    out += "</table>";
  }
  out += fmt::format("<h2>Effective configuration</h2><p class=\"muted\">defaults resolved, secrets masked</p>"
                     "<pre class=\"config\">{}</pre>",
                     h(masked_config.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)));
  foot(out);
  return out;
}

std::string render_run(const Job& job, const RunRecord& r, bool running, std::string_view log, std::size_t log_offset,
                       std::string_view progress, const PageContext& ctx) {
  Out out;
  out.reserve(log.size() * 11 / 10 + 4096);
  head(out, job.name + " " + r.run_id, ctx, running ? 5 : 0, true);
  out += fmt::format("<h1><a href=\"{}\">{}</a> · run {} ", job_href(job), h(job.name), h(r.run_id));
  badge(out, running ? "running" : to_string(r.outcome));
  out += "</h1>";
  out += fmt::format("<p>started {} · {} · exit {}</p>", h(r.started),
                     running ? "in progress" : "took " + h(short_duration(r.duration_seconds)), r.exit_code);
  if (!r.error.empty()) out += fmt::format("<p class=\"error\">{}: {}</p>", h(r.failed_stage), h(r.error));
  if (running) {
    const std::string stage = r.stages.empty() ? "starting" : "after " + r.stages.back().name;
    out += fmt::format("<div class=\"progress\">stage: <b id=\"progress-stage\">{}</b><br>"
                       "<span id=\"progress-bytes\">{}</span><br>"
                       "<span class=\"muted\" id=\"progress-line\"></span></div>",
                       h(stage), h(progress));
  }
  timeline(out, r);
  datasets_table(out, r);
  out += "<h2>Log</h2>";
  if (log_offset > 0) out += fmt::format("<p class=\"muted\">showing the last {} bytes</p>", log.size());
  out += fmt::format("<pre id=\"log\" data-log-url=\"/api/v1/jobs/{}/runs/{}/log\" data-offset=\"{}\" data-running=\"{}\">{}</pre>",
                     u(job.name), u(r.run_id), log_offset + log.size(), running ? 1 : 0, h(log));
  foot(out);
  return out;
}

std::string render_login(std::string_view message, const PageContext& ctx) {
  Out out;
  head(out, "Log in", ctx);
  out += "<h1>Log in</h1><form class=\"login\" method=\"post\" action=\"/login\">";
  if (!message.empty()) out += fmt::format("<p class=\"error\">{}</p>", h(message));
  out += "<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" "
         "autocomplete=\"current-password\" autofocus required><button class=\"primary\" type=\"submit\">Log in</button></form>";
  foot(out);
  return out;
}

std::string render_text_page(int status, std::string_view title, std::string_view text, std::string_view back_href,
                             const PageContext& ctx) {
  Out out;
  head(out, title, ctx);
  out += fmt::format("<h1>{}</h1>", h(title));
  if (status >= 400) out += fmt::format("<p class=\"error\">HTTP {}</p>", status);
  out += fmt::format("<pre>{}</pre><p><a href=\"{}\">back</a></p>", h(text), h(back_href));
  foot(out);
  return out;
}

}  // namespace hozo::serve
