#include "hozo/status_json.hpp"

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iterator>

#include <fmt/format.h>

#include "hozo/config_json.hpp"
#include "hozo/schedule.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

namespace {

using SysClock = std::chrono::system_clock;

std::optional<SysClock::time_point> time_of(const std::string& iso) {
  if (iso.empty()) return std::nullopt;
  auto t = parse_iso8601_utc(iso);
  if (!t) return std::nullopt;
  return *t;
}

/// next_run in JSON: the ISO-8601 UTC time, or null (manual jobs, and schedules that never fire).
nlohmann::json next_run_json(const Job& job) {
  const auto next = next_run_of(job);
  return next ? nlohmann::json(iso8601_utc(*next)) : nlohmann::json(nullptr);
}

/// This machine's time zone name (TZ, else /etc/localtime's target, else /etc/timezone).
std::string local_zone_name() {
  if (const char* tz = std::getenv("TZ"); tz != nullptr && *tz != '\0') return std::string(tz[0] == ':' ? tz + 1 : tz);
  std::error_code ec;
  const auto target = std::filesystem::read_symlink("/etc/localtime", ec).string();
  if (const auto at = target.find("zoneinfo/"); !ec && at != std::string::npos) return target.substr(at + 9);
  if (auto text = read_file("/etc/timezone"); text && !trim(*text).empty()) return std::string(trim(*text));
  return "local";
}

/// "UTC" or "local" for JSON.
const char* zone_json(const Job& job) {
  auto schedule = parse_schedule(job.schedule);
  if (!schedule || schedule->is_manual()) return nullptr;
  return schedule->zone() == TimeZone::utc ? "UTC" : "local";
}

}  // namespace

std::string progress_text(const RunProgress& p) {
  std::string out = p.stage;
  if (!p.dataset.empty()) out += " " + p.dataset;
  if (p.bytes_done > 0 || p.bytes_total > 0) {
    out += fmt::format(": {} of {}", format_bytes(p.bytes_done), p.bytes_total > 0 ? format_bytes(p.bytes_total) : "?");
    if (p.bytes_per_second > 0) out += fmt::format(", {}/s", format_bytes(static_cast<std::int64_t>(p.bytes_per_second)));
    if (p.eta_seconds >= 0) out += ", ETA " + format_duration(std::chrono::duration<double>(p.eta_seconds));
  }
  if (!p.updated.empty()) out += " (updated " + p.updated + ")";
  return out;
}

std::optional<SysClock::time_point> next_run_of(const Job& job) {
  auto schedule = parse_schedule(job.schedule);
  if (!schedule || schedule->is_manual()) return std::nullopt;
  return schedule->next_run(SysClock::now());
}

std::string next_run_text(const Job& job) {
  if (job.schedule.empty()) return "manual";
  const auto next = next_run_of(job);
  if (!next) return "-";
  const std::time_t t = SysClock::to_time_t(*next);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M %Z", &tm) == 0) return iso8601_utc(*next);
  return buf;
}

std::string schedule_text(const Job& job) {
  if (job.schedule.empty()) return "manual";
  auto schedule = parse_schedule(job.schedule);
  if (!schedule) return job.schedule + " (invalid)";
  if (schedule->zone() == TimeZone::utc) return job.schedule + " (UTC)";
  return fmt::format("{} (local, {})", job.schedule, local_zone_name());
}

void add_schedule_json(nlohmann::json& j, const Job& job) {
  j["schedule"] = job.schedule;
  j["manual"] = job.schedule.empty();
  const char* zone = zone_json(job);
  j["schedule_zone"] = zone != nullptr ? nlohmann::json(zone) : nlohmann::json(nullptr);
  j["next_run"] = next_run_json(job);
}

nlohmann::json broken_json(const BrokenJob& broken) {
  nlohmann::json j;
  j["name"] = broken.name;
  auto issues = nlohmann::json::array();
  for (const auto& issue : broken.issues) issues.push_back(issue_json(issue));
  j["config_error"] = issues;
  return j;
}

std::chrono::seconds overdue_limit(const Job& job) {
  if (job.overdue_after.count() > 0) return job.overdue_after;
  if (job.schedule.empty()) return std::chrono::seconds{0};
  auto schedule = parse_schedule(job.schedule);
  if (!schedule || schedule->is_manual()) return std::chrono::seconds{0};
  // The schedule's period: the gap between two consecutive runs (from now; good for the regular
  // schedules people write: hourly, daily, weekly, monthly).
  const auto first = schedule->next_run(SysClock::now());
  if (!first) return std::chrono::seconds{0};
  const auto second = schedule->next_run(*first);
  if (!second) return std::chrono::seconds{0};
  const auto period = std::chrono::duration_cast<std::chrono::seconds>(*second - *first);
  return std::chrono::seconds{period.count() * 3 / 2};
}

std::string age_text(std::chrono::seconds age) {
  const auto s = age.count();
  if (s < 0) return "in the future";
  if (s < 90) return fmt::format("{} second{} ago", s, s == 1 ? "" : "s");
  if (s < 90 * 60) return fmt::format("{} minutes ago", (s + 30) / 60);
  if (s < 36 * 3600) return fmt::format("{} hours ago", (s + 1800) / 3600);
  return fmt::format("{} days ago", (s + 43200) / 86400);
}

JobHealth assess_job(const Job* job, const JobSummary* summary, SysClock::time_point now) {
  if (summary == nullptr) return assess_job(job, nullptr, nullptr, nullptr, now);
  return assess_job(job, summary->last ? &*summary->last : nullptr,
                    summary->last_success ? &*summary->last_success : nullptr,
                    summary->running.empty() ? nullptr : &summary->running.back(), now);
}

JobHealth assess_job(const Job* job, const RunRecord* last, const RunRecord* success, const RunRecord* running,
                     SysClock::time_point now) {
  JobHealth h;
  h.running = running != nullptr;
  if (job != nullptr) h.overdue_after = overdue_limit(*job);
  if (success != nullptr) {
    const auto t = time_of(success->finished.empty() ? success->started : success->finished);
    if (t) h.success_age = std::chrono::duration_cast<std::chrono::seconds>(now - *t);
  }
  if (h.overdue_after.count() > 0) {
    if (h.success_age) {
      h.overdue = *h.success_age > h.overdue_after;
    } else if (const RunRecord* first = running != nullptr ? running : last) {
      // Never succeeded: overdue once it has been trying for longer than the limit.
      if (const auto t = time_of(first->started)) h.overdue = now - *t > h.overdue_after;
    }
  }
  if (last == nullptr) {
    h.status = h.running ? "running" : "never run";
  } else {
    h.failed = last->outcome != RunOutcome::success;
    h.status = h.failed ? std::string(to_string(last->outcome)) : "ok";
  }
  if (h.overdue) h.status = "overdue";
  return h;
}

nlohmann::json health_json(const JobHealth& h) {
  nlohmann::json j;
  j["health"] = h.status;
  j["failed"] = h.failed;
  j["overdue"] = h.overdue;
  j["overdue_after_seconds"] = h.overdue_after.count();
  j["last_success_age_seconds"] = h.success_age ? nlohmann::json(h.success_age->count()) : nlohmann::json(nullptr);
  j["last_success_age"] = h.success_age ? nlohmann::json(age_text(*h.success_age)) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json job_list_json(const Job& job, const RunRecord* last) {
  nlohmann::json j;
  j["name"] = job.name;
  j["description"] = job.description;
  j["target_host"] = job.target_host;
  auto ds = nlohmann::json::array();
  for (const auto& d : job.datasets) ds.push_back({{"source", d.source}, {"target", d.target}, {"recursive", d.recursive}});
  j["datasets"] = ds;
  add_schedule_json(j, job);
  j["last"] = last != nullptr ? nlohmann::json(*last) : nlohmann::json(nullptr);
  j["config_error"] = nullptr;
  return j;
}

nlohmann::json status_json(const Job* job, const std::string& name, const JobSummary* summary,
                           const RunRecord* full_last, const std::optional<RunProgress>& progress) {
  nlohmann::json j;
  j["name"] = name;
  if (job != nullptr) add_schedule_json(j, *job);
  const RunRecord* last = full_last != nullptr ? full_last : (summary != nullptr ? summary->newest() : nullptr);
  j["last"] = last != nullptr ? nlohmann::json(*last) : nlohmann::json(nullptr);
  const bool succeeded = summary != nullptr && summary->last_success;
  j["last_success"] = succeeded ? nlohmann::json(*summary->last_success) : nlohmann::json(nullptr);
  j.update(health_json(assess_job(job, summary, SysClock::now())));
  auto running = nlohmann::json::array();
  if (summary != nullptr) {
    for (const auto& r : summary->running) {
      running.push_back({{"run_id", r.run_id}, {"started", r.started}, {"pid", r.pid}, {"hostname", r.hostname}});
    }
  }
  j["running"] = std::move(running);
  j["progress"] = progress ? nlohmann::json(*progress) : nlohmann::json(nullptr);
  const bool restored = summary != nullptr && summary->last_restore;
  j["last_restore"] = restored ? nlohmann::json(*summary->last_restore) : nlohmann::json(nullptr);
  return j;
}

}  // namespace hozo
