#include "hozo/chain.hpp"

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

/// `zfs hold|release TAG DATASET@SNAP`; "" when it worked (or was already so), else a warning.
std::string hold_op(CommandRunner& runner, const char* op, const std::string& tag, const std::string& snapshot,
                    std::chrono::seconds timeout) {
  if (!validate_dataset_name(snapshot.substr(0, snapshot.find('@')))) return fmt::format("bad snapshot {}", snapshot);
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

std::vector<std::string> hold_verified_snapshots(CommandRunner& local, CommandRunner& remote, const Job& job,
                                                 std::vector<DatasetVerification>& datasets,
                                                 const RunRecord* previous, std::chrono::seconds timeout) {
  std::vector<std::string> warnings;
  const std::string tag = hold_tag(job);
  const auto warn = [&](std::string w) {
    if (w.empty()) return;
    spdlog::warn("[{}] {}", job.name, w);
    warnings.push_back(std::move(w));
  };
  for (auto& d : datasets) {
    const std::string snap = snapshot_part(d.newest_source_snapshot);
    if (!d.guid_match || snap.empty()) continue;
    std::string failed = hold_op(local, "hold", tag, d.source + "@" + snap, timeout);
    std::string failed_remote = hold_op(remote, "hold", tag, d.target + "@" + snap, timeout);
    warn(failed);
    warn(failed_remote);
    if (failed.empty() && failed_remote.empty()) d.held_snapshot = snap;
    if (previous == nullptr) continue;
    for (const auto& p : previous->datasets) {
      if (p.source != d.source || p.held_snapshot.empty() || p.held_snapshot == snap) continue;
      warn(hold_op(local, "release", tag, p.source + "@" + p.held_snapshot, timeout));
      warn(hold_op(remote, "release", tag, p.target + "@" + p.held_snapshot, timeout));
    }
  }
  return warnings;
}

Result<void> check_chain_anchor(CommandRunner& local, const Job& job, const RunRecord& last, std::chrono::seconds timeout) {
  for (const auto& d : last.datasets) {
    const std::string snap = snapshot_part(d.newest_source_snapshot);
    if (!d.guid_match || d.source_guid == 0 || snap.empty()) continue;
    bool in_job = false;
    for (const auto& pair : job.datasets) {
      in_job = in_job || d.source == pair.source || (pair.recursive && d.source.starts_with(pair.source + "/"));
    }
    if (!in_job || !validate_dataset_name(d.source)) continue;
    auto listing = list_snapshots(local, d.source, Recursive::no, timeout);
    if (!listing) return listing.error();
    if (listing->status != ListStatus::found) continue;  // the dataset itself is gone: syncoid says so
    bool found = false;
    if (const auto it = listing->snapshots.find(d.source); it != listing->snapshots.end()) {
      for (const auto& s : it->second) found = found || s.guid == d.source_guid;
    }
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
