#pragma once
// What `hozo jobs list`, `hozo status` (and their --json documents) and the `hozo serve` API
// (/api/v1/jobs, /api/v1/status) say about a job, in one place so all of them say the same thing:
// its schedule and next run, its health (last success, its age, overdue) and the JSON documents.

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "hozo/config.hpp"
#include "hozo/state.hpp"

namespace hozo {


/// A running job's live progress in one line: "sync tank/data: 1.2 GiB of 4.0 GiB, 50.0 MiB/s,
/// ETA 1m 20s (updated 2026-12-01T20:00:05Z)".
std::string progress_text(const RunProgress& progress);

/// The next scheduled run; nullopt for manual jobs and schedules that never fire.
std::optional<std::chrono::system_clock::time_point> next_run_of(const Job& job);

/// The next run in this machine's local time with its zone ("2026-12-06 04:00 CET"), "manual" or "-".
std::string next_run_text(const Job& job);

/// The schedule as written plus the zone its times are read in, e.g. "daily 02:00 (UTC)",
/// "0 2 * * * (local, Europe/Berlin)"; "manual" when there is none.
std::string schedule_text(const Job& job);

/// Schedule fields of a job in JSON: schedule, manual, schedule_zone ("UTC"/"local"/null) and
/// next_run (ISO-8601 UTC or null).
void add_schedule_json(nlohmann::json& j, const Job& job);

/// A broken job in JSON: its name and config_error, the list of its configuration errors.
nlohmann::json broken_json(const BrokenJob& broken);

/// A job's health for status, monitoring and the dashboard.
struct JobHealth {
  std::string status = "never run";  ///< "ok", "failed", "interrupted", "overdue", "running", "never run"
  bool failed = false;               ///< the last finished run did not succeed
  bool overdue = false;              ///< no success within overdue_after
  bool running = false;              ///< a run is going now
  std::chrono::seconds overdue_after{0};  ///< in effect (0 = never overdue)
  std::optional<std::chrono::seconds> success_age;  ///< since the last success finished
};

/// overdue_after, else 1.5x the schedule's period, else 0 (never overdue).
std::chrono::seconds overdue_limit(const Job& job);
/// "42 seconds ago", "5 minutes ago", "3 hours ago", "9 days ago".
std::string age_text(std::chrono::seconds age);
/// The health of a job (job may be nullptr for one removed from the config; summary for one never run).
JobHealth assess_job(const Job* job, const JobSummary* summary, std::chrono::system_clock::time_point now);
/// The same from the runs themselves (each may be nullptr): the newest finished run, the newest
/// success and a run going now (the dashboard, which has the whole history, copies nothing).
JobHealth assess_job(const Job* job, const RunRecord* last_finished, const RunRecord* last_success,
                     const RunRecord* running, std::chrono::system_clock::time_point now);
/// health, failed, overdue, overdue_after_seconds, last_success_age(_seconds).
nlohmann::json health_json(const JobHealth& h);

/// One element of `jobs list --json`: name, description, target_host, datasets, the schedule
/// fields, the newest run ("last", null when never run) and config_error (null).
nlohmann::json job_list_json(const Job& job, const RunRecord* last);

/// `status [NAME] --json` of one job: name, the schedule fields (when the job is configured), the
/// newest run (full_last, else the summary's), last_success, health, running, progress and
/// last_restore. config_error is the caller's.
nlohmann::json status_json(const Job* job, const std::string& name, const JobSummary* summary,
                           const RunRecord* full_last, const std::optional<RunProgress>& progress);

}  // namespace hozo
