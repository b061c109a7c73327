#pragma once
// After a hard kill (SIGKILL, the OOM killer, power loss of the main machine) of a run: kill what
// the dead run left behind, mark it interrupted, and power off the box it woke. Used by
// `hozo recover NAME` (systemd's ExecStopPost= of hozo@.service runs it even after SIGKILL) and,
// for the leftovers, at the start of every run and restore.

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/config.hpp"
#include "hozo/job.hpp"
#include "hozo/lock.hpp"
#include "hozo/state.hpp"
#include "hozo/util/result.hpp"

namespace hozo {

/// SIGKILLs every process on this machine that a dead run left behind: tagged with
/// HOZO_RUN_ID=<run id> in its environment (SpawnWatch), or in one of run.child_pgids and started
/// after the run. Waits (up to ~2 s) until they are gone. Returns how many were killed.
/// Never touches hozo itself or a run recorded on another host.
std::size_t kill_run_leftovers(const RunRecord& run);

/// Which interrupted runs reap_dead_runs looks at.
enum class ReapScope {
  latest,  ///< the job's newest run (the summary's last): where a dead run ends up; no history read
  history  ///< every run file of the job (`hozo recover`)
};

/// For `job`: persists interrupted for its runs whose process is gone, kills the leftovers of
/// the interrupted runs in `scope` that still list child_pgids, and clears that list. Returns one
/// line per run it cleaned up ("run X: 3 leftover process(es) killed").
Result<std::vector<std::string>> reap_dead_runs(StateStore& state, std::string_view job,
                                                ReapScope scope = ReapScope::history);

/// True when the woken marker belongs to a run or restore (of any job) that ended without
/// finishing on its own: interrupted, or running with its process gone. Such a box was woken by
/// hozo and never powered off: it is still hozo's to power off.
bool marker_of_dead_run(const WokenMarker& marker, const StateStore& state);

/// What `hozo recover` did.
struct RecoverReport {
  std::vector<std::string> cleaned;  ///< reap_dead_runs lines
  ShutdownResult shutdown;           ///< the box: powered off, left alone (and why)
  int exit_code = 0;                 ///< 0, or 1 when the box should be powered off and could not be
};

/// `hozo recover NAME`: reap_dead_runs, then — when the host's woken marker belongs to a dead run,
/// job.shutdown_after is on and no other hozo uses the host — wait for the box (it may still be
/// booting from the dead run's wake, up to job.ssh_timeout, when the dead run never reached it)
/// and power it off. A box without hozo's marker is never touched. Cheap when nothing is to do.
Result<RecoverReport> recover_job(const Job& job, StateStore& state, JobSystems& systems,
                                  const std::atomic<bool>* cancel);

}  // namespace hozo
