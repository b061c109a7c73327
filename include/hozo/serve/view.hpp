#pragma once
// JobView: what the dashboard, the metrics and the API say about one job, computed from its
// configuration and its state entry in ONE place: from the job's run history (sparklines, counts)
// and, for health (overdue), the same assess_job() as `hozo status`.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hozo/config.hpp"
#include "hozo/state.hpp"
#include "hozo/util/time.hpp"

namespace hozo::serve {

/// One job as the dashboard shows it.
struct JobView {
  const Job* job = nullptr;             ///< the configuration (never null)
  const JobState* state = nullptr;      ///< null when the job never ran
  const RunRecord* last = nullptr;      ///< newest run, possibly running
  const RunRecord* last_completed = nullptr;
  const RunRecord* last_success = nullptr;
  bool running = false;                 ///< the newest run is running and its process is alive
  bool overdue = false;                 ///< no success within overdue_after (as `hozo status`)
  std::optional<double> last_success_unix;  ///< finish time of the last success (seconds since the epoch)
  std::optional<double> last_success_age;   ///< seconds since then
  std::optional<double> duration;       ///< of the last completed run
  std::optional<std::int64_t> bytes;    ///< bytes sent by the last completed run (when recorded)
  std::string next_run;                 ///< next_run_text(job)
  std::string power;                    ///< the box as the last run left it: "on", "off", "left on" or "" (unknown)
  std::vector<double> durations;        ///< completed runs' durations, oldest first (at most 30)
  std::vector<double> byte_series;      ///< completed runs' bytes where recorded, oldest first (at most 30)
  std::map<std::string, std::size_t> runs_by_outcome;  ///< over the retained history
};

/// Bytes a run transferred (bytes_sent; else an older record's "bytes" extra or the sum of its
/// datasets' "bytes"); nullopt when not recorded.
std::optional<std::int64_t> run_bytes(const RunRecord& run);

/// Builds the view of `job` at time `now` (state may be null).
JobView make_job_view(const Job& job, const JobState* state, SystemTime now);

/// Views of every configured job, in config order.
std::vector<JobView> make_job_views(const Config& config, const std::map<std::string, JobState>& states, SystemTime now);

/// The outcome word for a badge: "running", "success", "failed", "interrupted" or "never".
std::string badge_of(const JobView& view);

}  // namespace hozo::serve
