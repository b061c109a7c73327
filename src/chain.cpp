#include "hozo/chain.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/util/strings.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

namespace {

/// "pool/ds@snap" → "snap"; "" when there is no '@'.
std::string snapshot_part(const std::string& full) {
  const auto at = full.find('@');
  return at == std::string::npos ? std::string() : full.substr(at + 1);
}

bool benign(const CommandOutput& out, std::string_view what) {
  return out.exit_status == 0 || out.err.find(what) != std::string::npos;
}

/// Snapshots per `zfs hold|release` command: keeps the command line short for jobs with many datasets.
constexpr std::size_t kSnapshotsPerCommand = 64;

/// The dataset part of "pool/ds@snap" is a valid dataset name.
bool valid_snapshot(const std::string& snapshot) {
  return validate_dataset_name(snapshot.substr(0, snapshot.find('@'))).ok();
}

/// `zfs OP TAG SNAP...` for snapshots[begin, end).
std::vector<std::string> hold_argv(const char* op, const std::string& tag, const std::vector<std::string>& snapshots,
                                   std::size_t begin, std::size_t end) {
  std::vector<std::string> argv{"zfs", op, tag};
  argv.insert(argv.end(), snapshots.begin() + static_cast<std::ptrdiff_t>(begin),
              snapshots.begin() + static_cast<std::ptrdiff_t>(end));
  return argv;
}

/// `zfs hold|release TAG DATASET@SNAP`; "" when it worked (or was already so), else a warning.
std::string hold_op(CommandRunner& runner, const char* op, const std::string& tag, const std::string& snapshot,
                    std::chrono::seconds timeout) {
  if (!valid_snapshot(snapshot)) return fmt::format("bad snapshot {}", snapshot);
  auto r = runner.run({"zfs", op, tag, snapshot}, timeout);
  if (!r) return fmt::format("zfs {} {} {} on {}: {}", op, tag, snapshot, runner.where(), r.error().message);
  // A hold that exists already, or a release of one that is gone, is what we wanted.
  if (benign(*r, std::string_view(op) == "hold" ? "tag already exists" : "no such tag") ||
      (std::string_view(op) == "release" && benign(*r, "does not exist"))) {
    return {};
  }
  return fmt::format("zfs {} {} {} on {} exited with status {}: {}", op, tag, snapshot, runner.where(), r->exit_status,
                     printable(trim(r->err)));
}

}  // namespace

std::string hold_tag(const Job& job) { return "hozo:" + job.name; }

BookmarkSupport parse_bookmark_feature(const CommandOutput& out) {
  if (out.exit_status != 0) return BookmarkSupport::no;
  for (const auto line : split_lines(out.out)) {
    std::vector<std::string> cols;
    std::string cur;
    for (const char c : line) {
      if (c == ' ' || c == '\t') {
        if (!cur.empty()) cols.push_back(std::move(cur));
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (!cur.empty()) cols.push_back(std::move(cur));
    if (cols.size() >= 3 && cols[1] == "feature@bookmarks") {
      return cols[2] == "enabled" || cols[2] == "active" ? BookmarkSupport::yes : BookmarkSupport::no;
    }
  }
  return BookmarkSupport::no;
}

BookmarkDecision decide_create_bookmark(const SyncoidSettings& s, BookmarkSupport support, std::string_view pool) {
  if (s.create_bookmark_set) {
    return {s.create_bookmark, s.create_bookmark ? "create_bookmark: true (config)" : "create_bookmark: false (config)"};
  }
  if (!s.no_sync_snap) return {false, "no bookmarks: syncoid's own sync snapshot keeps the chain (no_sync_snap is off)"};
  if (support == BookmarkSupport::no) {
    return {false, fmt::format("no bookmarks: pool {} does not support them (feature@bookmarks)", pool)};
  }
  return {true, fmt::format("--create-bookmark: pool {} supports bookmarks", pool)};
}

const RunRecord* last_verified_run(const JobState& state) noexcept {
  for (auto it = state.runs.rbegin(); it != state.runs.rend(); ++it) {
    // A re-seed that did not swap its new datasets in verified those, not the job's targets.
    if (it->outcome == RunOutcome::success && (it->reseed.empty() || it->reseed == "replaced")) return &*it;
  }
  return nullptr;
}

namespace {

/// `zfs hold|release TAG SNAP...` on one side, a warning per snapshot that failed ("" where it
/// worked). One command for all of them; only when that fails (one snapshot gone, a hold already
/// there: zfs applies none of them then) again one by one, which tells them apart.
std::vector<std::string> hold_op_all(CommandRunner& runner, const char* op, const std::string& tag,
                                     const std::vector<std::string>& snapshots, std::chrono::seconds timeout) {
  std::vector<std::string> result(snapshots.size());
  for (std::size_t begin = 0; begin < snapshots.size(); begin += kSnapshotsPerCommand) {
    const std::size_t end = std::min(snapshots.size(), begin + kSnapshotsPerCommand);
    const bool valid = end - begin > 1 && std::all_of(snapshots.begin() + static_cast<std::ptrdiff_t>(begin),
                                                      snapshots.begin() + static_cast<std::ptrdiff_t>(end), valid_snapshot);
    if (valid) {
      if (auto r = runner.run(hold_argv(op, tag, snapshots, begin, end), timeout); r && r->exit_status == 0) continue;
    }
    for (std::size_t i = begin; i < end; ++i) result[i] = hold_op(runner, op, tag, snapshots[i], timeout);
  }
  return result;
}

/// Warnings of `results` ("" where it worked), logged.
void warn_all(const Job& job, const std::vector<std::string>& results, std::vector<std::string>& warnings) {
  for (const auto& w : results) {
    if (w.empty()) continue;
    spdlog::warn("[{}] {}", job.name, w);
    warnings.push_back(w);
  }
}

/// `zfs release TAG SNAP...` on both sides at once: the box's over the SSH session on a second
/// thread, the source's on this one (whose SpawnWatch records its children). Warnings, parallel to
/// the inputs ("" where it worked or the hold was gone already).
std::pair<std::vector<std::string>, std::vector<std::string>> release_both(
    CommandRunner& local, CommandRunner& remote, const std::string& tag, const std::vector<std::string>& local_snaps,
    const std::vector<std::string>& remote_snaps, std::chrono::seconds timeout) {
  auto remote_done =
      std::async(std::launch::async, [&] { return hold_op_all(remote, "release", tag, remote_snaps, timeout); });
  auto on_local = hold_op_all(local, "release", tag, local_snaps, timeout);
  return {std::move(on_local), remote_done.get()};
}

}  // namespace

std::vector<std::string> hold_verified_snapshots(CommandRunner& local, CommandRunner& remote, const Job& job,
                                                 std::vector<DatasetVerification>& datasets,
                                                 const RunRecord* previous, std::chrono::seconds timeout) {
  std::vector<std::string> warnings;
  const std::string tag = hold_tag(job);
  // The new holds, both sides at once (the box's on a second thread). The previous run's holds
  // stay for now: a chain is never without a held snapshot, and their release is not on this path.
  std::vector<DatasetVerification*> held;
  std::vector<std::string> hold_local, hold_remote;
  for (auto& d : datasets) {
    const std::string snap = snapshot_part(d.newest_source_snapshot);
    if (!d.guid_match || snap.empty()) continue;
    held.push_back(&d);
    hold_local.push_back(d.source + "@" + snap);
    hold_remote.push_back(d.target + "@" + snap);
  }
  auto remote_done =
      std::async(std::launch::async, [&] { return hold_op_all(remote, "hold", tag, hold_remote, timeout); });
  const auto on_local = hold_op_all(local, "hold", tag, hold_local, timeout);
  const auto on_remote = remote_done.get();
  warn_all(job, on_local, warnings);
  warn_all(job, on_remote, warnings);

  // Held on both sides: the previous snapshot is released by the next run, while it syncs. Held on
  // one side only: that side releases the previous one now, the other keeps it.
  std::vector<std::string> release_local, release_remote;
  for (std::size_t i = 0; i < held.size(); ++i) {
    DatasetVerification& d = *held[i];
    const std::string snap = snapshot_part(hold_local[i]);
    const bool both = on_local[i].empty() && on_remote[i].empty();
    if (both) d.held_snapshot = snap;
    if (previous == nullptr) continue;
    for (const auto& p : previous->datasets) {
      if (p.source != d.source || p.held_snapshot.empty() || p.held_snapshot == snap) continue;
      if (both) {
        d.release_pending = p.held_snapshot;
        continue;
      }
      const std::tuple<bool, const std::string&, std::vector<std::string>&> sides[] = {
          {on_local[i].empty(), p.source, release_local}, {on_remote[i].empty(), p.target, release_remote}};
      for (const auto& [worked, dataset, list] : sides) {
        if (worked) {
          list.push_back(dataset + "@" + p.held_snapshot);
          continue;
        }
        warnings.push_back(
            fmt::format("kept hold {} on {}@{}: the hold on the new snapshot failed", tag, dataset, p.held_snapshot));
        spdlog::warn("[{}] {}", job.name, warnings.back());
      }
    }
  }
  if (!release_local.empty() || !release_remote.empty()) {
    const auto [l, r] = release_both(local, remote, tag, release_local, release_remote, timeout);
    warn_all(job, l, warnings);
    warn_all(job, r, warnings);
  }
  return warnings;
}

namespace {

/// `d` names a snapshot its run left held for the next run to release.
bool left_to_release(const DatasetVerification& d) noexcept {
  return !d.release_pending.empty() && d.release_pending != d.held_snapshot;
}

}  // namespace

bool has_holds_to_release(const RunRecord& anchor) noexcept {
  return std::any_of(anchor.datasets.begin(), anchor.datasets.end(), left_to_release);
}

std::vector<std::string> release_previous_holds(CommandRunner& local, CommandRunner& remote, const Job& job,
                                                const RunRecord& anchor, std::chrono::seconds timeout) {
  std::vector<std::string> on_source, on_box, warnings;
  for (const auto& d : anchor.datasets) {
    if (!left_to_release(d)) continue;
    on_source.push_back(d.source + "@" + d.release_pending);
    on_box.push_back(d.target + "@" + d.release_pending);
  }
  if (on_source.empty()) return warnings;
  const auto [l, r] = release_both(local, remote, hold_tag(job), on_source, on_box, timeout);
  warn_all(job, l, warnings);
  warn_all(job, r, warnings);
  return warnings;
}

Result<void> check_chain_anchor(CommandRunner& local, const Job& job, const RunRecord& last, std::chrono::seconds timeout) {
  std::map<std::string, SnapshotListing, std::less<>> listings;  // by the dataset listed
  for (const auto& d : last.datasets) {
    const std::string snap = snapshot_part(d.newest_source_snapshot);
    if (!d.guid_match || d.source_guid == 0 || snap.empty()) continue;
    const DatasetPair* owner = nullptr;
    for (const auto& pair : job.datasets) {
      if (d.source == pair.source || (pair.recursive && d.source.starts_with(pair.source + "/"))) owner = &pair;
    }
    if (owner == nullptr || !validate_dataset_name(d.source)) continue;
    // One listing per recursive pair covers all of its datasets (one zfs call, not one per child).
    const std::string& root = owner->recursive ? owner->source : d.source;
    auto listed = listings.find(root);
    if (listed == listings.end()) {
      auto listing = list_snapshots(local, root, owner->recursive ? Recursive::yes : Recursive::no, timeout);
      if (!listing) return listing.error();
      listed = listings.emplace(root, std::move(listing).value()).first;
    }
    if (listed->second.status != ListStatus::found) continue;  // the dataset itself is gone: syncoid says so
    const auto it = listed->second.snapshots.find(d.source);
    if (it == listed->second.snapshots.end()) continue;  // a child gone from the source: likewise
    bool found = false;
    for (const auto& s : it->second) found = found || s.guid == d.source_guid;
    if (!found) {
      // A bookmark of the same name keeps the GUID (OpenZFS; zfs-fuse has no bookmarks).
      auto bm = local.run({"zfs", "get", "-H", "-p", "-o", "value", "guid", d.source + "#" + snap}, timeout);
      found = bm && bm->exit_status == 0 && std::string(trim(bm->out)) == std::to_string(d.source_guid);
    }
    if (!found) {
      return make_error(
          "no common snapshot: {} (GUID {}), the snapshot the box was last verified on, is gone from the source "
          "(pruned while the box was off?) and there is no bookmark of it; an incremental send is impossible; the next "
          "run needs a full send into a new target dataset: run `hozo jobs reseed {}` (see hozo(1) RECOVERY). The box "
          "was not woken",
          d.newest_source_snapshot, d.source_guid, job.name);
    }
  }
  return ok();
}

}  // namespace hozo
