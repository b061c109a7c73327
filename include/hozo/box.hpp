#pragma once
// Using the backup box: the steps that `jobs run` (the pipeline), `restore` and `check` share, so
// that they trust the same host key, space their syncoid starts the same way, import pools by the
// same rules and power the box off by the same rules (only the last user, only if hozo woke it).

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "hozo/command.hpp"
#include "hozo/config.hpp"
#include "hozo/job.hpp"
#include "hozo/lock.hpp"
#include "hozo/state.hpp"
#include "hozo/syncoid.hpp"
#include "hozo/syncoid_version.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

/// zpool_health_if_imported's answer per pool, asked ahead of the pool stage.
using ListedPools = std::map<std::string, Result<std::optional<PoolHealth>>>;

/// How syncoid's ssh trusts the box: exactly the key file and known_hosts libssh uses
/// (ssh_options_for / resolve_identity_file), so both trust the same pinned key.
SyncoidSshTrust syncoid_trust(const Job& job);

/// The job's syncoid: where it is and which release.
struct InstalledSyncoid {
  std::filesystem::path program;        ///< absolute path
  SyncoidVersion version = kSyncoid210;  ///< the release (2.1.0 when it cannot be told)
  bool version_known = false;            ///< false: `--version` printed no version (see problem)
  std::string problem;                   ///< why the version is unknown
  /// "syncoid 2.2.0 at /usr/sbin/syncoid" (or "syncoid (version unknown, assuming 2.1.0) at ...")
  [[nodiscard]] std::string describe() const;
};

/// Finds job.syncoid.path on $PATH, then in /usr/local/sbin:/usr/sbin:/sbin (cron's PATH lacks
/// them), and asks it for its version (cached per run). Not found: an Error (exit 69) naming where
/// it looked. An unreadable version is no error: hozo then assumes 2.1.0, the most cautious
/// (start spacing on, only the options every release has).
Result<InstalledSyncoid> find_syncoid(const Job& job);

/// syncoid 2.1.x names its ssh control socket /tmp/syncoid-USER@HOST-<unix seconds>: two syncoids
/// to one host started within the same second share it, and the first to finish closes the other's
/// connection. Every syncoid 2.1.x start to a host therefore waits until 1.5 s have passed since
/// the last one (a per-host lock plus a time stamp under <state dir>/hosts/). Callers skip it for
/// releases that name their sockets apart (syncoid_needs_start_spacing).
void space_syncoid_start(const std::filesystem::path& state_dir, const std::string& host, Clock& clock);

/// Imports `pool` on the box when it is not imported (job.target_pool_import, with
/// job.target_pool_import_dirs as `zpool import -d` search directories). Returns true when it
/// imported the pool, false when it already was; an Error when it is not imported and may not be.
Result<bool> import_pool_if_needed(CommandRunner& remote, const Job& job, std::string_view pool,
                                   std::chrono::seconds timeout);

/// Whether waiting for the box resends the wake.
enum class Resend { yes, no };

/// Waits until the box answers on SSH (JobSystems::wait_up), resending the wake periodically
/// (a failed resend is a warning, not the end of the wait).
Result<WaitOutcome> wait_for_box(JobSystems& systems, const Job& job, const std::atomic<bool>* cancel,
                                 Resend resend = Resend::yes);

/// The disk stage: job.backup_device present and spinning (JobSystems::disk_control +
/// ensure_disk_ready within job.disk_spinup_timeout). Returns the stage message.
Result<std::string> ready_backup_disk(JobSystems& systems, const Job& job, CommandRunner& remote,
                                      const std::atomic<bool>* cancel);

/// The pool stage: each pool imported when needed (import_pool_if_needed) and healthy enough to
/// use — DEGRADED is a warning, FAULTED and worse an Error — with the health from backupd when
/// job.agent answers (else, with a warning, from zpool over SSH). Returns the stage message.
/// `listed` holds zpool_health_if_imported answers already asked on this session (the early
/// contact's); a pool missing there, or whose answer was an error, is asked again.
Result<std::string> prepare_target_pools(JobSystems& systems, const Job& job, CommandRunner& remote,
                                         const std::set<std::string>& pools, std::chrono::seconds timeout,
                                         const ListedPools* listed = nullptr);

/// The target pools of a job (the pool of each pair's target), as the pool stage checks them.
std::set<std::string> target_pools(const Job& job);

/// Whether the pool stage may take its first answers from a listing made on the early contact's
/// session: only when no disk stage comes first and backupd does not give the health.
bool pools_listable_early(const Job& job);

/// The answers of zpool_health_if_imported for `pools`, one round trip each, for prepare_target_pools.
ListedPools list_pools_early(CommandRunner& remote, const std::set<std::string>& pools, std::chrono::seconds timeout);

/// The box answered before any wake and this is the first user of the host: a woken marker left
/// from before is stale — the box must not be powered off because of it (someone else may have
/// switched it on) — and is cleared. Except when the marker's run (or restore) in `state` failed
/// while waiting for the box: then hozo's own wake simply took longer than ssh_timeout, the box
/// is still hozo's to power off, and the marker stays (said in the log). The same when the marker's
/// run died without finishing (SIGKILL, OOM: marker_of_dead_run). Returns true when kept.
bool settle_woken_marker(HostLease& lease, const StateStore& state, const Job& job);

/// Whether the end of a command powers the box off at all, and only when hozo woke it.
struct PowerOffRules {
  bool requested = true;      ///< job.shutdown_after (check: always)
  bool only_if_woken = true;  ///< job.shutdown_only_if_woken (check: always)
};

/// How the last successful JobSystems::power_off did it (last_power_off_detail), or
/// "\"<shutdown_command>\" sent; SSH port closed" when the systems do not say.
std::string power_off_detail(const JobSystems& systems, const Job& job);

/// The end of every command that used the box: powers it off only if this is the last user of the
/// host (HostLease::try_become_last), the box answered during the command, and — with
/// rules.only_if_woken — hozo woke it (the lease's woken marker). Clears the marker after a
/// power-off and releases the lease. The result says what happened and why.
ShutdownResult finish_host_use(HostLease& lease, JobSystems& systems, const Job& job, bool box_up, PowerOffRules rules);

}  // namespace hozo
