#pragma once
// The JSON documents of `hozo jobs list --json` and `hozo status --json`, shared by the CLI and
// the `hozo serve` API (/api/v1/jobs, /api/v1/status) so both always say the same thing.

#include <string>

#include <nlohmann/json.hpp>

#include "hozo/config.hpp"
#include "hozo/state.hpp"

namespace hozo {

/// The next scheduled run as UTC ISO-8601, "manual", "invalid" or "-" (none found).
std::string next_run_text(const Job& job);

/// One element of `jobs list --json`: name, description, target_host, datasets, schedule,
/// next_run and the newest run ("last", null when never run).
nlohmann::json job_list_json(const Job& job, const JobState* state);

/// `status NAME --json`: name, schedule, next_run (when the job is configured), last run and last restore.
nlohmann::json status_json(const Job* job, const std::string& name, const JobState* state);

}  // namespace hozo
