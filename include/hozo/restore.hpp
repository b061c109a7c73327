#pragma once
// `hozo restore` (break-glass): wake the box, pull a backup back with syncoid, verify it, power
// the box off again, and record the restore in the state file (JobState::restores).
//
// Sequence: plan_restore validates every name (and the --in-place confirmation) before anything
// is touched → the local target must not exist (unless --in-place) and its parent must →
// host lease (exclusive for --in-place, so no backup of that host runs meanwhile) → probe, wake
// and wait if the box is down → connect; the requested snapshot must exist on the box (on every
// dataset of a recursive tree) → syncoid USER@HOST:BACKUP LOCAL (--no-sync-snap: nothing is
// created on the backup) → `zfs rollback -r LOCAL@SNAP` on every restored dataset when a
// snapshot was requested or --in-place (syncoid 2.1.0 can only sync up to the newest snapshot,
// and it leaves a target that already has the newest snapshot untouched, local changes
// included) → verify: each restored dataset's newest snapshot is the expected one with the
// backup's GUID → power off if the restore woke the box and no other job uses it.

#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/config.hpp"
#include "hozo/job.hpp"
#include "hozo/state.hpp"
#include "hozo/syncoid_version.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// What the user asked for (the command line).
struct RestoreRequest {
  std::string dataset;   ///< --dataset: a source of the job (or a descendant of a recursive one); empty = the only one
  std::string snapshot;  ///< --snapshot: the part after '@'; empty = the newest on the box
  std::string to;        ///< --to: the local dataset to create; empty = <source>-restore-<UTC stamp>
  bool in_place = false;      ///< --in-place: overwrite the live source
  bool force_delete = false;  ///< --force-delete: required with --in-place (syncoid --force-delete)
  std::string confirm;        ///< --confirm or the typed answer: must equal the job name for --in-place
  /// The installed syncoid's release (find_syncoid): the pull argv and the start spacing follow it.
  SyncoidVersion syncoid_version = kSyncoid210;
};

/// A validated restore: everything run_restore needs, nothing looked up yet.
struct RestorePlan {
  DatasetPair pair;     ///< source = the live local dataset, target = the backup on the box
  std::string target;   ///< the local dataset written (pair.source with --in-place)
  std::string snapshot; ///< requested snapshot (empty = newest)
  bool in_place = false;
  bool force_delete = false;
  bool confirmed = false;  ///< --in-place confirmed with the job name
  std::vector<std::string> syncoid_argv;
  SyncoidVersion syncoid_version = kSyncoid210;  ///< the release syncoid_argv is for
};

/// A snapshot name (the part after '@'): 1-200 characters of [A-Za-z0-9_.:-], not starting with '-'.
Result<void> validate_snapshot_name(std::string_view name);

/// "<source>-restore-YYYYMMDD-HHMMSS" (UTC); for a pool's root dataset "<pool>/restore-...".
std::string default_restore_target(std::string_view source, SystemTime now);

/// Validates the request against the job (usage errors, exit 2): the dataset, the snapshot and
/// target names, --in-place needs --force-delete, --to must not be the live source (nor inside a
/// recursive source) unless --in-place. Builds the syncoid argv. Touches nothing. A missing or
/// wrong confirmation is not an error here (see RestorePlan::confirmed; run_restore refuses).
Result<RestorePlan> plan_restore(const Job& job, const RestoreRequest& request, SystemTime now);

/// The --dry-run text: steps and the exact syncoid command, one per line.
std::string describe_restore(const Job& job, const RestorePlan& plan);

/// Runs a planned restore and records it (begin_restore / update_restore). The record's
/// exit_code is the process exit code: 0, 1 failed, 2 an unconfirmed --in-place or a target that
/// exists, 69 box unreachable, 75 host busy, 130 interrupted. An Error only when the restore
/// could not be recorded at all, or for an unconfirmed --in-place (nothing is touched then).
Result<RestoreRecord> run_restore(const Job& job, const RestorePlan& plan, StateStore& state, JobSystems& systems,
                                  const std::atomic<bool>* cancel);

/// One line for the end of a restore.
std::string summarize(const RestoreRecord& record);

}  // namespace hozo
