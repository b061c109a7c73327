#include "hozo/serve/view.hpp"

#include <chrono>

#include "hozo/schedule.hpp"
#include "hozo/status_json.hpp"

namespace hozo::serve {

namespace {

std::optional<double> unix_seconds(const std::string& iso) {
  const auto t = parse_iso8601_utc(iso);
  if (!t) return std::nullopt;
  return std::chrono::duration<double>(t->time_since_epoch()).count();
}

std::optional<std::int64_t> json_int(const nlohmann::json& extra, const char* key) {
  const auto it = extra.find(key);
  if (it == extra.end() || !it->is_number()) return std::nullopt;
  return it->get<std::int64_t>();
}

}  // namespace

std::optional<std::int64_t> run_bytes(const RunRecord& run) {
  if (run.bytes_sent > 0 || !run.transfers.empty()) return run.bytes_sent;
  if (auto b = json_int(run.extra, "bytes")) return b;  // written by older test tools
  std::optional<std::int64_t> sum;
  for (const auto& d : run.datasets) {
    if (auto b = json_int(d.extra, "bytes")) sum = sum.value_or(0) + *b;
  }
  return sum;
}

JobView make_job_view(const Job& job, const JobState* state, SystemTime now) {
  JobView v;
  v.job = &job;
  v.state = state;
  v.next_run = next_run_text(job);
  const double now_unix = std::chrono::duration<double>(now.time_since_epoch()).count();
  if (state != nullptr) {
    v.last = state->last();
    v.last_completed = state->last_completed();
    for (auto it = state->runs.rbegin(); it != state->runs.rend(); ++it) {
      if (it->outcome == RunOutcome::success) {
        v.last_success = &*it;
        break;
      }
    }
    for (const auto& r : state->runs) ++v.runs_by_outcome[std::string(to_string(r.outcome))];
    const std::size_t first = state->runs.size() > 30 ? state->runs.size() - 30 : 0;
    for (std::size_t i = first; i < state->runs.size(); ++i) {
      const auto& r = state->runs[i];
      if (r.outcome == RunOutcome::running) continue;
      v.durations.push_back(r.duration_seconds);
      if (auto b = run_bytes(r)) v.byte_series.push_back(static_cast<double>(*b));
    }
  }
  // The state store already shows runs whose process is gone as interrupted; a cached copy may
  // be older than that, so ask again.
  v.running = v.last != nullptr && v.last->outcome == RunOutcome::running && !run_is_orphaned(*v.last);
  if (v.running) {
    v.power = "on";
  } else if (v.last_completed != nullptr) {
    switch (v.last_completed->shutdown.outcome) {
      case ShutdownOutcome::done: v.power = "off"; break;
      case ShutdownOutcome::skipped_not_woken:
      case ShutdownOutcome::skipped_in_use: v.power = "left on"; break;
      case ShutdownOutcome::failed: v.power = "on?"; break;
      case ShutdownOutcome::not_requested: break;
    }
  }
  if (v.last_completed != nullptr) {
    v.duration = v.last_completed->duration_seconds;
    v.bytes = run_bytes(*v.last_completed);
  }
  if (v.last_success != nullptr) {
    v.last_success_unix = unix_seconds(v.last_success->finished.empty() ? v.last_success->started : v.last_success->finished);
    if (v.last_success_unix) v.last_success_age = now_unix - *v.last_success_unix;
  }
  // Overdue as `hozo status` says it (overdue_after, default 1.5x the schedule's period).
  v.overdue = !v.running && assess_job(&job, v.last_completed, v.last_success, v.running ? v.last : nullptr, now).overdue;
  return v;
}

std::vector<JobView> make_job_views(const Config& config, const std::map<std::string, JobState>& states, SystemTime now) {
  std::vector<JobView> views;
  views.reserve(config.jobs.size());
  for (const auto& job : config.jobs) {
    const auto it = states.find(job.name);
    views.push_back(make_job_view(job, it == states.end() ? nullptr : &it->second, now));
  }
  return views;
}

std::string badge_of(const JobView& view) {
  if (view.running) return "running";
  if (view.last_completed == nullptr) return "never";
  return std::string(to_string(view.last_completed->outcome));
}

}  // namespace hozo::serve
