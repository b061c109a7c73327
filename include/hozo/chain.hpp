#pragma once
// Keeping the incremental chain: after a verified run the newest verified snapshot of every
// dataset is held (`zfs hold hozo:<job>`) on the source and on the target, and the next run
// releases the hold before it while it syncs, so pruning cannot destroy the last common snapshot
// and a held one exists at every moment; before waking the box, preflight
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
/// both sides, one command per side, both at once. Where that worked on both sides it sets
/// held_snapshot, and release_pending to the snapshot `previous` (the last successful run, may be
/// null) held when it differs: that hold stays until the next run releases it
/// (release_previous_holds), so the release is not on this run's path. Where the new hold worked
/// on one side only, that side releases the previous snapshot now and the other keeps it. Failures
/// are warnings (returned as lines, also logged), never an error.
std::vector<std::string> hold_verified_snapshots(CommandRunner& local, CommandRunner& remote, const Job& job,
                                                 std::vector<DatasetVerification>& datasets,
                                                 const RunRecord* previous, std::chrono::seconds timeout);

/// Whether `anchor` (the last verified run) left holds for the next run to release.
bool has_holds_to_release(const RunRecord& anchor) noexcept;

/// Releases, on both sides at once, the snapshots `anchor` left held for the next run
/// (release_pending): older than the ones it holds, which stay held. A hold already gone counts as
/// released. Warnings (also logged) for the rest.
std::vector<std::string> release_previous_holds(CommandRunner& local, CommandRunner& remote, const Job& job,
                                                const RunRecord& anchor, std::chrono::seconds timeout);

/// The newest successful run of `state` (the anchor of the chain); nullptr when none.
const RunRecord* last_verified_run(const JobState& state) noexcept;

/// Preflight: every dataset the last verified run ended on still has that snapshot on the source
/// (same GUID; or a bookmark of that name with the GUID). Error (cause no common snapshot, with the
/// exact snapshot and GUID and the remedy) otherwise. Datasets no longer in the job, runs recorded
/// before GUIDs were stored, and datasets gone from the source are skipped.
Result<void> check_chain_anchor(CommandRunner& local, const Job& job, const RunRecord& last_verified,
                                std::chrono::seconds timeout);

}  // namespace hozo
