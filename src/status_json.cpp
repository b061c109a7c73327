#include "hozo/status_json.hpp"

#include <chrono>

#include "hozo/schedule.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

std::string next_run_text(const Job& job) {
  if (job.schedule.empty()) return "manual";
  auto schedule = parse_schedule(job.schedule);
  if (!schedule) return "invalid";
  auto next = schedule->next_run(std::chrono::system_clock::now());
  if (!next) return "-";
  return iso8601_utc(*next);
}

nlohmann::json job_list_json(const Job& job, const JobState* state) {
  nlohmann::json j;
  j["name"] = job.name;
  j["description"] = job.description;
  j["target_host"] = job.target_host;
  auto ds = nlohmann::json::array();
  for (const auto& d : job.datasets) ds.push_back({{"source", d.source}, {"target", d.target}, {"recursive", d.recursive}});
  j["datasets"] = ds;
  j["schedule"] = job.schedule;
  j["next_run"] = next_run_text(job);
  const RunRecord* last = state == nullptr ? nullptr : state->last();
  j["last"] = last != nullptr ? nlohmann::json(*last) : nlohmann::json(nullptr);
  return j;
}

nlohmann::json status_json(const Job* job, const std::string& name, const JobState* state) {
  nlohmann::json j;
  j["name"] = name;
  if (job != nullptr) {
    j["schedule"] = job->schedule;
    j["next_run"] = next_run_text(*job);
  }
  const RunRecord* last = state != nullptr ? state->last() : nullptr;
  j["last"] = last != nullptr ? nlohmann::json(*last) : nlohmann::json(nullptr);
  const bool restored = state != nullptr && !state->restores.empty();
  j["last_restore"] = restored ? nlohmann::json(state->restores.back()) : nlohmann::json(nullptr);
  return j;
}

}  // namespace hozo
