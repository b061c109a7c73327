#include "hozo/verify.hpp"

#include <future>
#include <optional>
#include <regex>

#include <fmt/format.h>

#include "hozo/zfs.hpp"
#include "hozo/util/strings.hpp"

namespace hozo {
namespace {

// A target listing: the index, or why there is none.
struct TargetSide {
  const SnapshotIndex* index = nullptr;  // null when missing or failed
  std::string problem;                   // set when index is null
};

void fill_target(DatasetCheck& dv, const Snapshot& newest, const TargetSide& target) {
  dv.message.clear();
  if (target.index == nullptr) {
    dv.message = target.problem;
    return;
  }
  const auto it = target.index->find(dv.target_dataset);
  if (it == target.index->end()) {
    dv.message = fmt::format("target dataset {} does not exist; newest source snapshot {} was not received",
                             dv.target_dataset, newest.full_name());
    return;
  }
  const auto& snaps = it->second;
  dv.target_snapshot_count = snaps.size();
  if (const Snapshot* t = newest_snapshot(snaps)) {
    dv.target_snapshot = t->name;
    dv.target_guid = t->guid;
  }
  // The snapshot is most likely among the newest on the target: search from the back.
  for (auto s = snaps.rbegin(); s != snaps.rend(); ++s) {
    if (s->name != newest.name) continue;
    if (s->guid == newest.guid) {
      dv.match = true;
      dv.message = fmt::format("{} is on the target as {}@{} (guid {})", newest.full_name(), dv.target_dataset,
                               newest.name, newest.guid);
    } else {
      dv.message = fmt::format("guid mismatch: source {} has guid {} but target {}@{} has guid {}",
                               newest.full_name(), newest.guid, dv.target_dataset, s->name, s->guid);
    }
    return;
  }
  dv.message = fmt::format("newest source snapshot {} (guid {}) is missing on target {} ({})", newest.full_name(),
                           newest.guid, dv.target_dataset,
                           dv.target_snapshot.empty()
                               ? std::string("which has no snapshots")
                               : fmt::format("newest there: {}@{}", dv.target_dataset, dv.target_snapshot));
}

void finish(VerifyReport& report) {
  report.ok = report.error.empty() && !report.datasets.empty();
  for (const auto& dv : report.datasets) {
    if (!dv.match) {
      report.ok = false;
      if (report.error.empty()) report.error = dv.message;
    }
  }
  if (report.datasets.empty() && report.error.empty()) report.error = "nothing to verify: every dataset is excluded";
}

}  // namespace

VerifyReport verify_pair(CommandRunner& local, CommandRunner& remote, const DatasetPair& pair,
                         std::chrono::seconds timeout, const VerifyOptions& options) {
  VerifyReport report;
  const Recursive recursive = pair.recursive ? Recursive::yes : Recursive::no;
  auto fail_whole_pair = [&](std::string message) {
    DatasetCheck dv;
    dv.source_dataset = pair.source;
    dv.target_dataset = pair.target;
    dv.message = message;
    report.datasets.push_back(std::move(dv));
    report.error = std::move(message);
    report.ok = false;
    return report;
  };

  for (const auto* name : {&pair.source, &pair.target}) {
    if (auto valid = validate_dataset_name(*name); !valid) return fail_whole_pair(valid.error().message);
  }

  std::vector<std::regex> excludes;
  if (recursive == Recursive::yes) {
    for (const auto& pattern : options.exclude) {
      try {
        excludes.emplace_back(pattern, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return fail_whole_pair(fmt::format("invalid exclude pattern \"{}\": {}", printable(pattern), e.what()));
      }
    }
  }

  // Both sides at once: the box's listing (over the SSH session) on a second thread while this one
  // lists the source (a local zfs process: it must be started by this thread, whose SpawnWatch
  // tags and records the children of the run).
  auto remote_listing = std::async(std::launch::async,
                                   [&] { return list_snapshots(remote, pair.target, recursive, timeout); });
  auto source = list_snapshots(local, pair.source, recursive, timeout);
  auto target = remote_listing.get();
  if (!source) return fail_whole_pair(source.error().message);
  if (source->status == ListStatus::missing) {
    return fail_whole_pair(fmt::format("source dataset {} does not exist on {}", pair.source, local.where()));
  }

  TargetSide target_side;
  if (!target) {
    target_side.problem = target.error().message;
  } else if (target->status == ListStatus::missing) {
    target_side.problem = fmt::format("target dataset {} does not exist on {}", pair.target, remote.where());
  } else {
    target_side.index = &target->snapshots;
  }

  for (const auto& [dataset, snaps] : source->snapshots) {
    bool excluded = false;
    for (const auto& re : excludes) {
      if (std::regex_search(dataset, re)) {
        excluded = true;
        break;
      }
    }
    if (excluded) continue;

    DatasetCheck dv;
    dv.source_dataset = dataset;
    dv.target_dataset = pair.target + dataset.substr(pair.source.size());
    const Snapshot* newest = newest_snapshot(snaps);
    if (newest == nullptr) {
      dv.message = fmt::format("source dataset {} has no snapshots; nothing to compare with target {}", dataset,
                               dv.target_dataset);
    } else {
      dv.source_snapshot = newest->name;
      dv.source_guid = newest->guid;
      fill_target(dv, *newest, target_side);
    }
    report.datasets.push_back(std::move(dv));
  }
  finish(report);
  return report;
}

VerifyReport verify_job(CommandRunner& local, CommandRunner& remote, const Job& job, std::chrono::seconds timeout) {
  VerifyReport total;
  total.ok = !job.datasets.empty();
  if (job.datasets.empty()) total.error = fmt::format("job {} has no datasets to verify", job.name);
  const VerifyOptions options{job.syncoid.exclude};
  for (const auto& pair : job.datasets) {
    auto report = verify_pair(local, remote, pair, timeout, options);
    for (auto& dv : report.datasets) total.datasets.push_back(std::move(dv));
    if (!report.ok) {
      total.ok = false;
      if (total.error.empty()) total.error = std::move(report.error);
    }
  }
  return total;
}

}  // namespace hozo
