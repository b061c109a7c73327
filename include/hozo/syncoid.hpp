#pragma once
// syncoid (sanoid 2.1.0 to 2.3.0: Debian 12, 13, unstable): argv from the config for the
// installed release (syncoid_version.hpp), exit classification and the retry policy.
//
// syncoid pastes its ssh options, bandwidth limits and send/recv options into shell command
// lines without quoting them, so every value is checked against a conservative character
// set here, not only for NUL and newlines. hozo itself never builds a local shell string.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/config.hpp"
#include "hozo/syncoid_version.hpp"
#include "hozo/util/result.hpp"

namespace hozo {

/// How syncoid's ssh must trust the box: the same key file and known_hosts the pipeline
/// pinned with libssh just before, so syncoid never decides on a host key by itself.
struct SyncoidSshTrust {
  std::string key_path;     ///< identity file (absolute path), passed as --sshkey
  int port = 22;            ///< passed as --sshport
  std::string known_hosts;  ///< known_hosts file (absolute path) holding the pinned key
  /// The job's policy. Informational only: accept-new is applied by libssh before syncoid
  /// runs, so syncoid's ssh always uses StrictHostKeyChecking=yes.
  HostKeyPolicy host_key_policy = HostKeyPolicy::strict;
  std::chrono::seconds connect_timeout{10};           ///< ssh ConnectTimeout
  std::chrono::seconds server_alive_interval{15};     ///< ssh ServerAliveInterval
  int server_alive_count_max = 4;                     ///< ssh ServerAliveCountMax (15 s x 4 = 1 min to notice a cut link)
};

/// The trust settings for a job: key, port, known_hosts and connect timeout from the job.
/// `key_path` and `known_hosts` are the resolved files (job.ssh_key/known_hosts may be empty
/// meaning "default"; resolving defaults is the caller's job).
SyncoidSshTrust syncoid_trust_for(const Job& job, std::string key_path, std::string known_hosts);

/// The syncoid argv for one dataset pair of a job: ssh trust options, the mapped
/// job.syncoid settings, --pv-options=-n -b -i 1 (pv's byte counts for transfer.hpp; left out when
/// extra_args has its own --pv-options), job.syncoid.extra_args, then SOURCE and USER@HOST:TARGET.
/// Every element is validated for the installed `version`: options that release lacks (2.1.0:
/// --use-hold, --sshconfig, --preserve-properties, ...; 2.2.0+: --no-clone-rollback; before
/// 2.3.0: --include-snaps, zstdmt-*; 2.3.0: send option D) and extra_args that would override
/// the ssh trust are errors; syncoid.exclude becomes --exclude-datasets from 2.3.0 on.
Result<std::vector<std::string>> build_syncoid_argv(const Job& job, const DatasetPair& pair,
                                                    const SyncoidSshTrust& trust,
                                                    const SyncoidVersion& version = kSyncoid210);

/// The restore (pull) direction's own switches.
struct SyncoidPullOptions {
  bool recursive = false;     ///< --recursive (the job's dataset pair)
  bool force_delete = false;  ///< --force-delete (hozo restore --in-place --force-delete)
};

/// The syncoid argv pulling USER@HOST:REMOTE_DATASET back into LOCAL_DATASET (`hozo restore`):
/// the same ssh trust, no_privilege_elevation, compress, exclude, sendoptions and extra_args as
/// build_syncoid_argv, always --no-sync-snap (nothing is created on the backup); the settings that
/// describe the backup's side only (source/target_bwlimit, identifier, create_bookmark,
/// recvoptions) are left out. Invalid dataset names are usage errors.
Result<std::vector<std::string>> build_syncoid_pull_argv(const Job& job, std::string_view remote_dataset,
                                                         std::string_view local_dataset, const SyncoidSshTrust& trust,
                                                         const SyncoidPullOptions& options,
                                                         const SyncoidVersion& version = kSyncoid210);

/// How a syncoid run ended.
enum class SyncoidStatus {
  ok,         ///< exit 0
  transient,  ///< exit 1: partial or transient failure (e.g. target busy in another receive)
  critical,   ///< exit 2 (or any other non-zero code): a dataset failed to replicate
  usage       ///< exit 127: syncoid rejected its arguments; retrying cannot help
};

/// What stderr says about a failure's cause.
enum class SyncoidCause {
  unknown,    ///< nothing recognised
  transient,  ///< a known transient cause (busy dataset, dropped connection)
  permanent   ///< a known permanent cause (diverged target, host key, permissions, space)
};

/// A classified syncoid exit.
struct SyncoidOutcome {
  SyncoidStatus status = SyncoidStatus::ok;
  int exit_code = 0;
  SyncoidCause cause = SyncoidCause::unknown;  ///< always unknown when ok
  std::string matched;                         ///< the stderr phrase that decided `cause`
  std::string reason;                          ///< short explanation for logs and the state file
};

/// Classifies a syncoid exit code with the tail of its output (stderr, ideally merged with
/// stdout: syncoid prints some errors, e.g. "ERROR: ..." for a failed zfs get, on stdout).
/// Transient causes (case-insensitive): "dataset is busy", "is already target of a zfs
/// receive process", "connection reset", "connection timed out", "broken pipe",
/// "connection closed by". Permanent causes win over them: "has been modified" (target
/// diverged; needs a rollback, not a retry), "host key verification failed",
/// "remote host identification has changed", "permission denied", "no space left",
/// "out of space".
SyncoidOutcome classify_syncoid_exit(int exit_code, std::string_view stderr_tail);

/// Whether to run syncoid again after `attempt` (1-based) attempts when `retries` extra
/// attempts are allowed: exit 1 retries unless the cause is permanent; exit 2 (or other)
/// only with a transient cause; ok and usage never.
bool should_retry(const SyncoidOutcome& outcome, int attempt, int retries);

/// A copy-pasteable shell command line for --dry-run output and logs.
std::string describe_command(const std::vector<std::string>& argv);

}  // namespace hozo
