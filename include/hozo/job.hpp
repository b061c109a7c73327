#pragma once
// The job pipeline: lock → wake → wait → connect → disk → pool → sync → verify → shutdown → notify.
// Every stage is recorded in the state file (RunRecord::stages) and the run's log file.
// External effects go through JobSystems so the bookkeeping can be unit-tested with fakes;
// the real implementation (make_real_systems) is proven in the lab.

#include <atomic>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/agent.hpp"
#include "hozo/backup_disk.hpp"
#include "hozo/command.hpp"
#include "hozo/config.hpp"
#include "hozo/net.hpp"
#include "hozo/process.hpp"
#include "hozo/reseed.hpp"
#include "hozo/state.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// `--dry-run`: print the plan and the exact commands, touch nothing.
enum class DryRun { yes, no };

/// The pipeline's side effects, one method per external system.
class JobSystems {
 public:
  virtual ~JobSystems() = default;
  /// One SSH-banner probe of the job's host (before any wake: was the box already up?).
  virtual ProbeResult probe(const Job& job) = 0;
  /// Sends the wake (magic packets directly, or the relay command over SSH); returns packets sent.
  virtual Result<int> wake(const Job& job) = 0;
  /// Waits until the box answers with an SSH banner; calls `resend` periodically.
  virtual Result<WaitOutcome> wait_up(const Job& job, const std::function<void()>& resend,
                                      const std::atomic<bool>* cancel) = 0;
  /// Connects and logs in over SSH (host-key policy applied); the runner executes remote commands.
  virtual Result<std::unique_ptr<CommandRunner>> connect(const Job& job) = 0;
  /// Runs commands on this machine (zfs listing for verify).
  virtual CommandRunner& local() = 0;
  /// Runs syncoid (argv vector, own process group); output arrives line by line.
  virtual Result<ProcessResult> run_syncoid(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                                            const LineCallback& on_stdout, const LineCallback& on_stderr,
                                            const std::atomic<bool>* cancel) = 0;
  /// Powers the box off and waits until the SSH port stops answering: through backupd's
  /// POST /shutdown when job.agent is set (it exports the pools first; an unreachable agent or a
  /// rejected token falls back to SSH, a running zfs receive (409) does not), else by sending
  /// job.shutdown_command over SSH (a dropped connection counts as sent). Error when nothing
  /// could be sent or the box stayed up.
  virtual Result<void> power_off(const Job& job) = 0;
  /// How the last successful power_off did it ("backupd POST /shutdown (pools exported)", ...);
  /// empty when unknown.
  [[nodiscard]] virtual std::string last_power_off_detail() const { return {}; }
  /// The backup disk of job.backup_device: through backupd when job.agent is set and can
  /// address the device (falling back to SSH when backupd fails), else over the SSH session `remote`.
  virtual std::unique_ptr<DiskControl> disk_control(const Job& job, CommandRunner& remote);
  /// GET /status from backupd; nullopt when job.agent is not set.
  virtual Result<std::optional<AgentStatus>> agent_status(const Job& job);
  /// Sends the run's notifications (channels selected by notify_on; see hozo/notify.hpp). Never
  /// fails the run: every channel's delivery comes back as a result.
  virtual std::vector<NotificationResult> notify(const Job& job, const RunRecord& record) = 0;
  /// The healthchecks /start ping at run start; empty when none is configured.
  virtual std::vector<NotificationResult> notify_start(const Job& job) = 0;
  /// Time source (fake in tests).
  virtual Clock& clock() = 0;
};

/// The real systems: WOL/relay, probe, libssh, local processes.
std::unique_ptr<JobSystems> make_real_systems(const std::atomic<bool>* cancel);

/// Receives progress for display (TTY lines, plain logs, nothing for --json).
class RunReporter {
 public:
  virtual ~RunReporter() = default;
  /// A stage begins.
  virtual void stage_started(std::string_view /*job*/, std::string_view /*stage*/) {}
  /// A stage ended.
  virtual void stage_finished(std::string_view /*job*/, const StageTiming& /*stage*/) {}
  /// A line of syncoid output (stderr carries pv progress, '\r'-separated updates arrive as lines).
  virtual void transfer_line(std::string_view /*job*/, std::string_view /*line*/) {}
  /// The run ended.
  virtual void run_finished(const RunRecord& /*record*/) {}
};

/// What syncoid may do to a target that changed since its last snapshot.
enum class TargetChanges {
  as_configured,  ///< the job's syncoid arguments decide (syncoid rolls back unless --no-rollback is given)
  discard,        ///< `jobs run --force-rollback`: --no-rollback is dropped for this run
};

/// How to run.
struct RunOptions {
  TargetChanges target_changes = TargetChanges::as_configured;  ///< --force-rollback
  DryRun dry_run = DryRun::no;
  const std::atomic<bool>* cancel = nullptr;  ///< SIGINT/SIGTERM flag
  RunReporter* reporter = nullptr;            ///< nullptr = log only
  std::size_t log_keep = 20;                  ///< run logs kept per job
  Millis poweroff_confirm_timeout{60000};     ///< how long the SSH port may keep answering after shutdown
  /// `jobs reseed`: instead of the incremental sync, the pairs of the plan whose target shares no
  /// snapshot with the source (or named with --dataset) are sent in full into their new datasets,
  /// verified there and, with --replace, renamed into place (stages "reseed" and "replace").
  const ReseedPlan* reseed = nullptr;
};

/// The stage names, in order, as recorded in the state file.
inline constexpr const char* kStageNames[] = {"preflight", "lock",   "wake",   "wait",    "connect",  "disk",
                                              "pool",      "reseed", "sync",   "verify",  "replace",  "shutdown",
                                              "notify"};

/// Runs one job end to end and records it. The returned record is also in the state file;
/// its exit_code is the process exit code for this job (0, 1, 69, 75, 130).
/// An Error is returned only when the run could not even be recorded (state file unusable).
Result<RunRecord> run_job(const Job& job, StateStore& state, JobSystems& systems, const RunOptions& options);

/// The --dry-run plan: stages and exact commands, one per line. Touches nothing.
Result<std::string> describe_plan(const Job& job);

/// The one-line summary printed at the end of a run.
std::string summarize(const RunRecord& record);

}  // namespace hozo
