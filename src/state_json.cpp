// The JSON form of the state's records (nlohmann ADL converters declared in hozo/state.hpp): one
// field list per record type, the summary's compact run records, and the fast reader of the summary.
#include <utility>

#include <fmt/format.h>

#include "hozo/state.hpp"
#include "fast_json.hpp"
#include "state_json.hpp"

namespace hozo {

using nlohmann::json;
using namespace state_json;

void to_json(json& j, RunOutcome v) { j = std::string(to_string(v)); }
void from_json(const json& j, RunOutcome& v) {
  // A newer hozo may know more outcomes; such a run has ended somehow, so it is not "running".
  v = parse_run_outcome(j.get<std::string>()).value_or(RunOutcome::failed);
}

void to_json(json& j, ShutdownOutcome v) { j = std::string(to_string(v)); }
void from_json(const json& j, ShutdownOutcome& v) {
  v = parse_shutdown_outcome(j.get<std::string>()).value_or(ShutdownOutcome::not_requested);
}

// The fast reader (fast_json.hpp) of what `status` and `jobs list` read on every call: a field that
// is null keeps its default, as read_field does.
namespace fast_json {
template <typename T>
bool fast_field(od::value v, T& out) {
  bool null = false;
  if (v.is_null().get(null) != simdjson::SUCCESS) return false;
  return null || fast_value(v, out);
}
}  // namespace fast_json
#define HOZO_FAST_FIELD(value, member) fast_field(value, member)

// One field list per type: to_json starts from the unknown keys kept at read time and writes every
// field (nlohmann's NLOHMANN_JSON_TO); from_json defaults missing/null keys and keeps unknown ones.
#define HOZO_JSON_GET(field) read_field(nlohmann_json_j, #field, nlohmann_json_t.field);
#define HOZO_JSON_KEY(field) #field,
#define HOZO_STATE_JSON(Type, ...)                                                                   \
  void to_json(json& nlohmann_json_j, const Type& nlohmann_json_t) {                               \
    nlohmann_json_j = start_object(nlohmann_json_t.extra);                                         \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(NLOHMANN_JSON_TO, __VA_ARGS__))                      \
  }                                                                                                \
  void from_json(const json& nlohmann_json_j, Type& nlohmann_json_t) {                             \
    require_object(nlohmann_json_j, #Type);                                                        \
    nlohmann_json_t = Type{};                                                                      \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(HOZO_JSON_GET, __VA_ARGS__))                         \
    nlohmann_json_t.extra =                                                                        \
        unknown_keys(nlohmann_json_j, {NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(HOZO_JSON_KEY, __VA_ARGS__))}); \
  }                                                                                                \
  HOZO_FAST_READ(Type, __VA_ARGS__)

HOZO_STATE_JSON(StageTiming, name, started, seconds, ok, message)
HOZO_STATE_JSON(DatasetVerification, source, target, newest_source_snapshot, newest_target_snapshot, guid_match,
                remote_snapshot_count, source_guid, held_snapshot, release_pending)
HOZO_STATE_JSON(DatasetTransfer, source, target, bytes, estimated_bytes, seconds, bytes_per_second, bytes_from, sends)
HOZO_STATE_JSON(NotificationResult, channel, ok, message)
HOZO_STATE_JSON(RunRecord, run_id, job, started, finished, duration_seconds, outcome, exit_code, failed_stage, error,
                stages, datasets, transfers, bytes_sent, attempts, woke_host, was_up_before, shutdown, notifications,
                pid, pid_start_ticks, hostname, log_file, child_pgids, error_cause, reseed)
HOZO_STATE_JSON(RestoreRecord, restore_id, job, started, finished, duration_seconds, outcome, exit_code, failed_stage,
                error, source, backup, target, snapshot, restored_snapshot, in_place, woke_host, was_up_before,
                shutdown, pid, pid_start_ticks, hostname, error_cause)
HOZO_STATE_JSON(RunProgress, run_id, job, stage, dataset, bytes_done, bytes_total, bytes_per_second, eta_seconds,
                updated, final)

void to_json(json& j, const ShutdownResult& v) { j = json{{"outcome", v.outcome}, {"message", v.message}}; }

namespace fast_json {
template <>
bool fast_read(od::value v, ShutdownResult& out) {
  out = ShutdownResult{};
  return fast_object(v, [&](std::string_view key, od::value value, std::uint64_t& seen) {
    const std::uint64_t bit = key == "outcome" ? 1 : key == "message" ? 2 : 0;
    if (bit == 0 || (seen & bit) != 0) return false;
    seen |= bit;
    return bit == 1 ? fast_field(value, out.outcome) : fast_field(value, out.message);
  });
}
}  // namespace fast_json

void from_json(const json& j, ShutdownResult& v) {
  require_object(j, "shutdown");
  v = ShutdownResult{};
  read_field(j, "outcome", v.outcome);
  read_field(j, "message", v.message);
}

/// Removes the keys of `j` whose value is the one a default-constructed record has (`defaults`):
/// readers default missing keys, so the record reads back the same.
void drop_defaults(json& j, const json& defaults) {
  for (auto it = j.begin(); it != j.end();) {
    const auto d = defaults.find(it.key());
    if (d != defaults.end() && *d == *it) {
      it = j.erase(it);
    } else {
      ++it;
    }
  }
}

/// A run as the summary stores it: keys with default values left out (summaries are read by every
/// `hozo status`; this halves their size), also in its datasets and transfers.
json summary_run_json(const RunRecord& r) {
  static const json run_defaults = RunRecord{};
  static const json dataset_defaults = DatasetVerification{};
  static const json transfer_defaults = DatasetTransfer{};
  json j = r;
  for (const auto& [key, defaults] : {std::pair{"datasets", &dataset_defaults}, std::pair{"transfers", &transfer_defaults}}) {
    if (const auto it = j.find(key); it != j.end() && it->is_array()) {
      for (auto& element : *it) drop_defaults(element, *defaults);
    }
  }
  drop_defaults(j, run_defaults);
  return j;
}

void to_json(json& j, const JobSummary& v) {
  j = start_object(v.extra);
  if (v.last) j["last"] = summary_run_json(*v.last);
  // Mostly the last run was the last success: then it is stored once.
  if (v.last_success && v.last && *v.last_success == *v.last) {
    j["last_success_is_last"] = true;
  } else if (v.last_success) {
    j["last_success"] = summary_run_json(*v.last_success);
  }
  if (!v.running.empty()) {
    json running = json::array();
    for (const auto& r : v.running) running.push_back(summary_run_json(r));
    j["running"] = std::move(running);
  }
  if (v.last_restore) j["last_restore"] = *v.last_restore;
}

void from_json(const json& j, JobSummary& v) {
  require_object(j, "a job summary");
  v = JobSummary{};
  read_field(j, "last", v.last);
  read_field(j, "last_success", v.last_success);
  if (const auto it = j.find("running"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) shape_error(*it, "running must be an array");
    it->get_to(v.running);
  }
  read_field(j, "last_restore", v.last_restore);
  if (const auto it = j.find("last_success_is_last"); it != j.end() && it->is_boolean() && it->get<bool>() && v.last) {
    v.last_success = v.last;
  }
  v.extra = unknown_keys(j, {"last", "last_success", "last_success_is_last", "running", "last_restore"});
}

namespace {

using namespace fast_json;

/// As from_json(JobSummary).
bool fast_summary(od::value v, JobSummary& out) {
  out = JobSummary{};
  bool success_is_last = false;
  const bool read = fast_object(v, [&](std::string_view key, od::value value, std::uint64_t& seen) {
    unsigned bit = 0;
    for (const std::string_view known : {"last", "last_success", "running", "last_restore", "last_success_is_last"}) {
      if (key == known) break;
      ++bit;
    }
    if (bit == 5 || (seen & (std::uint64_t{1} << bit)) != 0) return false;
    seen |= std::uint64_t{1} << bit;
    switch (bit) {
      case 0: return fast_field(value, out.last);
      case 1: return fast_field(value, out.last_success);
      case 2: return fast_field(value, out.running);
      case 3: return fast_field(value, out.last_restore);
      default: return fast_value(value, success_is_last);  // anything but a boolean: nlohmann's reader ignores it
    }
  });
  if (!read) return false;
  if (success_is_last && out.last) out.last_success = out.last;
  return true;
}

}  // namespace

std::optional<FastSummaries> state_json::read_summaries_fast(const std::string& text) {
  const simdjson::padded_string padded(text);
  od::parser parser;
  od::document doc;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) return std::nullopt;
  od::value root;
  if (doc.get_value().get(root) != simdjson::SUCCESS) return std::nullopt;
  FastSummaries out;
  out.version = 1;  // as parse_document: a file without one is version 1
  std::string skipped;
  const bool read = fast_object(root, [&](std::string_view key, od::value value, std::uint64_t& seen) {
    unsigned bit = 0;
    for (const std::string_view known : {"format", "version", "updated", "jobs"}) {
      if (key == known) break;
      ++bit;
    }
    if (bit == 4 || (seen & (std::uint64_t{1} << bit)) != 0) return false;  // unknown keys are kept by the full reader
    seen |= std::uint64_t{1} << bit;
    if (bit == 0 || bit == 2) return fast_value(value, skipped);  // read so they are checked; not used
    if (bit == 1) return fast_field(value, out.version);
    bool null = false;
    if (value.is_null().get(null) != simdjson::SUCCESS) return false;
    if (null) return true;
    return fast_object(value, [&](std::string_view name, od::value job, std::uint64_t&) {
      JobSummary summary;
      if (!fast_summary(job, summary)) return false;  // also a version-1 job ("runs"): the full reader summarizes it
      out.jobs.insert_or_assign(std::string(name), std::move(summary));  // the last of duplicate names, as nlohmann
      return true;
    });
  });
  if (!read || !at_end(doc) || out.version < 2) return std::nullopt;
  return out;
}

const RunRecord* JobSummary::newest() const noexcept {
  if (!running.empty()) return &running.back();
  return last ? &*last : nullptr;
}

void to_json(json& j, const JobState& v) {
  j = start_object(v.extra);
  j["runs"] = v.runs;
  if (const auto* last = v.last()) j["last"] = *last;
  // Only when there is one, so a job that was never restored looks exactly as before.
  if (!v.restores.empty()) j["restores"] = v.restores;
}

void from_json(const json& j, JobState& v) {
  require_object(j, "a job");
  v = JobState{};
  if (const auto it = j.find("runs"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) shape_error(*it, "runs must be an array");
    it->get_to(v.runs);
  }
  if (const auto it = j.find("restores"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) shape_error(*it, "restores must be an array");
    it->get_to(v.restores);
  }
  v.extra = unknown_keys(j, {"runs", "last", "restores"});
}

}  // namespace hozo
