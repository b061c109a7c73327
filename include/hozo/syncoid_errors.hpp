#pragma once
// Why a syncoid run failed, in words a user can act on: syncoid's own CRITICAL ERROR / WARN line
// (and the zfs or ssh line behind it) sorted into a cause class with its remedy. The class and
// the remedy become the first line of the run's error (state, `hozo status`, notifications).

#include <string>
#include <string_view>

namespace hozo {

/// What made syncoid fail.
enum class SyncCause {
  unknown,             ///< nothing recognised; the error carries syncoid's last line
  no_common_snapshot,  ///< the target's snapshots share none with the source: no incremental is possible
  target_modified,     ///< the target changed since its newest snapshot (or diverged from the source)
  target_busy,         ///< the target dataset or pool is busy (another receive, a mount)
  out_of_space,        ///< the target (or source) pool is full / a quota was hit
  permission_denied,   ///< ssh login refused, or no zfs permission
  dataset_missing,     ///< a source or target dataset (or pool) does not exist
  network,             ///< ssh could not connect, or the connection broke
};

/// "no_common_snapshot", "target_modified", ... ("unknown").
std::string_view to_string(SyncCause cause) noexcept;

/// A classified syncoid failure.
struct SyncFailure {
  SyncCause cause = SyncCause::unknown;
  std::string evidence;  ///< the output line that shows the cause (printable, at most 300 bytes)
  std::string critical;  ///< syncoid's first "CRITICAL ERROR" line (or its last WARN line), if any
};

/// Classifies syncoid's combined stdout + stderr (line by line; the first line that matches a
/// known zfs/ssh/syncoid message decides, in the order of the enum's causes as listed in the
/// .cpp). Fixtures: real syncoid 2.1.0 output from the lab (tests/unit/syncoid_errors_test.cpp).
SyncFailure classify_syncoid_output(std::string_view output);

/// Whether running syncoid again can help (busy, network, unknown) — the others need a person.
bool retry_can_help(SyncCause cause) noexcept;

/// Where the failure happened, for the remedy text.
struct SyncContext {
  std::string job;
  std::string source;
  std::string target_host;
  std::string target;
};

/// The first line of the run's error: "<cause>: <what happened>; <remedy>", e.g. "the target
/// was modified since the last sync: ...; run `hozo jobs run NAME --force-rollback` to discard
/// its changes". Empty for SyncCause::unknown.
std::string describe_cause(const SyncFailure& failure, const SyncContext& where);

/// The same for `hozo restore` (syncoid pulls from the box into this machine): `where.source` is
/// the backup on the box, `where.target` the local dataset written, so "target" means this
/// machine's side, e.g. "out of space on the local pool of tank/data-restore-...: ...". Empty for
/// SyncCause::unknown.
std::string describe_restore_cause(const SyncFailure& failure, const SyncContext& where);

}  // namespace hozo
