#pragma once
// ZFS: dataset-name checks, snapshot listing and parsing, pool health and import.
//
// Listing uses only what both OpenZFS and zfs-fuse support:
//   zfs get -H -p -o name,property,value {-r | -d 1} guid,createtxg DATASET
// (zfs-fuse's `zfs list` has no -p and its `zfs get` has no -t), keeping rows whose
// name contains '@'. Bookmarks ('#') and the datasets' own rows are not snapshots.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hozo/command.hpp"
#include "hozo/util/result.hpp"

namespace hozo {

/// Whether a listing covers the dataset's descendants too.
enum class Recursive { yes, no };

/// One snapshot as listed by `zfs get`.
struct Snapshot {
  std::string dataset;         ///< "tank/data"
  std::string name;            ///< the part after '@'
  std::uint64_t guid = 0;      ///< identical on source and target for the same snapshot
  std::uint64_t createtxg = 0; ///< creation transaction group; higher = newer

  /// "dataset@name".
  [[nodiscard]] std::string full_name() const { return dataset + "@" + name; }
  /// Field-wise equality.
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

/// Snapshots per dataset, each vector sorted oldest → newest (by createtxg, ties in
/// listing order). Every dataset that appeared in the listing has an entry, even with
/// no snapshots.
using SnapshotIndex = std::map<std::string, std::vector<Snapshot>, std::less<>>;

/// Whether the listed dataset exists.
enum class ListStatus {
  found,   ///< the dataset exists; `snapshots` holds its (possibly empty) index
  missing  ///< zfs said "dataset does not exist"; normal on a target before its first sync
};

/// The result of list_snapshots.
struct SnapshotListing {
  ListStatus status = ListStatus::found;
  SnapshotIndex snapshots;
};

/// Checks a dataset (filesystem/volume) name by ZFS naming rules plus a shell-safety
/// margin: components of [A-Za-z0-9_.:-], pool name starting with a letter, no empty,
/// "." or ".." components, no leading '-', no '@'/'#', no leading/trailing '/', at most
/// 255 characters. Used right before a name goes into any command.
Result<void> validate_dataset_name(std::string_view name);

/// The pool part of a dataset or snapshot name ("tank" for "tank/a/b@s").
std::string pool_of(std::string_view dataset);

/// argv that lists guid and createtxg of `dataset` (and descendants when recursive).
std::vector<std::string> snapshot_listing_argv(std::string_view dataset, Recursive recursive);

/// Parses `zfs get -H -p -o name,property,value guid,createtxg` output. Keeps snapshots
/// of `dataset` itself and, when recursive, of its descendants; other rows are ignored
/// (an empty `dataset` keeps every row).
/// Property rows may come in any order. A malformed row, a non-numeric value ("-"), a
/// duplicate or a missing property is an Error naming the line number and content.
Result<SnapshotIndex> parse_snapshot_listing(std::string_view output, std::string_view dataset,
                                             Recursive recursive);

/// Lists the snapshots of `dataset` through `runner`. A dataset that does not exist is
/// ListStatus::missing (not an Error); a failed command or bad output is an Error.
Result<SnapshotListing> list_snapshots(CommandRunner& runner, std::string_view dataset, Recursive recursive,
                                       std::chrono::seconds timeout);

/// The newest snapshot of a sorted vector, or nullptr when empty.
const Snapshot* newest_snapshot(const std::vector<Snapshot>& snapshots) noexcept;

/// A pool's health as `zpool list` shows it.
struct PoolHealth {
  std::string pool;
  std::string health;  ///< ONLINE, DEGRADED, FAULTED, OFFLINE, UNAVAIL, REMOVED, SUSPENDED
  /// True when the pool is fully healthy (ONLINE).
  [[nodiscard]] bool online() const noexcept { return health == "ONLINE"; }
};

/// Health of an imported pool via `zpool list -H -o name,health POOL` (works on zfs-fuse).
/// A pool that is not imported is an Error.
Result<PoolHealth> zpool_health(CommandRunner& runner, std::string_view pool, std::chrono::seconds timeout);
/// Like zpool_health, but a pool that is not imported ("no such pool") is nullopt, not an error:
/// one round trip tells whether the pool is there and how it is.
Result<std::optional<PoolHealth>> zpool_health_if_imported(CommandRunner& runner, std::string_view pool,
                                                           std::chrono::seconds timeout);

/// True when the pool is imported (`zpool list -H -o name POOL` succeeds), false when zpool
/// says "no such pool"; an Error when the command fails otherwise.
Result<bool> pool_imported(CommandRunner& runner, std::string_view pool, std::chrono::seconds timeout);

/// One pool that `zpool import` (without a pool name) lists as importable.
struct ImportCandidate {
  std::string pool;    ///< "pool:" label
  std::string id;      ///< "id:" label (the pool GUID)
  std::string state;   ///< "state:" label (ONLINE, DEGRADED, UNAVAIL, ...)
  std::string action;  ///< "action:" text, continuation lines joined with a space
  /// The action asks for -f (the pool was last used by another system): a plain import fails.
  [[nodiscard]] bool needs_force() const { return action.find("'-f'") != std::string::npos; }
};

/// Parses `zpool import [-d DIR]...` listing output (stdout). Accepts zfs-fuse's and OpenZFS's
/// layouts (OpenZFS 2.1/2.2 indent the labels one column more; status:/see: paragraphs, device
/// trees and blank lines between pools are skipped). "no pools available to import" (OpenZFS:
/// stderr, exit 0) and empty output (zfs-fuse: exit 1) are both an empty list.
std::vector<ImportCandidate> parse_import_listing(std::string_view output);

/// Imports a pool: `zpool import [-d DIR]... POOL`. `search_dirs` is for file-backed pools
/// (the lab); empty means zpool's default device search.
Result<void> zpool_import(CommandRunner& runner, std::string_view pool, std::chrono::seconds timeout,
                          const std::vector<std::string>& search_dirs = {});

}  // namespace hozo
