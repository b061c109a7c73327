#pragma once
// The state: a small summary file plus one file per run, a bounded history per job, run logs.
//
// Layout (all 0600 in a 0700 directory):
//   state.json            { "format": "hozo-state", "version": 2, "updated": "<UTC>",
//                           "jobs": { "<job>": { "last": {<newest finished run>},
//                                                "last_success": {<newest successful run>},
//                                                "running": [ {<run still going>}, ... ],
//                                                "last_restore": {<newest restore>} } } }
//                         The summary's run records are slim (no stages, no notifications): what
//                         `hozo status`, `jobs list` and monitoring read, independent of history size.
//   runs/<job>/<run id>.json        the full record of one run (what `hozo history` reads)
//   runs/<job>/<run id>.progress    a running job's live progress (RunProgress), at most every 2 s
//   runs/<job>/restores.json        { "restores": [ {<restore>}, ... oldest first ] }
//   runs/<job>/.lock                flock of that job's files
//   logs/<job>/<run id>.log         the run's full log
// A stage update rewrites only that run's file; begin/finish also rewrite the summary. History is
// bounded by `history` (oldest finished run files are removed when a run finishes).
// Version 1 files (every run of every job inside state.json: "jobs": {"<job>": {"runs": [...]}})
// still read, and are migrated on the first write: every run gets its file (never overwriting one
// that exists), then the summary replaces the old document. Unknown keys are kept and written back;
// missing keys take their defaults.
//
// Safety: every write goes through write_file_atomic (temp, fsync, rename, fsync dir). state.json is
// guarded by flock on state.json.lock, a job's files by runs/<job>/.lock (taken first when both are
// needed); readers take LOCK_SH. A state.json that does not parse (or has the wrong shape) is moved
// to state.json.corrupt-<UTC> with a warning and a fresh state is started; a run file that does not
// parse is skipped with a warning.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// How a run ended (or that it is still going).
enum class RunOutcome { running, success, failed, interrupted };

/// What happened to the box at the end of a run.
enum class ShutdownOutcome { not_requested, skipped_not_woken, skipped_in_use, done, failed };

/// "running", "success", "failed", "interrupted".
std::string_view to_string(RunOutcome outcome) noexcept;
/// "not_requested", "skipped_not_woken", "skipped_in_use", "done", "failed".
std::string_view to_string(ShutdownOutcome outcome) noexcept;
/// Inverse of to_string; nullopt for unknown text.
std::optional<RunOutcome> parse_run_outcome(std::string_view text) noexcept;
/// Inverse of to_string; nullopt for unknown text.
std::optional<ShutdownOutcome> parse_shutdown_outcome(std::string_view text) noexcept;

/// One pipeline stage (wake, wait_ssh, sync, verify, shutdown, notify, ...), in execution order.
struct StageTiming {
  std::string name;
  std::string started;   ///< UTC ISO-8601
  double seconds = 0.0;  ///< how long it took
  bool ok = false;
  std::string message;
  nlohmann::json extra = nlohmann::json::object();  ///< unknown keys from the file, written back
  bool operator==(const StageTiming&) const = default;
};

/// Verification result for one dataset pair.
struct DatasetVerification {
  std::string source;                  ///< local dataset
  std::string target;                  ///< remote dataset
  std::string newest_source_snapshot;  ///< e.g. "pool/data@autosnap_2026-11-24_08:00:00_daily"
  std::string newest_target_snapshot;
  bool guid_match = false;              ///< the newest source snapshot exists on the target with the same GUID
  std::int64_t remote_snapshot_count = 0;
  nlohmann::json extra = nlohmann::json::object();
  // (after `extra`, so that brace-initialized records of older code keep compiling)
  std::uint64_t source_guid = 0;  ///< GUID of newest_source_snapshot (the chain's anchor once verified)
  std::string held_snapshot;      ///< snapshot (after '@') held with `zfs hold hozo:<job>` on both sides; empty = none
  std::string release_pending;    ///< snapshot (after '@') the run before held, still held; the next run releases it
  bool operator==(const DatasetVerification&) const = default;
};

/// What one dataset pair's syncoid transfer moved (the figures users ask for first).
struct DatasetTransfer {
  std::string source;                   ///< local dataset
  std::string target;                   ///< remote dataset
  std::int64_t bytes = 0;               ///< bytes sent (pv's count, else syncoid's estimate; 0 = nothing to send)
  std::int64_t estimated_bytes = -1;    ///< syncoid's size estimate; -1 = it printed none
  double seconds = 0.0;                 ///< how long syncoid ran for this pair (all attempts)
  double bytes_per_second = 0.0;        ///< average rate: bytes / seconds
  nlohmann::json extra = nlohmann::json::object();
  std::string bytes_from = "none";      ///< where `bytes` comes from: "pv", "estimate" or "none"
  int sends = 0;                        ///< zfs sends syncoid announced (one per dataset of a recursive pair)
  bool operator==(const DatasetTransfer&) const = default;
};

/// How the shutdown step went.
struct ShutdownResult {
  ShutdownOutcome outcome = ShutdownOutcome::not_requested;
  std::string message;
  bool operator==(const ShutdownResult&) const = default;
};

/// One notification channel's delivery.
struct NotificationResult {
  std::string channel;  ///< "ntfy", "pushover", "smtp", "healthchecks", "webhook"
  bool ok = false;
  std::string message;
  nlohmann::json extra = nlohmann::json::object();
  bool operator==(const NotificationResult&) const = default;
};

/// Everything recorded about one run of one job.
struct RunRecord {
  std::string run_id;     ///< unique and sortable: "20261124T080000Z-4242" (a "-N" suffix if needed)
  std::string job;        ///< job name
  std::string started;    ///< UTC ISO-8601
  std::string finished;   ///< UTC ISO-8601; empty while running
  double duration_seconds = 0.0;
  RunOutcome outcome = RunOutcome::running;
  int exit_code = 0;
  std::string failed_stage;  ///< empty when none
  std::string error;         ///< error message; empty on success
  std::vector<StageTiming> stages;
  std::vector<DatasetVerification> datasets;
  std::vector<DatasetTransfer> transfers;  ///< bytes, duration and rate per dataset pair
  std::int64_t bytes_sent = 0;             ///< sum of transfers[].bytes
  int attempts = 0;            ///< syncoid attempts
  bool woke_host = false;      ///< hozo sent the wake and the box was not up before
  bool was_up_before = false;  ///< the box answered before any wake was sent
  ShutdownResult shutdown;
  std::vector<NotificationResult> notifications;
  std::int64_t pid = 0;                ///< the hozo process running the job
  std::uint64_t pid_start_ticks = 0;   ///< its start time (/proc/<pid>/stat field 22); 0 = unknown
  std::string hostname;                ///< where that process runs
  std::string log_file;                ///< full log of the run
  std::vector<std::int64_t> child_pgids;  ///< process groups of the children this run started (while running)
  std::string error_cause;             ///< cause class of a sync failure ("no_common_snapshot", ...); empty = none
  /// `jobs reseed`: "none" (every chain was intact), "sent" (full sends into new datasets, not
  /// swapped in), "replaced" (the new datasets are the targets now); empty = a normal run.
  std::string reseed;
  nlohmann::json extra = nlohmann::json::object();  ///< unknown keys from the file, written back
  bool operator==(const RunRecord&) const = default;
};

/// One `hozo restore` of a job (kept apart from the backup runs: a restore is not a backup result).
struct RestoreRecord {
  std::string restore_id;  ///< unique and sortable, like a run id
  std::string job;
  std::string started;   ///< UTC ISO-8601
  std::string finished;  ///< UTC ISO-8601; empty while running
  double duration_seconds = 0.0;
  RunOutcome outcome = RunOutcome::running;
  int exit_code = 0;
  std::string failed_stage;  ///< empty when none
  std::string error;
  std::string source;           ///< the job's local source dataset
  std::string backup;           ///< the dataset on the box restored from
  std::string target;           ///< the local dataset written
  std::string snapshot;         ///< the requested snapshot (part after '@'); empty = newest
  std::string restored_snapshot;  ///< the snapshot the restored copy ends on (verified by GUID)
  bool in_place = false;        ///< target is the live source (--in-place)
  bool woke_host = false;
  bool was_up_before = false;
  ShutdownResult shutdown;
  std::int64_t pid = 0;
  std::uint64_t pid_start_ticks = 0;
  std::string hostname;
  std::string error_cause;  ///< cause class of a failed syncoid pull ("out_of_space", ...); empty = none
  nlohmann::json extra = nlohmann::json::object();
  bool operator==(const RestoreRecord&) const = default;
};

/// One job's entry: its runs, oldest first, at most the history limit.
struct JobState {
  std::vector<RunRecord> runs;
  std::vector<RestoreRecord> restores;  ///< `hozo restore` runs, oldest first, at most the history limit
  nlohmann::json extra = nlohmann::json::object();
  /// The newest run (possibly still running); nullptr when there is none.
  [[nodiscard]] const RunRecord* last() const noexcept;
  /// The newest run that is no longer running; nullptr when there is none.
  [[nodiscard]] const RunRecord* last_completed() const noexcept;
  bool operator==(const JobState&) const = default;
};

/// One job's entry in state.json: what status and monitoring need, without the history.
struct JobSummary {
  std::optional<RunRecord> last;            ///< newest finished run (slim: no stages, no notifications)
  std::optional<RunRecord> last_success;    ///< newest successful run (slim)
  std::vector<RunRecord> running;           ///< runs still going (slim), oldest first, with pid and host
  std::optional<RestoreRecord> last_restore;  ///< newest restore
  nlohmann::json extra = nlohmann::json::object();
  /// The newest run: the newest running one, else `last`; nullptr when there is none.
  [[nodiscard]] const RunRecord* newest() const noexcept;
  bool operator==(const JobSummary&) const = default;
};

/// Live progress of a running job (runs/<job>/<run id>.progress), written at most every 2 s.
struct RunProgress {
  std::string run_id;
  std::string job;
  std::string stage;            ///< current stage
  std::string dataset;          ///< dataset being sent (sync stage)
  std::int64_t bytes_done = 0;  ///< of the current dataset
  std::int64_t bytes_total = -1;  ///< syncoid's estimate; -1 = unknown
  double bytes_per_second = 0.0;
  double eta_seconds = -1.0;    ///< -1 = unknown
  std::string updated;          ///< UTC ISO-8601
  bool final = false;           ///< the run has ended (the file is normally removed then)
  nlohmann::json extra = nlohmann::json::object();
  bool operator==(const RunProgress&) const = default;
};

/// nlohmann ADL converters. from_json defaults missing keys, keeps unknown ones in `extra`, maps
/// unknown enum text to failed / not_requested, and throws nlohmann::json::type_error on wrong types.
void to_json(nlohmann::json& j, const StageTiming& v);
void from_json(const nlohmann::json& j, StageTiming& v);
void to_json(nlohmann::json& j, const DatasetVerification& v);
void from_json(const nlohmann::json& j, DatasetVerification& v);
void to_json(nlohmann::json& j, const ShutdownResult& v);
void from_json(const nlohmann::json& j, ShutdownResult& v);
void to_json(nlohmann::json& j, const NotificationResult& v);
void from_json(const nlohmann::json& j, NotificationResult& v);
void to_json(nlohmann::json& j, const RunRecord& v);
void from_json(const nlohmann::json& j, RunRecord& v);
void to_json(nlohmann::json& j, const RestoreRecord& v);
void from_json(const nlohmann::json& j, RestoreRecord& v);
void to_json(nlohmann::json& j, const DatasetTransfer& v);
void from_json(const nlohmann::json& j, DatasetTransfer& v);
void to_json(nlohmann::json& j, const JobSummary& v);
void from_json(const nlohmann::json& j, JobSummary& v);
void to_json(nlohmann::json& j, const RunProgress& v);
void from_json(const nlohmann::json& j, RunProgress& v);
void to_json(nlohmann::json& j, const JobState& v);
void from_json(const nlohmann::json& j, JobState& v);
void to_json(nlohmann::json& j, RunOutcome v);
void from_json(const nlohmann::json& j, RunOutcome& v);
void to_json(nlohmann::json& j, ShutdownOutcome v);
void from_json(const nlohmann::json& j, ShutdownOutcome& v);

/// Default history length per job (settings.history).
inline constexpr std::size_t kDefaultHistoryLimit = 50;

/// The state file used without --state: $STATE_DIRECTORY/state.json (first of a colon-separated list),
/// else /var/lib/hozo/state.json as root, else $XDG_STATE_HOME/hozo/state.json
/// (default ~/.local/state/hozo/state.json).
std::filesystem::path default_state_path();

/// "20261124T080000Z-4242": UTC second of `t`, then the pid. Sorts by time.
std::string make_run_id(SystemTime t, std::int64_t pid);

/// Orders run ids by time, then numerically by pid and suffix (plain text order otherwise).
bool run_id_less(std::string_view a, std::string_view b);

/// The start time of process `pid` in clock ticks since boot (/proc/<pid>/stat field 22);
/// nullopt when the process does not exist or /proc is unavailable.
std::optional<std::uint64_t> process_start_ticks(std::int64_t pid);

/// True when `run` says running but its process is gone: on this host, kill(pid, 0) fails with
/// ESRCH, the process is a zombie, or the pid now belongs to a process with another start time.
/// Runs recorded on another host are never judged (false).
bool run_is_orphaned(const RunRecord& run);

/// If run_is_orphaned(run): sets outcome interrupted, exit code 130 and an explanatory error; returns
/// true when it changed something.
bool resolve_orphaned(RunRecord& run);

/// Tuning for StateStore; the defaults suit production.
struct StateOptions {
  Millis lock_timeout{30000};    ///< how long to wait for state.json.lock before tempfail
  const Clock* clock = nullptr;  ///< time source for run ids and timestamps; nullptr = system clock
};

/// Access to the state file. Stateless between calls: every call locks, reads the file and (for
/// mutations) writes it back, so many hozo processes can share one file.
class StateStore {
 public:
  /// Prepares a store for `path` (its directory is created 0700 if missing; the file is not read).
  /// `history_limit` runs are kept per job (at least 1).
  static Result<StateStore> open(std::filesystem::path path, std::size_t history_limit = kDefaultHistoryLimit,
                                 StateOptions options = {});

  /// Registers a new run of `job` as running (run id, start time, pid + start ticks, hostname,
  /// log file path) and returns it. Also resolves orphaned runs of that job.
  Result<RunRecord> begin_run(std::string_view job);
  /// Stores `run` (matched by job + run id; inserted if missing), e.g. after a stage completes.
  Result<void> update_run(const RunRecord& run);
  /// Stores a finished `run`: fills `finished` (now) and `duration_seconds` when unset.
  /// The outcome must not be running (Error{software}). Returns the record as stored.
  Result<RunRecord> finish_run(const RunRecord& run);

  /// Registers a restore of `job` as running (id, start time, pid, hostname) and returns it;
  /// restores of that job whose process is gone are marked interrupted.
  Result<RestoreRecord> begin_restore(std::string_view job);
  /// Stores `restore` (matched by job + restore id; inserted if missing); a finished one gets
  /// `finished` and `duration_seconds` filled when unset. Returns the record as stored.
  Result<RestoreRecord> update_restore(const RestoreRecord& restore);

  /// One job's state with orphaned runs shown as interrupted (not persisted); empty when unknown.
  Result<JobState> job(std::string_view name) const;
  /// Every job's full history (reads every run file: use summaries() where it suffices), orphaned
  /// runs shown as interrupted (not persisted). Includes jobs no longer in the config.
  Result<std::map<std::string, JobState>> all() const;
  /// Every job's summary from state.json alone (orphaned running entries shown as interrupted).
  Result<std::map<std::string, JobSummary>> summaries() const;
  /// The full record of run `run_id` of any job; nullopt when no job has it.
  Result<std::optional<RunRecord>> find_run(std::string_view run_id) const;
  /// The full record of run `run_id` of `job` (its run file only; orphaned shown as interrupted);
  /// nullopt when there is none.
  [[nodiscard]] std::optional<RunRecord> job_run(std::string_view job, std::string_view run_id) const;

  /// Writes `progress` to its run's progress file (atomically, not fsynced: a live view; no summary lock).
  Result<void> write_progress(const RunProgress& progress) const;
  /// The progress of run `run_id` of `job`; nullopt when there is no progress file.
  [[nodiscard]] std::optional<RunProgress> read_progress(std::string_view job, std::string_view run_id) const;
  /// Removes the progress file of that run (when it ends).
  void remove_progress(std::string_view job, std::string_view run_id) const;
  /// Persists interrupted for every orphaned running entry (of every job); returns those runs as
  /// stored (their child_pgids still set: the caller kills their leftovers).
  Result<std::vector<RunRecord>> reap_orphaned();

  /// Where the log of `run` goes: <state dir>/logs/<job>/<run id>.log (names sanitized).
  [[nodiscard]] std::filesystem::path log_path_for(const RunRecord& run) const;
  /// Deletes all but the newest `keep` *.log files of `job`; returns how many were deleted.
  Result<std::size_t> prune_logs(std::string_view job, std::size_t keep) const;

  /// The state file.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  /// The directory holding the state file, logs/ and hosts/.
  [[nodiscard]] std::filesystem::path dir() const { return path_.parent_path(); }
  /// <state dir>/logs.
  [[nodiscard]] std::filesystem::path logs_dir() const { return dir() / "logs"; }
  /// <state dir>/runs/<job> (name sanitized): the job's run files.
  [[nodiscard]] std::filesystem::path runs_dir(std::string_view job) const;
  /// The history limit in effect.
  [[nodiscard]] std::size_t history_limit() const noexcept { return history_limit_; }
  /// Where the most recent call moved a corrupt state file, if it had to.
  [[nodiscard]] const std::optional<std::filesystem::path>& last_quarantined() const noexcept {
    return quarantined_;
  }

  struct Document;  ///< parsed file (defined in state.cpp)

 private:
  StateStore(std::filesystem::path path, std::size_t history_limit, StateOptions options);
  template <typename Fn>
  Result<void> mutate(Fn&& change);
  Result<void> store_run_file(const RunRecord& run) const;
  Result<RestoreRecord> write_restore(const RestoreRecord& restore, bool is_new);
  Result<void> prune_run_files(std::string_view job) const;
  Result<JobState> read_job(std::string_view name, const Document* doc) const;
  Result<Document> read_shared() const;
  Result<Document> load_exclusive() const;
  [[nodiscard]] SystemTime now() const;

  std::filesystem::path path_;
  std::size_t history_limit_ = kDefaultHistoryLimit;
  StateOptions options_;
  mutable std::optional<std::filesystem::path> quarantined_;
};

}  // namespace hozo
