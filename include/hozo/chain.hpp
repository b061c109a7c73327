#pragma once
// Keeping the incremental chain: after a verified run the newest verified snapshot of every
// dataset is held (`zfs hold hozo:<job>`) on the source and on the target and the previous hold
// released, so pruning cannot destroy the last common snapshot; before waking the box, preflight
// checks locally that the last verified snapshot (or a bookmark with its GUID) still exists.

#include <chrono>
#include <string>
#include <vector>

#include "hozo/command.hpp"
#include "hozo/config.hpp"
#include "hozo/state.hpp"
#include "hozo/util/result.hpp"

namespace hozo {

/// Whether a pool can hold bookmarks (`zpool get feature@bookmarks POOL`).
enum class BookmarkSupport {
  yes,  ///< the feature is enabled or active (OpenZFS)
  no,   ///< disabled, or the pool has no feature flags (zfs-fuse: the property is unknown)
};

/// Parses `zpool get feature@bookmarks POOL` (OpenZFS: a NAME PROPERTY VALUE SOURCE table;
/// zfs-fuse: exit 2, "bad property list: invalid property 'feature@bookmarks'").
BookmarkSupport parse_bookmark_feature(const CommandOutput& out);

/// What this run passes to syncoid.
struct BookmarkDecision {
  bool create = false;  ///< --create-bookmark
  std::string why;      ///< for the preflight message and --dry-run
};

/// --create-bookmark or not: as written in the config when create_bookmark is set there; else on
/// when no_sync_snap is on (syncoid bookmarks only then) and the source pool supports bookmarks.
BookmarkDecision decide_create_bookmark(const SyncoidSettings& settings, BookmarkSupport support,
                                        std::string_view source_pool);

/// "hozo:<job>".
std::string hold_tag(const Job& job);

/// Holds the newest verified snapshot of every dataset in `datasets` (those with guid_match) on
/// both sides and then, on each side where that hold worked, releases the snapshot held by
/// `previous` (the last successful run, may be null) when it differs; one round trip per side when
/// the lists fit one command each (CommandRunner::run_then). Sets held_snapshot on each dataset
/// held on both sides. Failures are warnings (returned as lines, also logged), never an error.
std::vector<std::string> hold_verified_snapshots(CommandRunner& local, CommandRunner& remote, const Job& job,
                                                 std::vector<DatasetVerification>& datasets,
                                                 const RunRecord* previous, std::chrono::seconds timeout);

/// The newest successful run of `state` (the anchor of the chain); nullptr when none.
const RunRecord* last_verified_run(const JobState& state) noexcept;

/// Preflight: every dataset the last verified run ended on still has that snapshot on the source
/// (same GUID; or a bookmark of that name with the GUID). Error (cause no common snapshot, with the
/// exact snapshot and GUID and the remedy) otherwise. Datasets no longer in the job, runs recorded
/// before GUIDs were stored, and datasets gone from the source are skipped.
Result<void> check_chain_anchor(CommandRunner& local, const Job& job, const RunRecord& last_verified,
                                std::chrono::seconds timeout);

}  // namespace hozo
