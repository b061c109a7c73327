#include "hozo/reseed.hpp"

#include <ctime>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/chain.hpp"
#include "hozo/syncoid.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

namespace {

std::string utc_stamp(SystemTime now) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}{:02}{:02}-{:02}{:02}{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

/// `zfs ARGS...` on the box; an Error with zfs's message when it fails.
Result<void> zfs_on(CommandRunner& remote, const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  auto out = remote.run(argv, timeout);
  if (!out) return out.error();
  if (out->exit_status != 0) {
    return make_error("{} on {} failed: {}", describe_command(argv), remote.where(),
                      printable(trim(out->err.empty() ? out->out : out->err)));
  }
  return ok();
}

}  // namespace

Result<ReseedPlan> plan_reseed(const Job& job, const ReseedRequest& request, SystemTime now) {
  ReseedPlan plan;
  plan.replace = request.replace;
  plan.stamp = utc_stamp(now);
  if (!request.dataset.empty()) {
    if (auto r = validate_dataset_name(request.dataset); !r) {
      return make_error(ExitCode::usage, "--dataset: {}", r.error().message);
    }
  }
  std::vector<std::string> sources;
  for (const auto& pair : job.datasets) {
    sources.push_back(pair.source);
    if (!request.dataset.empty() && pair.source != request.dataset) continue;
    if (pair.target.find('/') == std::string::npos) {
      return make_error(ExitCode::usage,
                        "the target {} of {} is a pool's root dataset, which cannot be renamed: a re-seed needs a "
                        "target dataset inside the pool (set target_dataset to e.g. {}/{})",
                        pair.target, pair.source, pair.target, pair.source.substr(pair.source.rfind('/') + 1));
    }
    ReseedPair p;
    p.pair = pair;
    p.new_target = fmt::format("{}.reseed-{}", pair.target, plan.stamp);
    p.old_target = fmt::format("{}.old-{}", pair.target, plan.stamp);
    p.named = !request.dataset.empty();
    for (const auto* name : {&p.new_target, &p.old_target}) {
      if (auto r = validate_dataset_name(*name); !r) return make_error(ExitCode::usage, "{}", r.error().message);
    }
    plan.pairs.push_back(std::move(p));
  }
  if (plan.pairs.empty()) {
    return make_error(ExitCode::usage, "--dataset {}: job {} does not back it up (its datasets: {})",
                      printable(request.dataset), job.name, join(sources, ", "));
  }
  return plan;
}

void note_offline_chain(CommandRunner& local, const Job& job, const JobState* state, ReseedPlan& plan,
                        std::chrono::seconds timeout) {
  const RunRecord* last = state != nullptr ? last_verified_run(*state) : nullptr;
  for (auto& p : plan.pairs) {
    if (last == nullptr) {
      p.offline = "no verified run recorded; the chain is checked on the box";
      continue;
    }
    Job one = job;
    one.datasets = {p.pair};
    if (auto anchor = check_chain_anchor(local, one, *last, timeout); !anchor) {
      const auto& m = anchor.error().message;
      p.offline = "BROKEN: " + m.substr(0, m.find(" and there is no bookmark"));
    } else {
      p.offline = fmt::format("the snapshot of run {} is still on the source; the chain is checked on the box",
                              last->run_id);
    }
  }
}

std::string describe_reseed(const Job& job, const ReseedPlan& plan, const std::vector<std::string>& syncoid_lines) {
  std::string out = fmt::format("job {}: re-seed of a broken chain ({} dataset pair(s))\n", job.name, plan.pairs.size());
  out += fmt::format("  wake     the box {} as a run does (lease, wake, wait, connect, disk, pool)\n", job.target_host);
  for (std::size_t i = 0; i < plan.pairs.size(); ++i) {
    const auto& p = plan.pairs[i];
    out += fmt::format("  dataset  {} -> {}:{}{}\n", p.pair.source, job.target_host, p.pair.target,
                       p.pair.recursive ? " (recursive)" : "");
    out += fmt::format("    chain  {}\n", p.offline.empty() ? "checked on the box" : p.offline);
    out += p.named ? "    when   always (named with --dataset)\n"
                   : "    when   only if the target shares no snapshot with the source (else it is left alone)\n";
    out += fmt::format("    send   full, into the NEW dataset {}\n", p.new_target);
    if (i < syncoid_lines.size()) out += fmt::format("           {}\n", syncoid_lines[i]);
    out += fmt::format("    verify newest snapshot of {} on {} (same GUID)\n", p.pair.source, p.new_target);
    switch (plan.replace) {
      case ReplaceTarget::keep:
        out += fmt::format("    then   nothing: {} stays as it is (add --replace to swap the two)\n", p.pair.target);
        break;
      case ReplaceTarget::aside:
        out += fmt::format("    then   zfs rename {} {}; zfs rename {} {} (nothing is destroyed)\n", p.pair.target,
                           p.old_target, p.new_target, p.pair.target);
        break;
      case ReplaceTarget::destroy:
        out += fmt::format("    then   zfs rename {} {}; zfs rename {} {}; zfs destroy -r {} (--force: the old copy "
                           "is DESTROYED)\n",
                           p.pair.target, p.old_target, p.new_target, p.pair.target, p.old_target);
        break;
    }
  }
  out += "  record   a run in the state file (hozo history)\n";
  out += job.shutdown_after ? "  shutdown if hozo woke the box and no other job uses it\n"
                            : "  shutdown not requested (shutdown_after: false)\n";
  return out;
}

Result<ChainOnBox> chain_on_box(CommandRunner& local, CommandRunner& remote, const DatasetPair& pair,
                                std::chrono::seconds timeout) {
  const auto recursive = pair.recursive ? Recursive::yes : Recursive::no;
  ChainOnBox chain;
  auto target = list_snapshots(remote, pair.target, recursive, timeout);
  if (!target) return target.error();
  if (target->status == ListStatus::missing) {
    chain.detail = fmt::format("{} does not exist on the box (a normal run makes the full send)", pair.target);
    return chain;
  }
  chain.target_exists = true;
  auto source = list_snapshots(local, pair.source, recursive, timeout);
  if (!source) return source.error();
  if (source->status == ListStatus::missing) return make_error("the source {} does not exist", pair.source);
  chain.common = true;
  std::vector<std::string> shared;
  for (const auto& [dataset, snaps] : source->snapshots) {
    const std::string remote_name = pair.target + dataset.substr(pair.source.size());
    const auto it = target->snapshots.find(remote_name);
    if (it == target->snapshots.end()) continue;  // not received yet: syncoid sends it in full
    std::set<std::uint64_t> guids;
    for (const auto& s : snaps) guids.insert(s.guid);
    const Snapshot* newest_common = nullptr;
    for (const auto& s : it->second) {
      if (guids.contains(s.guid)) newest_common = &s;
    }
    if (newest_common == nullptr) {
      chain.common = false;
      const Snapshot* last = newest_snapshot(it->second);
      chain.detail = fmt::format("{} shares no snapshot with {}{}", remote_name, dataset,
                                 last == nullptr ? " (it has none)" : fmt::format(" (it ends on @{})", last->name));
      return chain;
    }
    shared.push_back(fmt::format("{}@{}", remote_name, newest_common->name));
  }
  chain.detail = shared.empty() ? "the target has no snapshot of the source's datasets"
                                : fmt::format("shares {}", join(shared, ", "));
  return chain;
}

Result<std::string> replace_target(CommandRunner& remote, const Job& job, const ReseedPair& p, ReplaceTarget mode,
                                   const RunRecord* previous, std::chrono::seconds timeout) {
  if (mode == ReplaceTarget::keep) return std::string();
  auto old_listing = list_snapshots(remote, p.pair.target, Recursive::no, timeout);
  if (!old_listing) return old_listing.error();
  const bool old_exists = old_listing->status == ListStatus::found;
  std::vector<std::string> done;
  if (old_exists) {
    if (auto r = zfs_on(remote, {"zfs", "rename", p.pair.target, p.old_target}, timeout); !r) return r.error();
    done.push_back(fmt::format("{} moved aside to {}", p.pair.target, p.old_target));
  }
  if (auto r = zfs_on(remote, {"zfs", "rename", p.new_target, p.pair.target}, timeout); !r) {
    if (old_exists) {
      if (auto back = zfs_on(remote, {"zfs", "rename", p.old_target, p.pair.target}, timeout); !back) {
        return make_error("{}; renaming {} back also failed: {} (both copies are on the box, nothing was destroyed)",
                          r.error().message, p.old_target, back.error().message);
      }
    }
    return make_error("{}; the old target was put back, {} stays next to it", r.error().message, p.new_target);
  }
  done.push_back(fmt::format("{} renamed to {}", p.new_target, p.pair.target));
  if (mode == ReplaceTarget::destroy && old_exists) {
    // The job's holds on the old tree would make the destroy fail ("dataset is busy").
    if (previous != nullptr) {
      for (const auto& d : previous->datasets) {
        if (d.target != p.pair.target && !d.target.starts_with(p.pair.target + "/")) continue;
        for (const auto* snap : {&d.held_snapshot, &d.release_pending}) {
          if (snap->empty()) continue;
          const std::string moved = p.old_target + d.target.substr(p.pair.target.size()) + "@" + *snap;
          auto rel = remote.run({"zfs", "release", hold_tag(job), moved}, timeout);
          if (!rel || rel->exit_status != 0) spdlog::debug("[{}] zfs release {} {}: not held", job.name, hold_tag(job), moved);
        }
      }
    }
    if (auto r = zfs_on(remote, {"zfs", "destroy", "-r", p.old_target}, timeout); !r) {
      return make_error("{} is in place, but destroying the old copy failed: {} (it is still there)", p.pair.target,
                        r.error().message);
    }
    done.push_back(fmt::format("{} destroyed (--force)", p.old_target));
  }
  return join(done, ", ");
}

}  // namespace hozo
