#include "hozo/restore.hpp"
#include "hozo/recover.hpp"

#include <algorithm>
#include <ctime>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "hozo/box.hpp"
#include "hozo/lock.hpp"
#include "hozo/ssh.hpp"
#include "hozo/syncoid.hpp"
#include "hozo/syncoid_errors.hpp"
#include "hozo/util/fs.hpp"
#include "hozo/util/strings.hpp"
#include "hozo/zfs.hpp"

namespace hozo {

namespace {

constexpr std::chrono::seconds kZfsTimeout{120};

bool cancelled(const std::atomic<bool>* cancel) { return cancel != nullptr && cancel->load(); }

Error interrupted_error() { return Error{"interrupted by signal", ExitCode::interrupted}; }

bool is_within(std::string_view dataset, std::string_view root) {
  return dataset == root || (dataset.size() > root.size() && dataset.starts_with(root) && dataset[root.size()] == '/');
}

std::string parent_of(std::string_view dataset) {
  const auto slash = dataset.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(dataset.substr(0, slash));
}

/// The job's pair that `source` names: one of its sources, or a descendant of a recursive one
/// (then the pair is narrowed to that subtree).
Result<DatasetPair> select_pair(const Job& job, std::string_view source) {
  if (source.empty()) {
    if (job.datasets.size() == 1) return job.datasets.front();
    std::vector<std::string> names;
    for (const auto& p : job.datasets) names.push_back(p.source);
    return make_error(ExitCode::usage, "job {} backs up {} datasets; choose one with --dataset ({})", job.name,
                      job.datasets.size(), join(names, ", "));
  }
  if (auto r = validate_dataset_name(source); !r) return make_error(ExitCode::usage, "--dataset: {}", r.error().message);
  for (const auto& p : job.datasets) {
    if (p.source == source) return p;
  }
  for (const auto& p : job.datasets) {
    if (p.recursive && is_within(source, p.source)) {
      return DatasetPair{std::string(source), p.target + std::string(source.substr(p.source.size())), true};
    }
  }
  std::vector<std::string> names;
  for (const auto& p : job.datasets) names.push_back(p.source);
  return make_error(ExitCode::usage, "--dataset {}: job {} does not back it up (its datasets: {})", printable(source),
                    job.name, join(names, ", "));
}

class Restore {
 public:
  Restore(const Job& job, const RestorePlan& plan, StateStore& state, JobSystems& sys, const std::atomic<bool>* cancel,
          RestoreRecord record)
      : job_(job), plan_(plan), state_(state), sys_(sys), cancel_(cancel), rec_(std::move(record)) {}

  RestoreRecord run() {
    const auto steps = [&]() -> Result<void> {
      if (auto r = step("lock", [&] { return lock(); }); !r) return r;
      if (auto r = step("wake", [&] { return wake_and_wait(); }); !r) return r;
      if (auto r = step("connect", [&] { return connect(); }); !r) return r;
      if (!job_.backup_device.empty()) {
        if (auto r = step("disk", [&] { return ready_backup_disk(sys_, job_, *remote_, cancel_); }); !r) return r;
      }
      if (auto r = step("pool", [&] { return prepare_target_pools(sys_, job_, *remote_, {pool_of(plan_.pair.target)},
                                                                  kZfsTimeout); });
          !r) {
        return r;
      }
      if (auto r = step("check", [&] { return check_backup(); }); !r) return r;
      if (auto r = step("sync", [&] { return sync(); }); !r) return r;
      if (auto r = step("rollback", [&] { return rollback(); }); !r) return r;
      return step("verify", [&] { return verify(); });
    };
    (void)steps();
    remote_.reset();  // close our SSH session before the box goes down
    shutdown();
    if (cancelled(cancel_) || rec_.exit_code == to_int(ExitCode::interrupted)) {
      rec_.outcome = RunOutcome::interrupted;
      rec_.exit_code = to_int(ExitCode::interrupted);
      if (rec_.error.empty()) rec_.error = "interrupted by signal";
    } else {
      rec_.outcome = rec_.failed_stage.empty() ? RunOutcome::success : RunOutcome::failed;
      if (rec_.failed_stage.empty()) rec_.exit_code = 0;
    }
    return rec_;
  }

 private:
  /// Runs one step (a stage message, if the body returns one, goes to the log) and records it.
  template <typename Fn>
  Result<void> step(std::string_view name, Fn&& body) {
    Result<void> r = cancelled(cancel_) ? Result<void>(interrupted_error()) : as_void(name, body());
    if (!r) {
      fail(name, r.error());
    } else {
      spdlog::debug("[{}] restore: {} ok", job_.name, name);
    }
    if (auto s = state_.update_restore(rec_); !s) spdlog::warn("[{}] cannot update state file: {}", job_.name, s.error().message);
    return r;
  }

  Result<void> as_void(std::string_view, Result<void> r) { return r; }
  Result<void> as_void(std::string_view name, Result<std::string> r) {
    if (!r) return r.error();
    spdlog::info("[{}] restore: {}: {}", job_.name, name, *r);
    return ok();
  }

  void fail(std::string_view stage, const Error& e) {
    spdlog::error("[{}] restore: {} failed: {}", job_.name, stage, e.message);
    if (!rec_.failed_stage.empty()) return;
    rec_.failed_stage = std::string(stage);
    rec_.error = e.message;
    rec_.exit_code = to_int(e.code == ExitCode::ok ? ExitCode::failure : e.code);
  }

  Result<void> lock() {
    // --in-place holds the host exclusively: no backup of this box pushes while we overwrite its source.
    const auto sharing = plan_.in_place ? HostSharing::wait : job_.host_sharing;
    auto lease = HostLease::acquire(state_.dir(), job_.target_host, sharing,
                                    std::chrono::duration_cast<Millis>(job_.host_lock_timeout));
    if (!lease) return lease.error();
    lease_.emplace(std::move(*lease));
    return ok();
  }

  Result<void> wake_and_wait() {
    const auto probe = sys_.probe(job_);
    if (probe.state == ProbeState::up) {
      rec_.was_up_before = true;
      box_up_ = true;
      (void)settle_woken_marker(*lease_, state_, job_);  // a stale marker must not power off someone's box
      spdlog::info("[{}] restore: {} is already up", job_.name, job_.target_host);
      return ok();
    }
    // The marker goes first: a restore killed while sending must still own the box it is waking.
    if (auto m = lease_->mark_woken(rec_.restore_id); !m) spdlog::warn("[{}] {}", job_.name, m.error().message);
    auto sent = sys_.wake(job_);
    if (!sent) {
      (void)lease_->clear_woken();
      return sent.error();
    }
    rec_.woke_host = true;
    spdlog::info("[{}] restore: wake sent, waiting for {}:{}", job_.name, job_.target_host, job_.ssh_port);
    auto outcome = wait_for_box(sys_, job_, cancel_);
    if (!outcome) return outcome.error();
    box_up_ = true;
    return ok();
  }

  Result<void> connect() {
    auto remote = sys_.connect(job_);
    if (!remote) return remote.error();
    remote_ = std::move(*remote);
    return ok();
  }

  /// The backup exists and has the requested snapshot on every dataset of the tree; remembers
  /// which snapshot (name and GUID) each restored dataset must end on.
  Result<void> check_backup() {
    const auto recursive = plan_.pair.recursive ? Recursive::yes : Recursive::no;
    auto listing = list_snapshots(*remote_, plan_.pair.target, recursive, kZfsTimeout);
    if (!listing) return listing.error();
    if (listing->status == ListStatus::missing) {
      return make_error("the backup {} does not exist on {}", plan_.pair.target, job_.target_host);
    }
    std::vector<std::string> lacking;
    for (const auto& [dataset, snaps] : listing->snapshots) {
      if (snaps.empty()) continue;
      const Snapshot* want = nullptr;
      if (plan_.snapshot.empty()) {
        want = newest_snapshot(snaps);
      } else {
        const auto it = std::find_if(snaps.begin(), snaps.end(), [&](const Snapshot& s) { return s.name == plan_.snapshot; });
        if (it == snaps.end()) {
          lacking.push_back(dataset);
          continue;
        }
        want = &*it;
      }
      expected_.push_back({plan_.target + dataset.substr(plan_.pair.target.size()), *want});
    }
    if (!lacking.empty()) {
      return make_error("snapshot {} is not on the box for {}", plan_.snapshot, join(lacking, ", "));
    }
    if (expected_.empty()) return make_error("the backup {} has no snapshots", plan_.pair.target);
    std::sort(expected_.begin(), expected_.end(), [](const auto& a, const auto& b) { return a.local < b.local; });
    rec_.restored_snapshot = expected_.front().local + "@" + expected_.front().snapshot.name;
    spdlog::info("[{}] restore: {}:{}@{} -> {} ({} dataset(s))", job_.name, job_.target_host, plan_.pair.target,
                 expected_.front().snapshot.name, plan_.target, expected_.size());
    return ok();
  }

  Result<void> sync() {
    std::string tail;
    const auto on_line = [&](bool err) {
      return [this, err, &tail](std::string_view line) {
        if (line.empty()) return;
        spdlog::debug("[{}] syncoid{}: {}", job_.name, err ? "!" : "", printable(line));
        tail += std::string(line) + "\n";
        if (tail.size() > 16384) tail.erase(0, tail.size() - 16384);
      };
    };
    spdlog::info("[{}] restore: running {}", job_.name, describe_command(plan_.syncoid_argv));
    if (syncoid_needs_start_spacing(plan_.syncoid_version)) space_syncoid_start(state_.dir(), job_.target_host, sys_.clock());
    auto result = sys_.run_syncoid(plan_.syncoid_argv, job_.syncoid.timeout, on_line(false), on_line(true), cancel_);
    if (!result) return result.error();
    if (result->cancelled || cancelled(cancel_)) return interrupted_error();
    if (result->timed_out) return make_error("syncoid timed out (syncoid.timeout) and was killed");
    if (result->term_signal != 0) return make_error("syncoid {}", describe_termination(*result));
    const auto outcome = classify_syncoid_exit(result->exit_code, tail);
    if (outcome.status == SyncoidStatus::ok) return ok();
    std::string last;
    for (const auto& line : split_lines(tail)) {
      if (!trim(line).empty()) last = std::string(trim(line));
    }
    const std::string exit_text = fmt::format("syncoid exited with status {} ({})", outcome.exit_code, outcome.reason);
    // The cause class and its remedy first, as for a backup run (syncoid_errors).
    const auto failure = classify_syncoid_output(tail);
    if (failure.cause == SyncCause::unknown) {
      return make_error("{}{}{}", exit_text, last.empty() ? "" : ": ", printable(last));
    }
    rec_.error_cause = std::string(to_string(failure.cause));
    std::string why = describe_restore_cause(
        failure, SyncContext{job_.name, plan_.pair.target, job_.target_host, plan_.target});
    if (!failure.critical.empty()) why += "\nsyncoid: " + failure.critical;
    if (!failure.evidence.empty() && failure.evidence != failure.critical) why += "\ncause: " + failure.evidence;
    return make_error("{}\n{}", why, exit_text);
  }

  /// syncoid ends on the newest snapshot of the backup and leaves a target that already has it
  /// as it is (local changes included): roll every restored dataset back to the snapshot it
  /// must end on. Needed for --snapshot and --in-place; a fresh copy of the newest is exact.
  Result<void> rollback() {
    if (plan_.snapshot.empty() && !plan_.in_place) return ok();
    for (const auto& e : expected_) {
      const std::vector<std::string> argv{"zfs", "rollback", "-r", e.local + "@" + e.snapshot.name};
      auto out = sys_.local().run(argv, kZfsTimeout);
      if (!out) return out.error();
      if (out->exit_status != 0) {
        return make_error("{} failed: {}", describe_command(argv), printable(trim(out->err.empty() ? out->out : out->err)));
      }
    }
    return ok();
  }

  Result<void> verify() {
    auto listing = list_snapshots(sys_.local(), plan_.target, plan_.pair.recursive ? Recursive::yes : Recursive::no,
                                  kZfsTimeout);
    if (!listing) return listing.error();
    if (listing->status == ListStatus::missing) return make_error("{} does not exist after the restore", plan_.target);
    for (const auto& e : expected_) {
      const auto it = listing->snapshots.find(e.local);
      const Snapshot* newest = it == listing->snapshots.end() ? nullptr : newest_snapshot(it->second);
      if (newest == nullptr) return make_error("{} has no snapshots after the restore", e.local);
      if (newest->name != e.snapshot.name || newest->guid != e.snapshot.guid) {
        return make_error("{}: newest snapshot is {} (guid {}), expected {} with the backup's guid {}", e.local,
                          newest->name, newest->guid, e.snapshot.name, e.snapshot.guid);
      }
    }
    spdlog::info("[{}] restore: {} dataset(s) verified (newest snapshot and GUID match the backup)", job_.name,
                 expected_.size());
    return ok();
  }

  /// As the pipeline's shutdown stage (finish_host_use): only if hozo woke the box, only by the last user.
  void shutdown() {
    auto& sd = rec_.shutdown;
    if (!lease_) {
      sd = {ShutdownOutcome::not_requested, "host lease not held"};
    } else {
      sd = finish_host_use(*lease_, sys_, job_, box_up_, PowerOffRules{job_.shutdown_after, job_.shutdown_only_if_woken});
    }
    spdlog::info("[{}] restore: shutdown {}: {}", job_.name, to_string(sd.outcome), sd.message);
    if (sd.outcome == ShutdownOutcome::failed) fail("shutdown", Error{sd.message, ExitCode::failure});
    if (auto s = state_.update_restore(rec_); !s) spdlog::warn("[{}] cannot update state file: {}", job_.name, s.error().message);
  }

  struct Expected {
    std::string local;  ///< the restored local dataset
    Snapshot snapshot;  ///< the backup's snapshot it must end on
  };

  const Job& job_;
  const RestorePlan& plan_;
  StateStore& state_;
  JobSystems& sys_;
  const std::atomic<bool>* cancel_;
  RestoreRecord rec_;
  std::optional<HostLease> lease_;
  std::unique_ptr<CommandRunner> remote_;
  std::vector<Expected> expected_;
  bool box_up_ = false;
};

}  // namespace

Result<void> validate_snapshot_name(std::string_view name) {
  if (name.empty()) return make_error(ExitCode::usage, "the snapshot name is empty");
  if (name.size() > 200) return make_error(ExitCode::usage, "snapshot name \"{}...\" is too long", printable(name.substr(0, 40)));
  const bool chars_ok = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == ':' || c == '-';
  });
  if (!chars_ok || name.front() == '-') {
    return make_error(ExitCode::usage,
                      "invalid snapshot name \"{}\": give the part after '@', made of A-Z a-z 0-9 _ . : - "
                      "(not starting with '-')",
                      printable(name));
  }
  return ok();
}

std::string default_restore_target(std::string_view source, SystemTime now) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  const auto stamp = fmt::format("restore-{:04}{:02}{:02}-{:02}{:02}{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                                 tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (source.find('/') == std::string_view::npos) return fmt::format("{}/{}", source, stamp);
  return fmt::format("{}-{}", source, stamp);
}

namespace {

/// The outermost recursively backed-up source of the job that holds `dataset`, if any.
std::optional<std::string> recursive_root_of(const Job& job, std::string_view dataset) {
  std::optional<std::string> root;
  for (const auto& p : job.datasets) {
    if (p.recursive && is_within(dataset, p.source) && (!root || p.source.size() < root->size())) root = p.source;
  }
  return root;
}

/// The default target when --to is not given: next to the outermost recursive source holding
/// `source` (so the next backup does not copy the restore), e.g. tank/data-restore-<stamp>-a for
/// tank/data/a of a recursive tank/data.
Result<std::string> default_target_for(const Job& job, const std::string& source, SystemTime now) {
  const auto root = recursive_root_of(job, source);
  if (!root) return default_restore_target(source, now);
  if (root->find('/') == std::string::npos) {
    return make_error(ExitCode::usage,
                      "the whole pool {} is backed up recursively, so a restore inside it would be copied by the next "
                      "backup: give --to a dataset in another pool",
                      *root);
  }
  std::string name = default_restore_target(*root, now);
  if (source != *root) {
    std::string rest = source.substr(root->size() + 1);
    std::replace(rest.begin(), rest.end(), '/', '-');
    name += "-" + rest;
  }
  return name;
}

}  // namespace

Result<RestorePlan> plan_restore(const Job& job, const RestoreRequest& request, SystemTime now) {
  RestorePlan plan;
  auto pair = select_pair(job, request.dataset);
  if (!pair) return std::move(pair).error();
  plan.pair = std::move(*pair);
  if (auto r = validate_dataset_name(plan.pair.target); !r) return make_error(ExitCode::config, "target_dataset: {}", r.error().message);
  if (!request.snapshot.empty()) {
    if (auto r = validate_snapshot_name(request.snapshot); !r) return make_error(ExitCode::usage, "--snapshot: {}", r.error().message);
  }
  plan.snapshot = request.snapshot;
  plan.in_place = request.in_place;
  plan.force_delete = request.force_delete;
  if (!request.to.empty()) {
    if (auto r = validate_dataset_name(request.to); !r) return make_error(ExitCode::usage, "--to: {}", r.error().message);
  }
  if (request.in_place) {
    if (!request.force_delete) {
      return make_error(ExitCode::usage,
                        "--in-place overwrites the live dataset {} (newer local data and snapshots are destroyed); "
                        "add --force-delete to confirm that this is intended",
                        plan.pair.source);
    }
    if (!request.to.empty() && request.to != plan.pair.source) {
      return make_error(ExitCode::usage, "--in-place restores into {} itself; --to {} contradicts it", plan.pair.source,
                        printable(request.to));
    }
    plan.target = plan.pair.source;
    plan.confirmed = request.confirm == job.name;
  } else {
    if (request.force_delete) {
      return make_error(ExitCode::usage, "--force-delete only goes with --in-place (a new dataset has nothing to delete)");
    }
    if (request.to.empty()) {
      auto target = default_target_for(job, plan.pair.source, now);
      if (!target) return std::move(target).error();
      plan.target = std::move(*target);
    } else {
      plan.target = request.to;
    }
    // Not a live source of the job, and not inside any tree the job backs up recursively.
    for (const auto& p : job.datasets) {
      if (plan.target == p.source) {
        return make_error(ExitCode::usage, "--to {} is a live source of job {}; use --in-place --force-delete to "
                                           "overwrite it",
                          plan.target, job.name);
      }
      if (p.recursive && is_within(plan.target, p.source)) {
        return make_error(ExitCode::usage,
                          "--to {} is inside the recursively backed-up {}: the next backup would copy the restore too",
                          plan.target, p.source);
      }
    }
    if (plan.target.find('/') == std::string::npos) {
      return make_error(ExitCode::usage, "--to {} is a pool; restore into a dataset inside a pool", plan.target);
    }
  }
  if (auto r = validate_dataset_name(plan.target); !r) return make_error(ExitCode::usage, "restore target: {}", r.error().message);
  SyncoidPullOptions pull;
  pull.recursive = plan.pair.recursive;
  pull.force_delete = plan.in_place && plan.force_delete;
  auto argv = build_syncoid_pull_argv(job, plan.pair.target, plan.target, syncoid_trust(job), pull,
                                      request.syncoid_version);
  if (!argv) return std::move(argv).error();
  plan.syncoid_version = request.syncoid_version;
  plan.syncoid_argv = std::move(*argv);
  return plan;
}

std::string describe_restore(const Job& job, const RestorePlan& plan) {
  std::string out = fmt::format("job {}: restore, dry run, nothing is executed\n", job.name);
  out += fmt::format("  from     {}:{}{} ({})\n", job.target_host, plan.pair.target, plan.pair.recursive ? " and its children" : "",
                     plan.snapshot.empty() ? "newest snapshot" : "snapshot " + plan.snapshot);
  out += fmt::format("  into     {}{}\n", plan.target,
                     plan.in_place ? " (IN PLACE: the live dataset is overwritten, newer data and snapshots destroyed)"
                                   : " (new dataset; must not exist yet)");
  if (plan.in_place) {
    out += fmt::format("  confirm  {}\n", plan.confirmed ? "given (--confirm)" : "type the job name at the prompt, or --confirm NAME");
  }
  out += fmt::format("  lock     host lease {} ({})\n", job.target_host,
                     plan.in_place || job.host_sharing == HostSharing::wait ? "exclusive" : "shared");
  out += fmt::format("  wake     if {}:{} does not answer; wait up to {}\n", job.target_host, job.ssh_port,
                     format_duration(std::chrono::duration<double>(job.ssh_timeout)));
  out += fmt::format("  check    {} exists on the box{}\n", plan.pair.target,
                     plan.snapshot.empty() ? "" : fmt::format(" with @{}", plan.snapshot));
  out += fmt::format("  sync     {}\n", describe_command(plan.syncoid_argv));
  if (!plan.snapshot.empty() || plan.in_place) {
    out += fmt::format("  rollback zfs rollback -r {}@{}{}\n", plan.target,
                       plan.snapshot.empty() ? "<newest on the box>" : plan.snapshot,
                       plan.pair.recursive ? " (and each child)" : "");
  }
  out += fmt::format("  verify   newest snapshot of {} has the backup's GUID\n", plan.target);
  out += job.shutdown_after ? "  shutdown if the restore woke the box and no other job uses it\n"
                            : "  shutdown not requested (shutdown_after: false)\n";
  return out;
}

Result<RestoreRecord> run_restore(const Job& job, const RestorePlan& plan, StateStore& state, JobSystems& systems,
                                  const std::atomic<bool>* cancel) {
  // Refusals before anything happens (nothing is woken, nothing recorded).
  if (plan.in_place && !plan.confirmed) {
    return make_error(ExitCode::usage, "--in-place needs confirmation: --confirm {} (the job name) or type it at the prompt",
                      job.name);
  }
  auto exists = list_snapshots(systems.local(), plan.target, Recursive::no, kZfsTimeout);
  if (!exists) return exists.error();
  if (!plan.in_place && exists->status == ListStatus::found) {
    return make_error(ExitCode::usage, "{} already exists; choose another --to (a restore never overwrites without --in-place)",
                      plan.target);
  }
  if (exists->status == ListStatus::missing) {
    const auto parent = parent_of(plan.target);
    auto p = list_snapshots(systems.local(), parent, Recursive::no, kZfsTimeout);
    if (!p) return p.error();
    if (p->status == ListStatus::missing) {
      return make_error(ExitCode::usage, "the parent {} of {} does not exist; create it first", parent, plan.target);
    }
  }

  if (auto reaped = reap_dead_runs(state, job.name, ReapScope::latest); !reaped) {  // orphans of a hard-killed run go first
    spdlog::warn("[{}] cannot clean up after dead runs: {}", job.name, reaped.error().message);
  }
  auto begun = state.begin_restore(job.name);
  if (!begun) return begun.error();
  RestoreRecord record = std::move(*begun);
  record.source = plan.pair.source;
  record.backup = job.target_host + ":" + plan.pair.target;
  record.target = plan.target;
  record.snapshot = plan.snapshot;
  record.in_place = plan.in_place;
  spdlog::info("[{}] restore {} started: {} -> {}", job.name, record.restore_id, record.backup, record.target);
  Restore restore(job, plan, state, systems, cancel, std::move(record));
  record = restore.run();
  auto stored = state.update_restore(record);
  if (!stored) return stored.error();
  spdlog::info("{}", summarize(*stored));
  return stored;
}

std::string summarize(const RestoreRecord& r) {
  std::string s = fmt::format("{}: restore {} in {}", r.job, to_string(r.outcome),
                              format_duration(std::chrono::duration<double>(r.duration_seconds)));
  if (!r.failed_stage.empty()) s += fmt::format(" (stage {}: {})", r.failed_stage, r.error);
  if (r.outcome == RunOutcome::success) s += fmt::format(", {} restored into {}", r.restored_snapshot, r.target);
  s += r.woke_host ? ", woke the box" : (r.was_up_before ? ", box was already up" : "");
  s += fmt::format(", shutdown: {}", to_string(r.shutdown.outcome));
  return s;
}

}  // namespace hozo
