#pragma once
// `hozo jobs reseed`: repairing a broken incremental chain, on request only. The run goes
// through the job pipeline (lease, wake, wait, connect, disk, pool, shutdown, notify; see
// RunOptions::reseed): on the box it finds which datasets share no snapshot with the source, sends
// each of them in full into a NEW dataset (<target>.reseed-<UTC stamp>), verifies it (same GUID)
// and only with --replace renames the old target aside (<target>.old-<stamp>) and the new one into
// its place; the old one is destroyed only with --force.

#include <chrono>
#include <string>
#include <vector>

#include "hozo/command.hpp"
#include "hozo/config.hpp"
#include "hozo/state.hpp"
#include "hozo/util/result.hpp"
#include "hozo/util/time.hpp"

namespace hozo {

/// What happens to the old target once the new one is verified.
enum class ReplaceTarget {
  keep,     ///< nothing: the new dataset stays next to the old one (the default)
  aside,    ///< --replace: old → <target>.old-<stamp>, new → <target>
  destroy,  ///< --replace --force: as aside, then `zfs destroy -r` of the old one
};

/// The command line of `jobs reseed`.
struct ReseedRequest {
  std::string dataset;  ///< --dataset: a source of the job; re-seeded even when its chain is intact
  ReplaceTarget replace = ReplaceTarget::keep;
};

/// One dataset pair that may be re-seeded.
struct ReseedPair {
  DatasetPair pair;        ///< as in the job (pair.target = the current target)
  std::string new_target;  ///< <target>.reseed-<stamp>: the full send goes here
  std::string old_target;  ///< <target>.old-<stamp>: where --replace moves the current target
  bool named = false;      ///< chosen with --dataset: re-seeded whatever its chain says
  std::string offline;     ///< what this machine knows without the box (the state's anchor)
};

/// A validated re-seed: names only, nothing looked up on the box yet.
struct ReseedPlan {
  std::vector<ReseedPair> pairs;
  ReplaceTarget replace = ReplaceTarget::keep;
  std::string stamp;  ///< YYYYMMDD-HHMMSS (UTC), shared by the new and the old name
};

/// Validates the request (usage errors, exit 2): --dataset must be a source of the job; a target
/// that is a pool's root dataset cannot be re-seeded (it cannot be renamed); the new and old
/// names must be valid dataset names.
Result<ReseedPlan> plan_reseed(const Job& job, const ReseedRequest& request, SystemTime now);

/// Fills ReseedPair::offline from the state's last verified run and the local source snapshots
/// (check_chain_anchor per dataset): "broken: ... is gone from the source" or "anchor ... present".
void note_offline_chain(CommandRunner& local, const Job& job, const JobState* state, ReseedPlan& plan,
                        std::chrono::seconds timeout);

/// The plan as text (dry run and confirmation): per dataset the new name, the full send, the
/// verification and what happens to the old target; `syncoid_lines` are the exact commands.
std::string describe_reseed(const Job& job, const ReseedPlan& plan, const std::vector<std::string>& syncoid_lines);

/// Whether a target still shares a snapshot with its source (the box's side of the chain).
struct ChainOnBox {
  bool target_exists = false;
  bool common = false;         ///< every dataset of the target tree shares a snapshot (GUID) with the source
  std::string detail;          ///< "shares @snap" / "no snapshot in common (target ends on @x)" / "does not exist"
};

/// Compares the GUIDs of the source tree (local) and of the target tree (remote).
Result<ChainOnBox> chain_on_box(CommandRunner& local, CommandRunner& remote, const DatasetPair& pair,
                                std::chrono::seconds timeout);

/// --replace on the box for one pair, after the new target was verified: renames the current
/// target (if it exists) to old_target and new_target to the target (renaming the old one back
/// when the second rename fails); with ReplaceTarget::destroy releases the job's holds on the old
/// tree (`hold_tag`, snapshots held by `previous`) and destroys it (`zfs destroy -r`). Returns what
/// was done, for the stage message.
Result<std::string> replace_target(CommandRunner& remote, const Job& job, const ReseedPair& pair,
                                   ReplaceTarget mode, const RunRecord* previous, std::chrono::seconds timeout);

}  // namespace hozo
